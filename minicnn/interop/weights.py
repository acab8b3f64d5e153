"""Keras's weights-only files: ``model.save_weights("w.weights.h5")`` and ``model.load_weights(...)``.

A ``.weights.h5`` file is the ``model.weights.h5`` of a ``.keras`` zip on its own: HDF5 groups
``layers/<slot>/vars/0, 1, ...`` (kernel, then bias), a slot per layer named after its Keras class
(``conv2d``, ``conv2d_1``, ``leaky_re_lu``, ...). Loading matches slots, so a Keras model of the same
layers (Keras's own file) loads as well as minicnn's; ``.keras`` and legacy ``.h5`` model files are
read for their weights alone. Every array is checked against the model before any weight changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backend import get_backend
from ..run.outputs import write_atomic
from .format import KerasFormatError, _import_h5py, _slots, layer_arrays


def _weighted(model) -> list:
    """``[(slot, layer)]`` for the model's layers with parameters, by Keras's slot names."""
    from .writer import _layer_entry, _unique_names

    entries = [_layer_entry(layer, name) for layer, name in zip(model.layers, _unique_names(model))]
    slots = _slots(e["class_name"] for e in entries)
    return [(slot, layer) for slot, layer in zip(slots, model.layers) if layer_arrays(layer)]


def save_keras_weights(model, path) -> None:
    """Write ``model``'s weights in Keras 3's ``.weights.h5`` layout, atomically."""
    from .writer import _input_layer, _keras_entry, _layer_entry, _unique, _unique_names, _weights_h5

    h5py = _import_h5py()
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"save_keras_weights: {path} should end in .weights.h5 (Keras 3 requires it)")
    names = _unique_names(model)
    entries = [_input_layer(model)] + [_layer_entry(layer, name) for layer, name in zip(model.layers, names)]
    if not model.outputs_probabilities and type(model.layers[-1]).__name__ != "Dense":
        entries.append(_keras_entry("Activation", _unique(names, "softmax"), {"activation": "softmax"}))
    data = _weights_h5(model, entries[1:], h5py)
    write_atomic(path, lambda f: f.write(data))


def _stored(path: Path) -> dict:
    """``{slot: [arrays]}`` (or, for a legacy ``.h5``, ``{layer name: [arrays]}`` in file order)."""
    from .containers import _read_legacy_h5, _read_zip, _refused_as_damaged, _vars_arrays
    from .h5guard import read_hdf5

    h5py = _import_h5py()
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return {k: v for k, v in _read_zip(path, h5py)[1].items() if v}
    if str(path).lower().endswith(".weights.h5"):
        with _refused_as_damaged("weights file"), read_hdf5(path) as f:
            layers = f.get("layers")
            found = {f"layers/{s}": _vars_arrays(layers[s], s) for s in (layers if layers is not None else {})}
            return {slot: arrays for slot, arrays in found.items() if arrays}  # weightless layers have none
    stored = _read_legacy_h5(path, h5py)[1]
    return {name: [a for _, a in arrays] for name, arrays in stored.items() if arrays}


def load_keras_weights(model, path) -> None:
    """Load the weights of a Keras file (``.weights.h5``, ``.keras``, legacy ``.h5``) into ``model``:
    all or nothing, a :class:`KerasFormatError` naming the file and the first mismatch otherwise."""
    path = Path(path)
    if not path.is_file():
        raise KerasFormatError(f"{path}: no such file")
    try:
        stored = _stored(path)
    except KerasFormatError as exc:
        raise KerasFormatError(f"{path}: {exc}") from None
    weighted = _weighted(model)
    legacy = not any(k.startswith("layers/") for k in stored)
    if legacy:  # the layers with weights, in the file's order
        arrays_by_layer = list(stored.values())
        if len(arrays_by_layer) != len(weighted):
            raise KerasFormatError(f"{path}: {len(arrays_by_layer)} layers with weights, the model has {len(weighted)}")
        pairs = list(zip(weighted, arrays_by_layer))
    else:
        missing = [slot for slot, _ in weighted if slot not in stored]
        extra = sorted(set(stored) - {slot for slot, _ in weighted})
        if missing or extra:
            raise KerasFormatError(f"{path}: weights for {missing} missing, {extra} unexpected (the layers differ)")
        pairs = [((slot, layer), stored[slot]) for slot, layer in weighted]
    for (slot, layer), arrays in pairs:
        want = [tuple(p.shape) for p in layer_arrays(layer)]
        got = [tuple(a.shape) for a in arrays]
        if got != want or any(a.dtype.kind != "f" for a in arrays):
            raise KerasFormatError(f"{path}: {slot} ({layer.name}) stores {got}, the model needs {want}")
    backend = get_backend()
    for (_, layer), arrays in pairs:
        for param, array in zip(layer_arrays(layer), arrays):
            param[...] = backend.asarray(np.asarray(array, dtype=param.dtype))
