"""A model's files, weights and summary: the kind of file told by its suffix, as Keras does.

``.npz``          minicnn's checkpoint (:mod:`minicnn.run.checkpoint`): weights, optimizer state, ``extra``
``.keras``        Keras 3's model file (:func:`minicnn.interop.save_keras`; Keras opens it)
``.weights.h5``   Keras 3's weights file (:mod:`minicnn.interop.weights`)
``.h5``           a legacy Keras model file (read only)
``.onnx``         an ONNX graph, pictures in, probabilities out (:func:`minicnn.interop.save_onnx`; write only)
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend, to_numpy
from ..layers.base import count_values, shapes_only
from ..run import checkpoint


def file_kind(path, known: tuple, what: str) -> str:
    """The suffix of ``path`` among ``known`` (``weights.h5`` before ``h5``); a ValueError listing them."""
    name = str(path).lower()
    for kind in sorted(known, key=len, reverse=True):
        if name.endswith("." + kind):
            return kind
    listed = ", ".join("." + k for k in known)
    raise ValueError(f"{what}: {path} has an unknown suffix; known: {listed}")


def save(model, path, optimizer=None, extra=None) -> None:
    """:meth:`minicnn.Sequential.save`."""
    kind = file_kind(path, ("npz", "keras", "onnx"), "save")
    if kind == "keras":
        from . import save_keras

        save_keras(model, path)
        return
    if kind == "onnx":
        from . import save_onnx

        save_onnx(model, path)
        return
    checkpoint.save(model, path, optimizer=optimizer, extra=extra)


def save_weights(model, path) -> None:
    """:meth:`minicnn.Sequential.save_weights`."""
    if file_kind(path, ("weights.h5", "npz"), "save_weights") == "npz":
        checkpoint.save(model, path)
        return
    from . import save_keras_weights

    save_keras_weights(model, path)


def load_weights(model, path, optimizer=None) -> dict:
    """:meth:`minicnn.Sequential.load_weights`."""
    if file_kind(path, ("npz", "weights.h5", "keras", "h5"), "load_weights") == "npz":
        return checkpoint.load_weights(model, path, optimizer=optimizer)
    from . import load_keras_weights

    load_keras_weights(model, path)
    return {}


def summary_lines(model) -> list[str]:
    """The Keras 2 summary table of a built model, line by line."""
    width, cols = 65, (29, 55, 65)

    def row(fields):  # each field starts at the previous column's end, cut to fit
        line = ""
        for field, end in zip(fields, cols):
            line = (line + str(field))[:end].ljust(end)
        return line.rstrip()

    lines = [f'Model: "{model.name}"', "_" * width, row(["Layer (type)", "Output Shape", "Param #"]), "=" * width]
    for i, layer in enumerate(model.layers):
        shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")"
        lines.append(row([f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()]))
        lines.append("=" * width if i == len(model.layers) - 1 else "_" * width)
    total = model.count_params()
    frozen = sum(count_values(getattr(layer, "state", {})) for layer in model.layers)  # moving statistics
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {total - frozen:,}",
        f"Non-trainable params: {frozen:,}",
        "_" * width,
    ]
    return lines


def get_weights(model) -> list:
    """:meth:`minicnn.Sequential.get_weights` (host copies): parameters, then state, layer by layer."""
    return [to_numpy(table[name]).copy() for _, table, name in checkpoint.stored_arrays(model)]


def set_weights(model, weights) -> None:
    """:meth:`minicnn.Sequential.set_weights`: all shapes checked, then every weight set."""
    slots, weights = checkpoint.stored_arrays(model), list(weights)
    if len(weights) != len(slots):
        raise ValueError(f"set_weights: the model has {len(slots)} weight arrays, got {len(weights)}")
    for (key, table, name), w in zip(slots, weights):
        if tuple(np.shape(w)) != tuple(table[name].shape):
            raise ValueError(f"set_weights: {key} has shape {tuple(table[name].shape)}, got {np.shape(w)}")
    backend = get_backend()
    for (_, table, name), w in zip(slots, weights):
        table[name][...] = backend.asarray(np.asarray(w, dtype=table[name].dtype))


def export(model, filepath, format="onnx", opset=17) -> None:
    """Keras's ``model.export(filepath, format="onnx")``: the ONNX graph :func:`minicnn.interop.save_onnx`
    writes, whatever the suffix. The only format: Keras's others ("tf_saved_model", "openvino") need
    their runtimes."""
    if format != "onnx":
        raise ValueError(f"export: format={format!r} is not available in minicnn; it exports format='onnx'")
    from . import save_onnx

    save_onnx(model, filepath, opset=opset)


def load_checkpoint(path, model_class) -> tuple:
    """``(model, extra)`` from a minicnn checkpoint: its stored config is first planned without memory
    (:func:`~minicnn.layers.base.shapes_only`) and the plan's shapes compared with the stored arrays, so a
    config asking for more than the file holds allocates nothing; then built and loaded (one read of the file)."""
    meta, arrays = checkpoint.read_checkpoint(path)
    try:
        with shapes_only():
            plan = model_class.from_config(meta["model"])
    except (KeyError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise checkpoint.CheckpointError(f"{path}: cannot rebuild the model from its stored config ({exc})") from None
    checkpoint.check_parameters(plan, arrays, path)
    model = model_class.from_config(meta["model"])
    return model, checkpoint.load_weights(model, path, contents=(meta, arrays))
