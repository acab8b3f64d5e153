"""The explorer's answers: plain dicts computed by minicnn itself, ready for ``json.dumps``.

Every number the page shows comes from here: the model's own ``forward`` (one image at a
time, every layer's output), :mod:`minicnn.interpret` for the max-stimulus patterns and
the confusion matrix, the run folder's ``history.csv``. The page does no maths.

Arrays travel as base64 text: images as uint8 ``(H, W, C)`` pixels, feature maps as
little-endian float32 ``(H, W, C)`` (JavaScript reads them with a ``Float32Array``).

Requests name images, never files: ``{"index": i}`` (a test image), ``{"pixels": [...]}``
(``H*W*C`` integers 0..255, row by row, channels last) or ``{"synthetic": true}``.
Anything else raises :class:`~minicnn.explore.wire.ApiError`, which the server turns into a 400/404 reply.
"""

from __future__ import annotations

import csv
import math
import threading
from pathlib import Path

import numpy as np

from .. import interpret
from ..backend import get_backend, to_numpy
from ..datasets.model_inputs import class_names  # shared with python -m minicnn.predict
from ..layers import Conv2D, no_grad
from ..losses import softmax
from .one_number import conv_pixel
from .wire import ApiError, b64, integer, kernel_tiles


def read_history(path: Path) -> dict | None:
    """``history.csv`` as ``{column: [floats]}`` (NaN for an empty cell, as JSON ``null``), or None."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None

    def number(text):
        try:
            value = float(text)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    return {key: [number(r.get(key)) for r in rows] for key in rows[0] if key is not None}


class Explorer:
    """One model (and optionally its test set and run folder), answering the page's questions.

    Args:
        model: a built :class:`~minicnn.Sequential`.
        extra: the checkpoint's ``extra`` (``mean``/``std`` of 0..255 pixels, ``class_names``).
        test: ``(x, y)`` uint8 images ``(N, H, W, C)`` and labels, or None.
        run_dir: the folder holding ``history.csv`` (the model file's folder), or None.
        name: the model's name on the page.
        lock: the lock to take around every use of the model (default: a new one); explorers whose
            models may run at once in one process share one (:class:`~minicnn.explore.watch.WatchedRun`).

    One lock serialises every use of the model: a layer's forward writes its work arrays
    (``Layer.scratch``) and ``no_grad`` is one flag for the process, so two requests at once
    could mix their numbers. The lock makes them take turns; each is milliseconds.
    """

    def __init__(self, model, extra=None, test=None, run_dir=None, name="model", lock=None):
        self.model = model
        self.extra = dict(extra or {})
        self.name = name
        self.lock = lock if lock is not None else threading.Lock()
        self.classes = class_names(model, self.extra)
        if "mean" in self.extra and "std" in self.extra:
            self.mean = np.asarray(self.extra["mean"], np.float64).reshape(-1)
            self.std = np.asarray(self.extra["std"], np.float64).reshape(-1)
            self.note = "images are standardised with the mean and std stored in the checkpoint, as in training"
        else:
            c = model.input_shape[-1]
            self.mean, self.std = np.zeros(c), np.ones(c)
            self.note = "this model file holds no normalisation statistics: images go in as they are (0-255 pixels)"
        self.history = read_history(Path(run_dir) / "history.csv") if run_dir is not None else None
        self.timeline: dict | None = None  # the filter timeline's reply (watch.timeline_reply), when there is one
        self.x_test = self.y_test = self.predicted = None
        if test is not None:
            self.x_test, self.y_test = np.asarray(test[0], np.uint8), np.asarray(test[1], np.int64)
            if self.x_test.shape[1:] != tuple(model.input_shape) or len(self.y_test) != len(self.x_test):
                raise ValueError(
                    f"Explorer: test images {self.x_test.shape} and labels {self.y_test.shape} do not fit the "
                    f"model's input {tuple(model.input_shape)}"
                )
            self.predicted = self._predict_all()
        self._stimuli: dict[tuple[int, int], str] = {}

    # -- images in --------------------------------------------------------------------
    def standardise(self, pixels) -> np.ndarray:
        """0..255 pixels ``(..., H, W, C)`` -> the model's input, as in training."""
        return ((np.asarray(pixels, np.float64) - self.mean) / self.std).astype(self.model.dtype)

    def _predict_all(self) -> np.ndarray:
        out = []
        with self.lock:
            for start in range(0, len(self.x_test), 500):
                out.append(self.model.predict(self.standardise(self.x_test[start : start + 500])).argmax(axis=1))
        return np.concatenate(out) if out else np.empty(0, np.int64)

    def image_pixels(self, spec) -> tuple[np.ndarray, dict]:
        """A request's image as 0..255 pixels ``(H, W, C)`` and a description of where it came from."""
        shape = tuple(self.model.input_shape)
        if not isinstance(spec, dict):
            raise ApiError(f"the image must be an object with 'index', 'pixels' or 'synthetic', got {spec!r:.80}")
        if "index" in spec:
            if self.x_test is None:
                raise ApiError("no test images: start the explorer with --data-dir", status=404)
            i = integer(spec["index"], "index", 0, len(self.x_test))
            label, pred = int(self.y_test[i]), int(self.predicted[i])
            return self.x_test[i], {"source": "test", "index": i, "label": label, "predicted": pred}
        if "pixels" in spec:
            values = spec["pixels"]
            n = int(np.prod(shape))
            if not isinstance(values, list) or len(values) != n:
                got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
                raise ApiError(f"pixels must be a list of {n} integers (H*W*C for {shape}), got {got}")
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
                raise ApiError("pixels must be integers in [0, 255]")
            return np.asarray(values, np.uint8).reshape(shape), {"source": "upload"}
        if spec.get("synthetic") is True:
            x = interpret.synthetic_image(shape, mean=self.mean, std=self.std)
            pixels = np.clip(np.round(x * self.std + self.mean), 0, 255).astype(np.uint8)
            return pixels, {"source": "synthetic"}
        raise ApiError(f"the image must name 'index', 'pixels' or 'synthetic': true, got keys {sorted(spec)}")

    def _outputs(self, pixels, upto=None) -> list:
        """Every layer's output (NumPy, batch axis dropped) for one image, under the lock."""
        x = get_backend().asarray(self.standardise(pixels)[None], dtype=self.model.dtype)
        with self.lock, no_grad():
            return [to_numpy(a)[0] for a in self.model.activations(x, upto=upto)]

    # -- the answers --------------------------------------------------------------------
    def info(self) -> dict:
        """``GET /api/model``: the layers, the classes, the normalisation, what data there is."""
        layers, conv_of = [], {}
        for c in interpret.conv_layer_indices(self.model):  # conv -> [BN] -> activation: all explained by the conv
            conv_of.update({k: c for k in range(c + 1, interpret.after_activation(self.model, c) + 1)})
        for i, layer in enumerate(self.model.layers):
            entry = {
                "index": i,
                "name": layer.name,
                "class": type(layer).__name__,
                "output_shape": list(layer.output_shape),
                "params": layer.count_params(),
            }
            if isinstance(layer, Conv2D):
                entry.update(kernel_size=list(layer.kernel_size), strides=list(layer.strides), padding=layer.padding)
                entry["explains"] = i
            elif conv_of.get(i) is not None:
                entry["explains"] = conv_of[i]  # a conv's BN or activation: its pixels are explained by that conv
            layers.append(entry)
        return {
            "name": self.name,
            "input_shape": list(self.model.input_shape),
            "output_shape": list(self.model.output_shape),
            "params": self.model.count_params(),
            "classes": self.classes,
            "layers": layers,
            "normalisation": {"mean": self.mean.tolist(), "std": self.std.tolist(), "note": self.note},
            "test_images": 0 if self.x_test is None else len(self.x_test),
            "has_history": self.history is not None,
        }

    def forward(self, spec) -> dict:
        """``POST /api/forward``: the image, every layer's output and the class probabilities."""
        pixels, source = self.image_pixels(spec)
        outputs = self._outputs(pixels)
        logits = outputs[-1].astype(np.float64)
        probs = to_numpy(softmax(logits[None]))[0] if logits.ndim == 1 else None
        layers = [{"index": i, "shape": list(a.shape), "data": b64(a, np.float32)} for i, a in enumerate(outputs)]
        return {
            **source,
            "shape": list(pixels.shape),
            "pixels": b64(pixels, np.uint8),
            "probs": None if probs is None else probs.tolist(),
            "top": None if probs is None else int(np.argmax(probs)),
            "layers": layers,
        }

    def explain(self, request) -> dict:
        """``POST /api/conv``: how conv layer ``layer`` computes channel ``channel`` at ``(row, col)``
        (:func:`~minicnn.explore.one_number.conv_pixel`), beside the forward pass's own value there."""
        if not isinstance(request, dict):
            raise ApiError("the request must be a JSON object")
        index = integer(request.get("layer"), "layer", 0, len(self.model.layers))
        layer = self.model.layers[index]
        if not isinstance(layer, Conv2D):
            raise ApiError(f"layer {index} ({layer.name}) is a {type(layer).__name__}, not a Conv2D")
        ho, wo, filters = tuple(layer.output_shape or ())
        f = integer(request.get("channel"), "channel", 0, filters)
        i, j = integer(request.get("row"), "row", 0, ho), integer(request.get("col"), "col", 0, wo)
        pixels, source = self.image_pixels(request.get("image"))
        act = interpret.after_activation(self.model, index)
        outputs = self._outputs(pixels, upto=act)
        x = self.standardise(pixels) if index == 0 else outputs[index - 1]
        return {
            **source,
            "layer": index,
            "name": layer.name,
            "channel": f,
            "row": i,
            "col": j,
            "input": "the image (standardised)" if index == 0 else self.model.layers[index - 1].name,
            **conv_pixel(layer, x, f, i, j),
            "output": float(outputs[index][i, j, f]),
            "activation": None if act == index else type(self.model.layers[act]).__name__,
            "activated": float(outputs[act][i, j, f]),
            # conv -> BN -> activation: the value between them (None without a BN)
            "normalised": float(outputs[index + 1][i, j, f]) if act > index + 1 else None,
        }

    def stimulus(self, layer, channel) -> dict:
        """``GET /api/stimulus``: the image conv ``layer``'s channel likes most (gradient ascent,
        after the activation that follows it), as displayable pixels. Cached: it takes a second."""
        n = len(self.model.layers)
        index = integer(layer, "layer", 0, n)
        if not isinstance(self.model.layers[index], Conv2D):
            raise ApiError(f"layer {index} is a {type(self.model.layers[index]).__name__}, not a Conv2D")
        f = integer(channel, "channel", 0, self.model.layers[index].output_shape[-1])
        if (index, f) not in self._stimuli:
            with self.lock:  # max_stimuli runs backward passes: the layers' caches are in use
                x = interpret.max_stimuli(self.model, interpret.after_activation(self.model, index), [f])[0]
            shown = interpret.displayable(x, self.mean, self.std)  # back to 0..1 pixels
            self._stimuli[(index, f)] = b64(np.round(shown * 255), np.uint8)
        return {
            "layer": index,
            "channel": f,
            "shape": list(self.model.input_shape),
            "pixels": self._stimuli[(index, f)],
        }

    def filters(self) -> dict:
        """``GET /api/filters``: the first conv layer's kernels, each scaled on its own to 0..255."""
        convs = interpret.conv_layer_indices(self.model)
        if not convs:
            raise ApiError("the model has no Conv2D layer", status=404)
        w = to_numpy(self.model.layers[convs[0]].params["W"])
        epoch = self.extra.get("epoch")  # a training script's checkpoint says how many epochs it holds
        return {
            "layer": convs[0],
            "shape": list(w.shape[:3]),
            "tiles": kernel_tiles(w),
            "epoch": epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
            "timeline": self.timeline,
        }

    def run(self) -> dict:
        """``GET /api/run``: the training curves, and the test set's per-class accuracy and confusion matrix."""
        epochs = len(next(iter(self.history.values()))) if self.history else 0
        answer: dict = {"history": self.history, "classes": self.classes, "epochs": epochs}
        answer.update(watching=False, started=True, has_model=True, version=1)  # a watched run's own: watch.py
        answer["test_images"] = 0 if self.x_test is None else len(self.x_test)
        if self.x_test is None:
            return {**answer, "confusion": None, "per_class": None, "accuracy": None}
        k = len(self.classes)
        m = interpret.confusion_matrix(self.y_test, self.predicted, k)
        rows = m.sum(axis=1)
        per_class = [float(m[c, c] / rows[c]) if rows[c] else None for c in range(k)]
        return {**answer, "confusion": m.tolist(), "per_class": per_class, "accuracy": float(np.trace(m) / m.sum())}

    def images(self, query: dict) -> dict:
        """``GET /api/images``: test images filtered by ``label``, ``predicted``, ``wrong=1``; ``start``/``count``."""
        if self.x_test is None:
            raise ApiError("no test images: start the explorer with --data-dir", status=404)
        known = {"label", "predicted", "wrong", "start", "count"}
        if set(query) - known:
            raise ApiError(f"unknown parameters {sorted(set(query) - known)}; known: {sorted(known)}")
        k = len(self.classes)
        keep = np.ones(len(self.x_test), bool)
        if "label" in query:
            keep &= self.y_test == integer(query["label"], "label", 0, k)
        if "predicted" in query:
            keep &= self.predicted == integer(query["predicted"], "predicted", 0, k)
        if "wrong" in query and integer(query["wrong"], "wrong", 0, 2):
            keep &= self.predicted != self.y_test
        chosen = np.flatnonzero(keep)
        start = integer(query.get("start", 0), "start", 0, max(len(chosen), 1))
        count = integer(query.get("count", 48), "count", 1, 501)
        page = chosen[start : start + count]
        return {
            "total": len(chosen),
            "start": start,
            "shape": list(self.x_test.shape[1:]),
            "images": [
                {
                    "index": int(i),
                    "label": int(self.y_test[i]),
                    "predicted": int(self.predicted[i]),
                    "pixels": b64(self.x_test[i], np.uint8),
                }
                for i in page
            ],
        }
