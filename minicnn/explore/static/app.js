// The minicnn explorer page: asks the server (minicnn itself) for every number and draws it.
// No maths of the network here: the server runs the model's own forward pass.
"use strict";

const state = { info: null, spec: null, forward: null, chosen: null, pixel: null, busy: 0,
  run: null, version: null, seen: [], timeline: null, follow: true };
const POLL_MS = 1000; // watching a run: how often the page asks /api/run what changed
window.explorer = state; // for the browser test and for the curious (open the console)

const $ = (id) => document.getElementById(id);
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

// -- talking to the server ------------------------------------------------------------------
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  state.busy += 1;
  try {
    const reply = await fetch(path, options);
    const data = await reply.json();
    if (!reply.ok) throw new Error(data.error || reply.statusText);
    $("error").hidden = true;
    return data;
  } catch (err) {
    $("error").textContent = `${path}: ${err.message}`;
    $("error").hidden = false;
    throw err;
  } finally {
    state.busy -= 1;
  }
}

function bytes(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
const floats = (b64) => new Float32Array(bytes(b64).buffer);
// the one-number view writes every number the same way: fixed point, 4 decimals, never an exponent
const fixed = (v) => { const t = Number(v).toFixed(4); return /^-0\.0+$/.test(t) ? t.slice(1) : t; };
const fmt = (v, digits = 4) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(digits));

// -- drawing ---------------------------------------------------------------------------------
function drawPixels(canvas, data, h, w, c) {
  // uint8 (h, w, c) pixels, c = 3 (RGB) or 1 (grey)
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[4 * p + k] = data[p * c + (c === 3 ? k : 0)];
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  return VIRIDIS[i].map((a, k) => Math.round(a + f * (VIRIDIS[i + 1][k] - a)));
}

function drawHeatmap(canvas, values, h, w, c, channel) {
  // channel `channel` of float (h, w, c), from its own minimum (dark) to its maximum (bright)
  let lo = Infinity, hi = -Infinity;
  for (let p = 0; p < h * w; p++) { const v = values[p * c + channel]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    const rgb = colour(hi > lo ? (values[p * c + channel] - lo) / (hi - lo) : 0.5);
    img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * p);
  }
  ctx.putImageData(img, 0, 0);
  canvas.title = `channel ${channel}: min ${fmt(lo)}, max ${fmt(hi)}`;
  canvas.dataset.min = lo; canvas.dataset.max = hi;
  return canvas;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function bar(name, value, cls) {
  return el("div", { class: `bar ${cls || ""}` }, el("span", { class: "name", text: name }),
    el("span", { class: "track" }, el("div", { class: "fill", style: `width:${(100 * value).toFixed(1)}%` })),
    el("span", { text: `${(100 * value).toFixed(1)}%` }));
}

const shapeText = (s) => s.join("×");

// -- picking an image ------------------------------------------------------------------------
function thumb(image, shape, onclick) {
  const canvas = drawPixels(document.createElement("canvas"), bytes(image.pixels), ...shape);
  const names = state.info.classes;
  canvas.title = `#${image.index}: ${names[image.label]}, predicted ${names[image.predicted]}`;
  canvas.dataset.index = image.index;
  if (image.label !== image.predicted) canvas.classList.add("wrong");
  canvas.addEventListener("click", onclick || (() => select({ index: image.index })));
  return canvas;
}

function markSelected() {
  // the thumbnail of the image shown (in the picker and in a confusion cell's list)
  const index = state.spec && state.spec.index !== undefined ? String(state.spec.index) : null;
  document.querySelectorAll(".thumbs canvas").forEach((c) => c.classList.toggle("selected", c.dataset.index === index));
}

async function listImages() {
  const cls = $("class-select").value;
  const query = new URLSearchParams({ count: 96 });
  if (cls !== "") query.set("label", cls);
  if ($("wrong-only").checked) query.set("wrong", 1);
  const reply = await api(`/api/images?${query}`);
  $("thumbs").replaceChildren(...reply.images.map((im) => thumb(im, reply.shape)));
  if (!reply.images.length) $("thumbs").append(el("span", { class: "small", text: "no such images" }));
  markSelected();
}

async function select(spec) {
  state.spec = spec;
  markSelected();
  state.forward = await api("/api/forward", spec);
  showImage();
  showOverview();
  if (state.chosen) await explain(state.pixel ? state.pixel[0] : null, state.pixel ? state.pixel[1] : null);
}

function fileToPixels(file) {
  // decode in the browser, centre-crop to a square, resize to the model's input: (h*w*c) ints 0..255
  const [h, w, c] = state.info.input_shape;
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext("2d");
      const side = Math.min(img.width, img.height);
      ctx.drawImage(img, (img.width - side) / 2, (img.height - side) / 2, side, side, 0, 0, w, h);
      const rgba = ctx.getImageData(0, 0, w, h).data, out = [];
      for (let p = 0; p < h * w; p++) {
        if (c === 3) out.push(rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]);
        else out.push(Math.round((rgba[4 * p] + rgba[4 * p + 1] + rgba[4 * p + 2]) / 3));
      }
      URL.revokeObjectURL(img.src);
      resolve(out);
    };
    img.onerror = () => reject(new Error(`${file.name}: the browser cannot decode this image`));
    img.src = URL.createObjectURL(file);
  });
}

async function upload(file) {
  try {
    await select({ pixels: await fileToPixels(file) });
  } catch (err) {
    $("error").textContent = err.message; $("error").hidden = false;
  }
}

// -- the image and its prediction ---------------------------------------------------------------
function showImage() {
  const f = state.forward, names = state.info.classes;
  drawPixels($("image-canvas"), bytes(f.pixels), ...f.shape);
  const where = f.source === "test" ? `test image #${f.index}, a ${names[f.label]}` :
    f.source === "upload" ? "your picture" : "a synthetic picture";
  $("image-caption").textContent = where;
  const bars = $("bars");
  bars.replaceChildren();
  bars.dataset.top = f.top === null ? "" : f.top;
  bars.dataset.probs = JSON.stringify(f.probs);
  if (f.probs === null) { bars.textContent = "the model's output is not one vector of class scores"; return; }
  bars.append(el("div", { class: "small", text: `predicted: ${names[f.top]}` }));
  f.probs.forEach((p, k) => bars.append(bar(names[k], p, `${k === f.top ? "top" : ""} ${k === f.label ? "truth" : ""}`)));
}

// -- overview: every layer's output -----------------------------------------------------------
function layerOutput(i) {
  const out = state.forward.layers[i];
  return { shape: out.shape, values: out.values || (out.values = floats(out.data)) };
}

function showOverview() {
  const info = state.info, f = state.forward;
  const input = el("div", { class: "layer" }, el("div", { class: "head" }, el("b", { text: "input" }),
    el("br"), `${shapeText(info.input_shape)}`));
  input.append(drawPixels(el("canvas", { class: "pixelated", style: "width:64px;height:64px" }), bytes(f.pixels), ...f.shape));
  const columns = [input];
  info.layers.forEach((layer, i) => {
    const { shape, values } = layerOutput(i);
    const column = el("div", { class: "layer", "data-layer": i }, el("div", { class: "head" },
      el("b", { text: layer.name }), ` (${layer.class})`, el("br"),
      `${shapeText(layer.output_shape)} · ${layer.params.toLocaleString()} params`,
      layer.class === "Dropout" ? el("div", { class: "small", text: "(passes its input on: dropout acts only in training)" }) : ""));
    if (shape.length === 3) {
      const maps = el("div", { class: "maps", style: `width:${30 * Math.ceil(Math.sqrt(shape[2]))}px` });
      for (let ch = 0; ch < shape[2]; ch++) {
        const canvas = drawHeatmap(document.createElement("canvas"), values, shape[0], shape[1], shape[2], ch);
        canvas.dataset.layer = i; canvas.dataset.channel = ch;
        if (layer.explains !== undefined) {
          canvas.classList.add("clickable");
          canvas.addEventListener("click", () => chooseChannel(i, ch));
        }
        if (state.chosen && state.chosen.shown === i && state.chosen.channel === ch) canvas.classList.add("chosen");
        maps.append(canvas);
      }
      column.append(maps);
    } else if (values.length === info.classes.length) { // one number per class: name each
      const lo = Math.min(...values), hi = Math.max(...values);
      const table = el("table", { class: "outputs", "data-layer": i }, ...Array.from(values, (v, k) => {
        const [r, g, b] = colour(hi > lo ? (v - lo) / (hi - lo) : 0.5);
        return el("tr", {}, el("td", { class: "cell", style: `background: rgb(${r},${g},${b})` }),
          el("td", { text: info.classes[k] }), el("td", { class: "value", text: fmt(v, 3) }));
      }));
      column.append(table, el("div", { class: "small", text: `${values.length} numbers, one per class` }));
    } else {
      const n = values.length;
      const canvas = drawHeatmap(el("canvas", { class: "vector" }), values, 1, n, 1, 0);
      canvas.dataset.layer = i;
      column.append(canvas, el("div", { class: "small", text: `${n} numbers` }));
    }
    columns.push(column);
  });
  $("layers").replaceChildren(...columns);
}

// -- how a convolution computes one number ------------------------------------------------------
async function chooseChannel(shown, channel) {
  const conv = state.info.layers[shown].explains;
  state.chosen = { shown, conv, channel };
  document.querySelectorAll(".maps canvas.chosen").forEach((c) => c.classList.remove("chosen"));
  const canvas = document.querySelector(`.maps canvas[data-layer="${shown}"][data-channel="${channel}"]`);
  if (canvas) canvas.classList.add("chosen");
  state.pixel = null;
  await explain(null, null);
  showStimulus();
}

function showStimulus() {
  // the chosen channel's max-stimulus pattern: seconds of gradient ascent, so not awaited
  const { conv, channel } = state.chosen;
  $("stimulus-note").textContent = "computing (gradient ascent on the input) ...";
  api(`/api/stimulus?layer=${conv}&channel=${channel}`).then((s) => {
    drawPixels($("stimulus-canvas"), bytes(s.pixels), ...s.shape);
    $("stimulus-note").textContent = `layer ${state.info.layers[conv].name}, channel ${channel}`;
  }).catch(() => {});
}

function drawChannel() {
  const { shown, channel } = state.chosen;
  const { shape, values } = layerOutput(shown);
  const canvas = drawHeatmap($("channel-canvas"), values, shape[0], shape[1], shape[2], channel);
  $("scale-min").textContent = `dark: min ${fixed(canvas.dataset.min)}`;
  $("scale-max").textContent = `bright: max ${fixed(canvas.dataset.max)}`;
  $("channel-scale").hidden = false;
  if (state.pixel) { // mark the explained pixel
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = "#ff3030"; ctx.lineWidth = 0.25;
    ctx.strokeRect(state.pixel[1] + 0.125, state.pixel[0] + 0.125, 0.75, 0.75);
  }
}

function grid(values2d) {
  return el("table", { class: "grid" }, ...values2d.map((row) => el("tr", {}, ...row.map((v) => el("td", { text: fixed(v) })))));
}

async function explain(row, col) {
  const { conv, channel, shown } = state.chosen;
  const [ho, wo] = state.info.layers[conv].output_shape;
  row = row === null ? Math.floor(ho / 2) : row; col = col === null ? Math.floor(wo / 2) : col;
  state.pixel = [row, col];
  const e = await api("/api/conv", { image: state.spec, layer: conv, channel, row, col });
  drawChannel();
  const info = state.info.layers[conv];
  $("conv-title").textContent = `${state.info.layers[shown].name}, channel ${channel}: click a pixel`;
  $("conv-hint").textContent = `Output pixel (row ${row}, column ${col}) of channel ${channel} of ${e.name}: ` +
    `the ${info.kernel_size.join("×")}×${e.patch[0][0].length} input patch under the kernel (top-left at ` +
    `(${e.origin[0]}, ${e.origin[1]}) of ${e.input}; zeros outside it are the padding), multiplied by the kernel, summed, plus the bias.`;
  const detail = $("conv-detail");
  Object.assign(detail.dataset, { sum: e.sum, output: e.output, activated: e.activated, layer: conv, channel, row, col });
  const c = e.patch[0][0].length, shownChannels = Math.min(c, 8);
  const grids = el("div", { class: "grids" });
  for (let k = 0; k < shownChannels; k++) {
    const pick = (a) => a.map((r) => r.map((v) => v[k]));
    grids.append(el("div", { class: "pair" }, el("div", { class: "small", text: `input channel ${k}: patch · kernel` }),
      el("div", { class: "row top" }, grid(pick(e.patch)), grid(pick(e.kernel))),
      el("div", { class: "small", text: `Σ patch×kernel = ${fixed(e.per_channel[k])}` })));
  }
  // the products in the grids' order: input channel 0's patch row by row, then channel 1's, ...
  const equation = el("div", { class: "equation" });
  const term = (text) => el("span", { class: "term", text });
  if (c <= 3) { // write every product out, one line per input channel
    for (let k = 0; k < c; k++) {
      const products = [];
      e.patch.forEach((r, a) => r.forEach((px, b) => products.push(`${fixed(px[k])}×${fixed(e.kernel[a][b][k])}`)));
      equation.append(k ? "\n+ " : "  ");
      products.forEach((t, j) => equation.append(j ? " + " : "", term(t)));
      equation.append(`   (input channel ${k})`);
    }
  } else {
    equation.append("  ");
    e.per_channel.forEach((v, k) => equation.append(k ? " + " : "", term(`Σ${k}(${fixed(v)})`)));
  }
  equation.append("\n+ bias ", term(fixed(e.bias)), "\n= ", term(fixed(e.dot)), " + ", term(fixed(e.bias)), " = ", term(fixed(e.sum)));
  const heat = shown === conv ? e.output : shown === conv + 1 && e.normalised !== null ? e.normalised : e.activated;
  detail.replaceChildren(
    c > shownChannels ? el("div", { class: "small", text: `the first ${shownChannels} of ${c} input channels:` }) : "",
    grids,
    el("div", { class: "small", text: c <= 3 ? "every product, then the bias:" : "the sum over each input channel (Σk), then the bias:" }),
    equation,
    el("div", { class: "result" }, `computed here: ${fixed(e.sum)}; the model's forward pass gave ${fixed(e.output)}`,
      e.normalised !== null ? ` → after BatchNormalization: ${fixed(e.normalised)}` : "",
      e.activation ? ` → after ${e.activation}: ${fixed(e.activated)}` : "",
      el("br"), el("span", { class: "small", text: `(the heatmap you clicked shows ${fixed(heat)} at this pixel)` })));
}

$("channel-canvas").addEventListener("click", (ev) => {
  if (!state.chosen) return;
  const canvas = ev.currentTarget, rect = canvas.getBoundingClientRect();
  const row = Math.floor(((ev.clientY - rect.top) / rect.height) * canvas.height);
  const col = Math.floor(((ev.clientX - rect.left) / rect.width) * canvas.width);
  explain(Math.min(Math.max(row, 0), canvas.height - 1), Math.min(Math.max(col, 0), canvas.width - 1));
});

// -- the run: curves, per-class accuracy, confusion matrix ---------------------------------------
function niceTicks(lo, hi, count = 5) {
  // round numbers from lo to hi, about `count` of them: steps of 1, 2 or 5 times a power of ten
  const raw = (hi - lo) / (count - 1), power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-6; v += step) ticks.push(+v.toFixed(digits));
  return { ticks, digits, lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]) };
}

function drawCurves(history) {
  // loss and accuracy per epoch; the legend sits above each plot, never on the lines
  const canvas = $("curves"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const panels = [["loss", "val_loss"], ["accuracy", "val_accuracy"]], pw = canvas.width / 2;
  const epochs = history.epoch || history[Object.keys(history)[0]].map((_, i) => i + 1);
  const boxes = { plots: [], legends: [], yticks: [], xticks: [] };
  panels.forEach((keys, p) => {
    const series = keys.filter((k) => history[k]);
    const all = series.flatMap((k) => history[k]).filter((v) => v !== null);
    if (!all.length) return;
    let lo = Math.min(...all), hi = Math.max(...all);
    if (hi === lo) { hi += 1; lo -= 1; }
    const y = niceTicks(lo, hi);
    lo = y.lo; hi = y.hi;
    const x0 = p * pw + 48, y0 = 34, w = pw - 64, h = canvas.height - 70;
    const X = (i) => x0 + (epochs.length > 1 ? (i / (epochs.length - 1)) * w : w / 2);
    const Y = (v) => y0 + h - ((v - lo) / (hi - lo)) * h;
    ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    y.ticks.forEach((v) => { // grid line and label
      ctx.strokeStyle = "#eee"; ctx.beginPath(); ctx.moveTo(x0, Y(v)); ctx.lineTo(x0 + w, Y(v)); ctx.stroke();
      ctx.fillStyle = "#333"; ctx.textAlign = "right"; ctx.fillText(v.toFixed(y.digits), x0 - 5, Y(v));
    });
    const every = Math.ceil(epochs.length / 10), xticks = epochs.map((e, i) => i).filter((i) => i % every === 0);
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    xticks.forEach((i) => {
      ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(X(i), y0 + h); ctx.lineTo(X(i), y0 + h + 4); ctx.stroke();
      ctx.fillText(String(epochs[i]), X(i), y0 + h + 6);
    });
    ctx.fillText("epoch", x0 + w / 2, y0 + h + 20);
    ctx.strokeStyle = "#999"; ctx.strokeRect(x0, y0, w, h);
    ctx.textAlign = "left"; ctx.textBaseline = "alphabetic"; ctx.font = "bold 12px sans-serif";
    ctx.fillText(keys[0], x0, 14);
    ctx.font = "11px sans-serif";
    let lx = x0 + w;
    series.slice().reverse().forEach((k) => { // legend right-aligned above the plot
      const s = series.indexOf(k), label = s ? "validation" : "training", tw = ctx.measureText(label).width;
      lx -= tw + 26;
      ctx.strokeStyle = s ? "#e2862a" : "#2a7ae2"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(lx, 10); ctx.lineTo(lx + 16, 10); ctx.stroke(); ctx.lineWidth = 1;
      ctx.fillStyle = "#333"; ctx.fillText(label, lx + 20, 14);
      boxes.legends.push([lx, 2, tw + 20, 16]);
    });
    series.forEach((k, s) => {
      ctx.strokeStyle = s ? "#e2862a" : "#2a7ae2"; ctx.fillStyle = ctx.strokeStyle; ctx.beginPath();
      history[k].forEach((v, i) => { if (v === null) return; if (i === 0) ctx.moveTo(X(i), Y(v)); else ctx.lineTo(X(i), Y(v)); });
      ctx.stroke();
      history[k].forEach((v, i) => { if (v !== null) ctx.fillRect(X(i) - 2, Y(v) - 2, 4, 4); });
    });
    boxes.plots.push([x0, y0, w, h]); boxes.yticks.push(y.ticks.length); boxes.xticks.push(xticks.length);
  });
  canvas.dataset.boxes = JSON.stringify(boxes);
}

async function showRun(reply) {
  const run = state.run = reply || await api("/api/run"), names = run.classes;
  $("curves").hidden = !run.history;
  if (run.history) { drawCurves(run.history); $("curves-note").textContent = `training curves (history.csv beside the model): ${run.epochs} epoch(s)`; }
  else { $("curves-note").textContent = "no history.csv beside the model file: no curves"; }
  if (!run.confusion) {
    $("accuracy-note").textContent = "no test images (start with --data-dir): no accuracy or confusion matrix";
    $("confusion-heading").hidden = true; $("confusion-row").hidden = true;
    return;
  }
  $("confusion-heading").hidden = false; $("confusion-row").hidden = false;
  const which = run.watching && run.model_epoch !== null ? `the model after epoch ${run.model_epoch}, ` : "";
  $("accuracy-note").textContent = `test accuracy ${(100 * run.accuracy).toFixed(2)}% (${which}${run.test_images.toLocaleString()} test images); per class:`;
  $("per-class").replaceChildren(...run.per_class.map((a, k) => bar(names[k], a === null ? 0 : a)));
  const table = $("confusion");
  table.replaceChildren(el("tr", {}, el("th", { text: "true \\ predicted" }), ...names.map((n) => el("th", { text: n.slice(0, 5), title: n }))));
  run.confusion.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    table.append(el("tr", {}, el("th", { class: "rowname", text: names[t] }), ...row.map((count, p) => {
      const [r, g, b] = colour(count / total);
      const cell = el("td", { text: count, "data-true": t, "data-pred": p,
        style: `background: rgb(${r},${g},${b}); color: ${count / total > 0.6 ? "#000" : "#fff"}` });
      cell.addEventListener("click", () => showCell(t, p, cell));
      return cell;
    })));
  });
}

async function showCell(t, p, cell) {
  document.querySelectorAll("#confusion td.picked").forEach((c) => c.classList.remove("picked"));
  cell.classList.add("picked");
  const reply = await api(`/api/images?label=${t}&predicted=${p}&count=200`), names = state.info.classes;
  $("cell-note").textContent = `${reply.total} test images of ${names[t]} predicted as ${names[p]}` +
    (reply.total > reply.images.length ? ` (the first ${reply.images.length})` : "") + "; click one to look inside";
  $("cell-thumbs").replaceChildren(...reply.images.map((im) => thumb(im, reply.shape)));
  markSelected();
}

// -- the first layer's filters ----------------------------------------------------------------------
async function showFilters() {
  let reply;
  try { reply = await api("/api/filters"); } catch { $("filters-note").textContent = "no convolution in this model"; return; }
  const [kh, kw, c] = reply.shape;
  $("filters-note").textContent = `${state.info.layers[reply.layer].name}: ${reply.tiles.length} kernels of ${kh}×${kw}×${c}, ` +
    `each scaled on its own to the full range${c === 3 ? " and shown as a colour image" : c === 1 ? "" : " (channel 0 shown)"}`;
  if (reply.epoch !== null) $("filters-note").textContent += `; after epoch ${reply.epoch}`;
  $("filter-tiles").replaceChildren(...kernelTiles(reply.tiles, reply.shape));
  $("filter-tiles").dataset.epoch = reply.epoch ?? "";
  $("filter-tiles").dataset.tiles = reply.tiles.join("");
  state.timeline = reply.timeline ? { ...reply.timeline, shape: reply.shape } : null;
  $("timeline").hidden = !state.timeline;
  if (!state.timeline) return;
  const slider = $("timeline-slider"), last = state.timeline.epochs.length - 1;
  slider.max = last;
  if (state.follow || Number(slider.value) > last) slider.value = last; // at the end: follow each new epoch
  showTimeline();
}

function kernelTiles(tiles, [kh, kw, c]) {
  return tiles.map((t, f) => {
    const canvas = drawPixels(document.createElement("canvas"), bytes(t).filter((_, i) => c === 3 || c === 1 || i % c === 0), kh, kw, c === 3 ? 3 : 1);
    canvas.title = `filter ${f}`;
    return canvas;
  });
}

function showTimeline() {
  const t = state.timeline, i = Number($("timeline-slider").value), epoch = t.epochs[i];
  state.follow = i === t.epochs.length - 1;
  $("timeline-epoch").textContent = epoch === 0 ? "before training (the random start)" :
    `after epoch ${epoch} (${i + 1} of ${t.epochs.length} snapshots)`;
  $("timeline-tiles").replaceChildren(...kernelTiles(t.tiles[i], t.shape));
  $("timeline-tiles").dataset.epoch = epoch;
}

// -- watching a training run ------------------------------------------------------------------------
function watchStatus(run, stopped) {
  const status = $("watch-status");
  status.hidden = false;
  status.classList.toggle("stopped", Boolean(stopped));
  if (stopped) {
    status.textContent = `The explorer stopped answering (${stopped}): the training has ended or was stopped. ` +
      `To look at the run again: python -m minicnn.explore ${run ? run.run_dir : "RUN_DIR"}`;
    return;
  }
  const model = !run.has_model ? "waiting for the first epoch" :
    run.model_epoch !== null ? `showing the model after epoch ${run.model_epoch}` : "showing its model.npz (which records no epoch)";
  status.textContent = `Watching ${run.run_dir}: ${run.epochs} epoch(s) in history.csv, ${model}; ` +
    `checked ${new Date().toLocaleTimeString()}` + (run.problem ? ` (${run.problem})` : "");
  document.body.dataset.epochs = run.epochs;
}

async function ask(path) {
  // a poll: a failure is said in the status line, not the error banner
  const reply = await fetch(path);
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

async function waitForModel(run) {
  $("main").hidden = true; $("waiting").hidden = false;
  while (!run.has_model) {
    $("waiting-note").textContent = run.started ?
      `Training has started in ${run.run_dir} but no epoch has finished yet: the page shows the model after each epoch's checkpoint (model.npz).` :
      `Nothing in ${run.run_dir} yet: start the training with --out ${run.run_dir}; this page follows it.`;
    watchStatus(run);
    await new Promise((done) => setTimeout(done, POLL_MS));
    try { run = await ask("/api/run"); } catch (err) { // gone: say so, and keep asking, less often
      watchStatus(run, err.message);
      await new Promise((done) => setTimeout(done, 4 * POLL_MS));
    }
  }
  $("main").hidden = false; $("waiting").hidden = true;
  return run;
}

async function poll() {
  let run, wait = POLL_MS;
  try {
    run = await ask("/api/run");
  } catch (err) { // the server is gone (the training ended) or busy: say so, and keep asking, less often
    watchStatus(state.run, err.message);
    setTimeout(poll, 5 * POLL_MS);
    return;
  }
  try {
    watchStatus(run);
    state.seen.push(run.epochs);
    if (run.version !== state.version) { // a new checkpoint: everything the model computes again
      await showRun(run);
      await showFilters();
      if (state.info.test_images) await listImages();
      if (state.spec) await select(state.spec);
      if (state.chosen) showStimulus(); // the new weights like another pattern
      state.version = run.version; // only once all of it is drawn: a failure is redrawn at the next poll
    } else if (run.epochs !== state.run.epochs) {
      await showRun(run);
    }
    document.body.dataset.version = state.version;
  } catch (err) { // one redraw failed (said in the error line): the next poll tries again
    wait = 2 * POLL_MS;
  } finally {
    setTimeout(poll, wait);
  }
}

// -- start ------------------------------------------------------------------------------------
function drawScales() {
  // the heatmaps' colour scale, left (a channel's minimum) to right (its maximum)
  document.querySelectorAll("canvas.scale").forEach((canvas) => {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, 1);
    for (let x = 0; x < canvas.width; x++) img.data.set([...colour(x / (canvas.width - 1)), 255], 4 * x);
    ctx.putImageData(img, 0, 0);
  });
}

async function start() {
  drawScales();
  let run = await api("/api/run");
  if (run.watching) run = await waitForModel(run);
  state.version = run.version;
  const info = state.info = await api("/api/model");
  $("model-title").textContent = `${info.name}: ${info.layers.length} layers, ${info.params.toLocaleString()} parameters, ` +
    `input ${shapeText(info.input_shape)}`;
  $("norm-note").textContent = info.normalisation.note;
  const select_ = $("class-select");
  select_.replaceChildren(el("option", { value: "", text: "all" }), ...info.classes.map((n, k) => el("option", { value: k, text: n })));
  select_.addEventListener("change", listImages);
  $("wrong-only").addEventListener("change", listImages);
  $("random-btn").addEventListener("click", () => select({ index: Math.floor(Math.random() * info.test_images) }));
  $("synthetic-btn").addEventListener("click", () => select({ synthetic: true }));
  $("file-input").addEventListener("change", (ev) => ev.target.files.length && upload(ev.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); if (ev.dataTransfer.files.length) upload(ev.dataTransfer.files[0]); });
  if (info.test_images) {
    await listImages();
    await select({ index: 0 });
  } else {
    for (const id of ["class-select", "wrong-only", "random-btn"]) $(id).disabled = true;
    $("thumbs").textContent = "no test images (start the explorer with --data-dir): a synthetic picture, or your own";
    await select({ synthetic: true });
  }
  $("timeline-slider").addEventListener("input", showTimeline);
  await Promise.all([showRun(run), showFilters()]);
  document.body.dataset.ready = "1";
  if (run.watching) { watchStatus(state.run); setTimeout(poll, POLL_MS); }
}

start();
