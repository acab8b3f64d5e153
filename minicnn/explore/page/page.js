// The page's wiring: a dropped or drawn picture becomes the model's input pixels, and the model's
// answer becomes bars and channel images. The maths is in minicnn.js; the model in model.js.
"use strict";

const started = performance.now();
const model = minicnn.load(window.MINICNN_MODEL, window.MINICNN_WEIGHTS);
const arch = model.architecture;
const [H, W, C] = arch.input_shape;
const $ = (id) => document.getElementById(id);

// Raw 0-255 pixels (H*W*C, row-major, channels last) -> a Promise of the class probabilities.
window.minicnnPredict = (pixels) => Promise.resolve(model.probabilities(model.forward(pixels)));

// RGBA canvas pixels -> the model's colour mode: grayscale as Pillow's convert("L") computes it.
function canvasPixels(canvas) {
  const rgba = canvas.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, W, H).data;
  const out = new Float32Array(H * W * C);
  for (let p = 0; p < H * W; p++) {
    const [r, g, b, a] = rgba.subarray(4 * p, 4 * p + 4);
    if (C === 1) out[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    else for (let c = 0; c < C; c++) out[p * C + c] = [r, g, b, a][c];
  }
  return out;
}

// Any image source, resized (the browser's smoothing) to the model's input size, then classified.
function classify(source) {
  const view = $("input-view");
  view.width = W;
  view.height = H;
  const ctx = view.getContext("2d", { willReadFrequently: true }); // read back once per picture
  ctx.fillStyle = "#fff"; // transparent parts of a picture count as white
  ctx.fillRect(0, 0, W, H);
  ctx.drawImage(source, 0, 0, W, H);
  const outputs = model.forward(canvasPixels(view));
  showBars(model.probabilities(outputs));
  showChannels(outputs[firstPictureLayer()]);
  $("input-caption").textContent = `the model's input: ${W}x${H}, ${C} channel${C > 1 ? "s" : ""}`;
}

function showBars(probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  $("bars").dataset.probs = JSON.stringify(probabilities);
  $("bars").innerHTML = "";
  probabilities.forEach((p, k) => {
    const bar = document.createElement("div");
    bar.className = k === best ? "bar top" : "bar";
    bar.innerHTML = `<span class="name"></span><span class="track"><div class="fill"></div></span><span></span>`;
    bar.children[0].textContent = arch.class_names[k];
    bar.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bar.children[2].textContent = `${(100 * p).toFixed(2)}%`;
    $("bars").appendChild(bar);
  });
}

// The first layer that computes something a picture shows (not the preprocessing ones).
function firstPictureLayer() {
  const i = arch.layers.findIndex((l) => l.output_shape.length === 3 && !["Rescaling", "Normalization"].includes(l.kind));
  return i < 0 ? 0 : i;
}

function showChannels(x) {
  const box = $("channels");
  box.innerHTML = "";
  const layer = arch.layers[firstPictureLayer()];
  box.parentElement.hidden = x.shape.length !== 3; // a model of vectors only: no channels to show
  if (box.parentElement.hidden) return;
  $("channels-title").textContent = `The channels of ${layer.name} (${layer.kind})`;
  const [h, w, c] = x.shape;
  for (let ch = 0; ch < c; ch++) {
    let lo = Infinity, hi = -Infinity;
    for (let p = 0; p < h * w; p++) {
      lo = Math.min(lo, x.data[p * c + ch]);
      hi = Math.max(hi, x.data[p * c + ch]);
    }
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    canvas.className = "pixelated";
    const image = canvas.getContext("2d").createImageData(w, h);
    for (let p = 0; p < h * w; p++) {
      const v = hi > lo ? (255 * (x.data[p * c + ch] - lo)) / (hi - lo) : 0;
      image.data.set([v, v, v, 255], 4 * p);
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
    const figure = document.createElement("figure");
    figure.append(canvas, Object.assign(document.createElement("figcaption"), { textContent: `${ch}` }));
    box.appendChild(figure);
  }
}

// A dropped or chosen file: decoded by the browser, never sent anywhere.
function readFile(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const image = new Image();
  image.onload = () => classify(image);
  image.onerror = () => showError(`cannot read ${file.name} as a picture`);
  image.src = URL.createObjectURL(file);
}

function showError(message) {
  $("error").hidden = false;
  $("error").textContent = message;
}

function setUpDrawing() {
  const canvas = $("draw"), ctx = canvas.getContext("2d");
  const clear = () => ((ctx.fillStyle = "#fff"), ctx.fillRect(0, 0, canvas.width, canvas.height));
  let last = null;
  canvas.addEventListener("pointerdown", (e) => ((last = [e.offsetX, e.offsetY]), canvas.setPointerCapture(e.pointerId)));
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    Object.assign(ctx, { strokeStyle: $("ink").value, lineWidth: 18, lineCap: "round" });
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(e.offsetX, e.offsetY);
    ctx.stroke();
    last = [e.offsetX, e.offsetY];
  });
  canvas.addEventListener("pointerup", () => ((last = null), classify(canvas)));
  $("clear").addEventListener("click", () => (clear(), classify(canvas)));
  clear();
}

function setUpDropping() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    readFile(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => readFile(e.target.files[0]));
}

$("title").textContent = `${arch.name}: ${arch.layers.length} layers, input ${W}x${H}x${C}`;
$("preprocessing").textContent = arch.preprocessing_note;
setUpDrawing();
setUpDropping();
classify($("draw"));
window.minicnnLoadMs = performance.now() - started;
document.body.dataset.ready = "1";
