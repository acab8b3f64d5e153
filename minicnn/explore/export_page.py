"""A page that classifies in the browser, with no server: ``python -m minicnn.explore MODEL --export-page DIR``.

The folder it writes::

    index.html     the page: drop or draw a picture, see the class probabilities and the first
                   convolution's channels (open it from disk; it works offline)
    page.js        the page's wiring: pictures to pixels, pixels to bars and channel images
    minicnn.js     the forward pass, one function per layer, the same maths as minicnn's layers
    model.json     the architecture: each layer's kind, settings, output shape, and where its
                   weights sit in weights.bin (a Residual's block and projection nested in its
                   entry); the input size, preprocessing and class names
    weights.bin    every weight, float32 little-endian, one array after another
    model.js       model.json and weights.bin again (base64), as two globals: a page opened from
                   file:// may not fetch files beside it, but it may load a script

``window.minicnnPredict(pixels)`` (0-255 pixels, H*W*C row-major, channels last) returns a
Promise of the probabilities, what ``python -m minicnn.predict`` computes for the same pixels.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..datasets.model_inputs import carries_preprocessing, class_names, picture_format, pixels_to_inputs
from ..layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    Normalization,
    ReLU,
    Rescaling,
    Residual,
)
from ..layers.normalization import EPSILON
from ..run.outputs import write_atomic, write_text

PAGE_FILES = ("index.html", "page.js", "minicnn.js")  # copied as they are from minicnn/explore/page/
DATA_FILES = ("weights.bin", "model.json", "model.js")  # written for the model


def layer_settings(layer) -> dict:
    """What minicnn.js needs of ``layer`` besides its weights; a ValueError naming a layer it lacks."""
    if isinstance(layer, Conv2D):
        return {"kernel_size": layer.kernel_size, "strides": layer.strides, "pads": layer.pads}
    if isinstance(layer, MaxPool2D):
        return {"pool_size": layer.pool_size, "strides": layer.strides}
    if isinstance(layer, AveragePooling2D):
        return {"pool_size": layer.pool_size, "strides": layer.strides, "pads": layer.pads}
    if isinstance(layer, BatchNormalization):
        return {"epsilon": layer.epsilon}
    if isinstance(layer, LeakyReLU):
        return {"alpha": layer.alpha}
    if isinstance(layer, Rescaling):
        return {"scale": layer.scale, "offset": layer.offset}
    if type(layer) in (Dense, Activation, Dropout, Flatten, ReLU, Normalization, GlobalAveragePooling2D, Residual):
        return {}  # (a Residual's inner layers: layer_entry)
    raise ValueError(f"export_page: layer {layer.name!r} ({type(layer).__name__}) has no JavaScript form")


def layer_weights(layer) -> dict[str, np.ndarray]:
    """The arrays minicnn.js reads: the parameters, and Normalization's constants broadcast to its input."""
    if isinstance(layer, Normalization):
        mean, variance = layer.statistics()
        d = np.maximum(np.sqrt(variance), EPSILON)  # in float64, then float32, as the layer does
        shape = layer.input_shape
        return {
            "mean": np.broadcast_to(mean.reshape(layer._broadcast_shape[1:]), shape),
            "denominator": np.broadcast_to(d.reshape(layer._broadcast_shape[1:]), shape),
        }
    if isinstance(layer, BatchNormalization):  # the moving statistics, which inference uses
        return {key: to_numpy(value) for key, value in {**layer.params, **layer.state}.items()}
    if isinstance(layer, Residual):
        return {}  # its arrays are its inner layers', in their own entries
    return {key: to_numpy(value) for key, value in layer.params.items()}


def architecture_and_weights(model, extra) -> tuple[dict, np.ndarray]:
    """``(model.json's content, every weight as one float32 array)``."""
    picture_format(model)  # a ValueError unless the model takes pictures
    pixels_to_inputs(model, extra)  # a ValueError when stored statistics do not fit
    chunks: list = []
    layers = [layer_entry(layer, chunks) for layer in model.layers]
    if carries_preprocessing(model) or "mean" not in extra or "std" not in extra:
        preprocessing: dict = {"kind": "none"}
    else:  # as float32 values, which the page computes with, as minicnn.datasets.standardize does
        stats = {k: np.asarray(extra[k], np.float32).reshape(-1).tolist() for k in ("mean", "std")}
        preprocessing = {"kind": "standardize", **stats}
    architecture = {
        "name": model.name,
        "input_shape": list(model.input_shape),
        "class_names": class_names(model, extra),
        "ends_in_softmax": model.outputs_probabilities,
        "preprocessing": preprocessing,
        "preprocessing_note": pixels_to_inputs(model, extra)[1],
        "layers": layers,
    }
    weights = np.concatenate(chunks) if chunks else np.zeros(0, "<f4")
    return architecture, weights


def layer_entry(layer, chunks: list) -> dict:
    """``layer``'s entry in model.json; its arrays appended to ``chunks``, the entry saying where.

    A Residual's entry holds its block (``"layers"``) and its projection (an entry, or None),
    each with its own weights, as the Residual runs them."""
    entry = {"kind": type(layer).__name__, "name": layer.name, "output_shape": list(layer.output_shape)}
    entry.update(layer_settings(layer))
    if hasattr(layer, "activation"):
        entry["activation"] = layer.activation
    entry["weights"] = {}
    for key, array in layer_weights(layer).items():
        offset = sum(chunk.size for chunk in chunks)  # in float32 values from weights.bin's start
        chunks.append(np.ascontiguousarray(array, dtype="<f4").reshape(-1))
        entry["weights"][key] = [offset, list(array.shape)]
    if isinstance(layer, Residual):
        entry["layers"] = [layer_entry(inner, chunks) for inner in layer.layers]
        entry["projection"] = None if layer.projection is None else layer_entry(layer.projection, chunks)
    return entry


def export_page(model, extra, folder) -> dict[str, int]:
    """Write the page's folder (see the module's docstring) for ``model`` and its checkpoint's
    ``extra``; every file atomically. Returns each file's size in bytes."""
    architecture, weights = architecture_and_weights(model, extra or {})
    folder = Path(folder)
    model_json = json.dumps(architecture, indent=1)
    blob = weights.tobytes()
    write_atomic(folder / "weights.bin", lambda f: f.write(blob))
    write_text(folder / "model.json", model_json + "\n")
    write_text(
        folder / "model.js",
        "// model.json and weights.bin (base64), as globals: a page opened from file:// cannot fetch files.\n"
        f"window.MINICNN_MODEL = {model_json};\n"
        f'window.MINICNN_WEIGHTS = "{base64.b64encode(blob).decode("ascii")}";\n',
    )
    page = resources.files("minicnn.explore") / "page"
    for name in PAGE_FILES:
        write_text(folder / name, (page / name).read_text(encoding="utf-8"))
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name in {*PAGE_FILES, *DATA_FILES}}
