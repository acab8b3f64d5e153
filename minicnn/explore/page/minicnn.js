// minicnn's forward pass in plain JavaScript: one function per layer, the same maths as the
// Python layers in minicnn/layers/. A tensor is {shape, data}: shape [H, W, C] (a picture,
// channels last, as minicnn) or [D] (a vector); data a Float32Array in row-major order, so
// element (i, j, c) sits at (i * W + j) * C + c. One picture at a time: no batch axis.
// Sums are kept in float64 and stored as float32, so results match NumPy's to float32 rounding.
"use strict";

const minicnn = (() => {
  const LEAKY_RELU_SLOPE = 0.2; // Keras's activation="leaky_relu" (LeakyReLU layers carry their own alpha)

  function tensor(shape, data) {
    return { shape, data: data || new Float32Array(shape.reduce((a, b) => a * b, 1)) };
  }

  function map(x, f) {
    const y = tensor(x.shape);
    for (let i = 0; i < x.data.length; i++) y.data[i] = f(x.data[i]);
    return y;
  }

  // y_i = exp(x_i - max) / sum_j exp(x_j - max) over the last axis; the shift keeps every exp in (0, 1].
  function softmax(x) {
    const k = x.shape[x.shape.length - 1];
    const y = tensor(x.shape);
    for (let start = 0; start < x.data.length; start += k) {
      let max = -Infinity, sum = 0;
      for (let i = start; i < start + k; i++) max = Math.max(max, x.data[i]);
      const e = new Float64Array(k);
      for (let i = 0; i < k; i++) sum += e[i] = Math.exp(x.data[start + i] - max);
      for (let i = 0; i < k; i++) y.data[start + i] = e[i] / sum;
    }
    return y;
  }

  // The activations Keras names (minicnn/layers/keras_activations.py), element-wise but softmax.
  const ACTIVATIONS = {
    linear: (x) => x,
    relu: (x) => map(x, (v) => Math.max(v, 0)),
    leaky_relu: (x) => map(x, (v) => (v > 0 ? v : LEAKY_RELU_SLOPE * v)),
    sigmoid: (x) => map(x, (v) => 1 / (1 + Math.exp(-v))),
    tanh: (x) => map(x, Math.tanh),
    softmax,
  };

  // Conv2D: z[i, j, f] = b[f] + sum_{a, b', c} xp[i*sh + a, j*sw + b', c] * W[a, b', c, f], y = act(z).
  // xp is x padded with zeros (pads: top, bottom, left, right); W has shape (kh, kw, C, F).
  function Conv2D(layer, x, w) {
    const [h, wd, c] = x.shape, [kh, kw] = layer.kernel_size, [sh, sw] = layer.strides;
    const [pt, , pl] = layer.pads, [ho, wo, f] = layer.output_shape;
    const y = tensor([ho, wo, f]), z = new Float64Array(f);
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        for (let o = 0; o < f; o++) z[o] = w.b[o];
        for (let a = 0; a < kh; a++) {
          const row = i * sh + a - pt;
          if (row < 0 || row >= h) continue; // a padding row: its zeros add nothing
          for (let b = 0; b < kw; b++) {
            const col = j * sw + b - pl;
            if (col < 0 || col >= wd) continue;
            for (let ch = 0; ch < c; ch++) {
              const v = x.data[(row * wd + col) * c + ch], k = ((a * kw + b) * c + ch) * f;
              for (let o = 0; o < f; o++) z[o] += v * w.W[k + o];
            }
          }
        }
        y.data.set(z, (i * wo + j) * f);
      }
    }
    return ACTIVATIONS[layer.activation](y);
  }

  // Dense: y = act(x @ W + b), W of shape (D, U).
  function Dense(layer, x, w) {
    const d = x.data.length, u = layer.output_shape[0];
    const z = Float64Array.from(w.b);
    for (let k = 0; k < d; k++) {
      const v = x.data[k];
      for (let o = 0; o < u; o++) z[o] += v * w.W[k * u + o];
    }
    return ACTIVATIONS[layer.activation](tensor([u], Float32Array.from(z)));
  }

  // MaxPool2D: y[i, j, c] = max over the window x[i*sh + a, j*sw + b, c], a < ph, b < pw (no padding).
  function MaxPool2D(layer, x) {
    const [, wd, c] = x.shape, [ph, pw] = layer.pool_size, [sh, sw] = layer.strides;
    const [ho, wo] = layer.output_shape, y = tensor([ho, wo, c]);
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        for (let ch = 0; ch < c; ch++) {
          let max = -Infinity;
          for (let a = 0; a < ph; a++) {
            for (let b = 0; b < pw; b++) max = Math.max(max, x.data[((i * sh + a) * wd + j * sw + b) * c + ch]);
          }
          y.data[(i * wo + j) * c + ch] = max;
        }
      }
    }
    return y;
  }

  // Flatten: (H, W, C) -> (H*W*C,) in row-major order, so the data is already in place.
  const Flatten = (layer, x) => tensor([x.data.length], x.data);
  // Dropout: the identity at inference (minicnn scales the kept units while training instead).
  const Dropout = (layer, x) => x;
  // ReLU: y = max(x, 0). LeakyReLU: y = x if x > 0 else alpha * x.
  const ReLU = (layer, x) => ACTIVATIONS.relu(x);
  const LeakyReLU = (layer, x) => map(x, (v) => (v > 0 ? v : layer.alpha * v));
  // Activation: y = act(x), act one of the Keras names above.
  const Activation = (layer, x) => ACTIVATIONS[layer.activation](x);
  // Rescaling: y = x * scale + offset.
  const Rescaling = (layer, x) => map(x, (v) => v * layer.scale + layer.offset);

  // Normalization: y = (x - mean) / max(sqrt(variance), 1e-7), both stored broadcast to x's shape.
  function Normalization(layer, x, w) {
    const y = tensor(x.shape);
    for (let i = 0; i < x.data.length; i++) y.data[i] = Math.fround(x.data[i] - w.mean[i]) / w.denominator[i];
    return y;
  }

  // BatchNormalization at inference, per channel c (the last axis), with the moving statistics:
  // y = gamma[c] * (x - moving_mean[c]) / sqrt(moving_variance[c] + epsilon) + beta[c].
  // gamma is 1 and beta 0 when the layer learns neither (scale=False, center=False).
  function BatchNormalization(layer, x, w) {
    const c = x.shape[x.shape.length - 1], y = tensor(x.shape);
    const invstd = w.moving_variance.map((v) => 1 / Math.sqrt(Math.fround(v + layer.epsilon))); // float32, as NumPy
    for (let i = 0; i < x.data.length; i++) {
      const k = i % c, xhat = Math.fround(Math.fround(x.data[i] - w.moving_mean[k]) * invstd[k]);
      y.data[i] = (w.gamma ? Math.fround(xhat * w.gamma[k]) : xhat) + (w.beta ? w.beta[k] : 0);
    }
    return y;
  }

  // AveragePooling2D: y[i, j, c] = (1 / count) * sum of x[i*sh + a - pt, j*sw + b - pl, c] over the
  // window (a < ph, b < pw), count the window's real pixels: "same"'s zero padding is left out of
  // the mean (Keras's rule), so a border window averages fewer pixels. pads: top, bottom, left, right.
  function AveragePooling2D(layer, x) {
    const [h, wd, c] = x.shape, [ph, pw] = layer.pool_size, [sh, sw] = layer.strides;
    const [pt, , pl] = layer.pads, [ho, wo] = layer.output_shape, y = tensor([ho, wo, c]);
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        for (let ch = 0; ch < c; ch++) {
          let sum = 0, count = 0;
          for (let row = i * sh - pt; row < i * sh - pt + ph; row++) {
            if (row < 0 || row >= h) continue; // a padding row: not in the mean
            for (let col = j * sw - pl; col < j * sw - pl + pw; col++) {
              if (col < 0 || col >= wd) continue;
              sum += x.data[(row * wd + col) * c + ch];
              count++;
            }
          }
          y.data[(i * wo + j) * c + ch] = sum / count;
        }
      }
    }
    return y;
  }

  // GlobalAveragePooling2D: y[c] = (1 / (H*W)) * sum over i, j of x[i, j, c]; (H, W, C) -> (C,).
  function GlobalAveragePooling2D(layer, x) {
    const [h, wd, c] = x.shape, sums = new Float64Array(c);
    for (let i = 0; i < h * wd * c; i++) sums[i % c] += x.data[i];
    return tensor([c], Float32Array.from(sums, (v) => v / (h * wd)));
  }

  // Residual: y = F(x) + P(x), F the block's layers one after the other, P the projection (a layer
  // of the entry's own, say a 1x1 Conv2D) or the identity. run(entry, x) runs an inner layer with its weights.
  function Residual(layer, x, w, run) {
    let f = x;
    for (const inner of layer.layers) f = run(inner, f);
    const p = layer.projection ? run(layer.projection, x) : x, y = tensor(f.shape);
    for (let i = 0; i < y.data.length; i++) y.data[i] = f.data[i] + p.data[i];
    return y;
  }

  const LAYERS = { Conv2D, Dense, MaxPool2D, Flatten, Dropout, ReLU, LeakyReLU, Activation, Rescaling, Normalization };
  Object.assign(LAYERS, { BatchNormalization, AveragePooling2D, GlobalAveragePooling2D, Residual });

  // A layer's entry and the entries inside it (a Residual's block and projection), depth first.
  const entries = (layer) => [layer, ...(layer.layers || []).concat(layer.projection || []).flatMap(entries)];

  // The weights: base64 of float32 little-endian values, as one Float32Array.
  function decodeWeights(base64) {
    const text = atob(base64), bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    let all = new Float32Array(bytes.buffer); // read in the machine's byte order: right where it is little-endian
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
      const view = new DataView(bytes.buffer); // a big-endian machine: read each value as little-endian
      all = Float32Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
    }
    return all;
  }

  // A layer's arrays: views of all, each at the [offset, shape] (in values) its entry gives.
  function arraysOf(layer, all) {
    const arrays = {};
    for (const [key, [offset, shape]] of Object.entries(layer.weights)) {
      arrays[key] = all.subarray(offset, offset + shape.reduce((a, b) => a * b, 1));
    }
    return arrays;
  }

  // A model from its architecture (model.json) and weights: forward gives every layer's output.
  function load(architecture, base64) {
    for (const layer of architecture.layers.flatMap(entries)) {
      if (!LAYERS[layer.kind]) throw new Error(`minicnn.js has no layer ${layer.kind}`);
    }
    const all = decodeWeights(base64);
    const weights = new Map(architecture.layers.flatMap(entries).map((layer) => [layer, arraysOf(layer, all)]));
    const run = (layer, x) => LAYERS[layer.kind](layer, x, weights.get(layer), run);
    // Pixels 0-255 as the model was trained on them: by its own layers, or the stored mean and std.
    function prepare(pixels) {
      const x = tensor(architecture.input_shape, Float32Array.from(pixels));
      const p = architecture.preprocessing, c = architecture.input_shape[2];
      if (p.kind === "standardize") {
        for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i] - p.mean[i % c]) / p.std[i % c];
      }
      return x;
    }
    function forward(pixels) {
      const outputs = [];
      let x = prepare(pixels);
      for (const layer of architecture.layers) outputs.push((x = run(layer, x)));
      return outputs;
    }
    // Class probabilities: the model's own final softmax, else the softmax of its logits (as predict).
    function probabilities(outputs) {
      const last = outputs[outputs.length - 1];
      return Array.from(architecture.ends_in_softmax ? last.data : softmax(last).data);
    }
    return { architecture, forward, probabilities };
  }

  return { load, tensor, softmax };
})();
