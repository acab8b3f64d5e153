"""Keras in: ``load_keras`` rebuilds a stored Keras model as a minicnn Sequential, checked whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backend import get_backend
from ..layers.base import shapes_only
from ..sequential import Sequential, load_model
from .containers import _read_legacy_h5, _read_zip
from .convert import (
    _convert,
    _describe,
    _layer_name,
    batch_normalization_weights,
    normalization_weights,
    set_normalization_weights,
)
from .format import (
    _HDF5_SIGNATURE,
    _ZIP_SIGNATURE,
    KERAS_SUFFIXES,
    KerasFormatError,
    _import_h5py,
    _slots,
    layer_arrays,
)


def load_any(path):
    """``(model, extra)`` from a model file of either kind: a Keras file (told by its suffix,
    :data:`KERAS_SUFFIXES`: a checkpoint is a zip too, so the content cannot tell) with no
    extra, else a minicnn checkpoint, as :func:`minicnn.sequential.load_model` gives it."""
    if Path(path).suffix.lower() in KERAS_SUFFIXES:
        return load_keras(path), {}
    return load_model(path)


def load_keras(path) -> Sequential:
    """Rebuild a Keras model (``.keras`` zip or legacy ``.h5``) as a minicnn Sequential.

    The stored configuration gives the layers and the input shape; the stored weights are
    loaded into them. A final softmax (``activation="softmax"`` on the last layer, or a last
    ``Activation("softmax")``) is dropped: minicnn's model outputs logits and its ``predict``
    applies the softmax, so ``predict`` returns what Keras's ``predict`` did.

    Raises:
        minicnn.interop.KerasFormatError: damaged file, weights that do not fit the configuration, or a layer
            or option minicnn does not have (the message names the layer).
        ImportError: h5py is not installed.
    """
    h5py = _import_h5py()
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    try:
        if head.startswith(_ZIP_SIGNATURE):
            config, weights = _read_zip(path, h5py)
            return _build(config, weights, slots=True)
        if head == _HDF5_SIGNATURE:
            config, weights = _read_legacy_h5(path, h5py)
            return _build(config, weights, slots=False)
        raise KerasFormatError("not a Keras file: neither a zip (.keras) nor HDF5 (legacy .h5)")
    except KerasFormatError as exc:
        raise KerasFormatError(f"{path}: {exc}") from None
    except (TypeError, AttributeError, KeyError, IndexError) as exc:  # JSON of an unexpected shape
        raise KerasFormatError(f"{path}: malformed model configuration ({type(exc).__name__}: {exc})") from None


# ---- the stored configuration -> minicnn layers -------------------------------------------
def _build(config, weights, slots: bool) -> Sequential:
    """Check everything, then build the model and load its weights (nothing half-built escapes)."""
    name, input_shape, entries, container = _parse_model(config)
    slot_of = dict(zip(map(id, container), _slots(e["class_name"] for e in container))) if slots else None
    layers, loads = [], []  # loads: (keras layer entry, minicnn layer, [kernel, bias])
    for i, entry in enumerate(entries):
        made = _convert(entry, last=i == len(entries) - 1)
        arrays = _layer_weights(entry, weights, slot_of)
        expected = _expected_weights(entry)
        if len(arrays) != len(expected):
            raise KerasFormatError(
                f"{_describe(entry)} has {len(arrays)} stored weight arrays, its configuration "
                f"needs {len(expected)} ({', '.join(expected) or 'none'})"
            )
        if entry["class_name"] == "Normalization":
            if arrays:  # its statistics: set before the build, which checks them against the input
                set_normalization_weights(entry, made[0], arrays)
        elif expected:
            loads.append((entry, made[0], arrays))
        layers.extend(made)
    if not layers:
        raise KerasFormatError("the model has no layers minicnn can run (an empty stack)")
    try:  # first as a plan without memory: a config asking for more than the file holds allocates nothing
        with shapes_only():
            Sequential(layers, input_shape=input_shape, seed=0, name=name)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise KerasFormatError(f"the stored layers do not fit together: {exc}") from None
    for entry, layer, arrays in loads:
        _check_shapes(entry, layer, arrays)
    model = Sequential(layers, input_shape=input_shape, seed=0, name=name)
    backend = get_backend()
    for _entry, layer, arrays in loads:  # in Keras's order (a bias left out stays 0)
        for target, array in zip(layer_arrays(layer), arrays):
            target[...] = backend.asarray(array.astype(np.float32))
    return model


def _parse_model(config):
    """-> (name, input_shape, the layer entries in order without InputLayer, the weight container)."""
    kind = config.get("class_name")
    body = config.get("config")
    if not isinstance(body, dict) or not isinstance(body.get("layers"), list):
        raise KerasFormatError(f"the model configuration has no layer list (class {kind!r})")
    layers = body["layers"]
    for i, entry in enumerate(layers):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("config"), dict)
            or not isinstance(entry.get("class_name"), str)
        ):
            raise KerasFormatError(f"layer {i} of the configuration is malformed: {str(entry)[:200]}")
    if kind == "Sequential":
        chain, container = layers, [e for e in layers if e["class_name"] != "InputLayer"]
    elif kind in ("Functional", "Model"):
        chain, container = _functional_chain(body), layers
    else:
        raise KerasFormatError(
            f"the model is a {kind!r}: only Sequential models, and Functional models that "
            f"are a plain chain of layers, can be loaded"
        )
    inputs = [e for e in chain if e["class_name"] == "InputLayer"]
    if len(inputs) > 1 or (inputs and chain[0] is not inputs[0]):
        raise KerasFormatError("an InputLayer is only allowed first")
    entries = [e for e in chain if e["class_name"] != "InputLayer"]
    name = body.get("name") if isinstance(body.get("name"), str) else "sequential"
    return name, _input_shape(body, chain), entries, container


def _input_shape(body, chain):
    """The input shape without the batch axis, from the InputLayer or wherever Keras kept it."""
    first = chain[0]["config"] if chain else {}
    candidates = [first.get("batch_shape"), first.get("batch_input_shape"), body.get("build_input_shape")]
    if isinstance(body.get("build_config"), dict):
        candidates.append(body["build_config"].get("input_shape"))
    shape = next((c for c in candidates if c is not None), None)
    if shape is None:
        raise KerasFormatError("the configuration stores no input shape (was the model ever built?)")
    dims = shape[1:] if isinstance(shape, list) else None
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise KerasFormatError(
            f"input shape {shape} is not fixed: minicnn needs every size but the batch's (e.g. [null, 32, 32, 3])"
        )
    return tuple(dims)


def _functional_chain(body):
    """A Functional model's layers from input to output, if they form one unbranched chain."""
    layers = body["layers"]
    by_name = {e.get("name", e["config"].get("name")): e for e in layers}
    outputs, inputs = _refs(body.get("output_layers")), _refs(body.get("input_layers"))
    if len(outputs) != 1 or len(inputs) != 1:
        raise KerasFormatError(
            f"the Functional model has {len(inputs)} inputs and {len(outputs)} outputs; "
            f"only a single chain of layers can be loaded"
        )
    chain, current = [], outputs[0]
    while True:
        entry = by_name.get(current)
        if entry is None:
            raise KerasFormatError(f"the Functional graph names a layer {current!r} it does not define")
        chain.append(entry)
        if entry["class_name"] == "InputLayer":
            break
        sources = _inbound(entry)
        if len(sources) != 1 or len(chain) > len(layers):
            raise KerasFormatError(
                f"{_describe(entry)} takes {len(sources)} inputs ({', '.join(map(str, sources))}): the "
                f"Functional graph is not a plain chain, which is all minicnn can run"
            )
        current = sources[0]
    if len(chain) != len(layers):
        extra = sorted(set(by_name) - {e.get("name", e["config"].get("name")) for e in chain})
        raise KerasFormatError(f"the Functional graph is not a plain chain: {extra} are off the input-output path")
    if current != inputs[0]:
        raise KerasFormatError(f"the Functional graph's chain starts at {current!r}, not at its input {inputs[0]!r}")
    return chain[::-1]


def _refs(value):
    """input_layers/output_layers: Keras 2 ``[[name, 0, 0], ...]``, Keras 3 ``[name, 0, 0]`` for one."""
    if not isinstance(value, list) or not value:
        return []
    refs = [value] if isinstance(value[0], str) else value
    return [r[0] for r in refs if isinstance(r, list) and r and isinstance(r[0], str)]


def _inbound(entry):
    """Names of the layers feeding ``entry`` over all its calls (each call counts)."""
    nodes = entry.get("inbound_nodes") or []
    names = []
    for node in nodes:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            names.extend(_keras_tensors(node))
        elif isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
            names.extend(t[0] for t in node if isinstance(t, list) and t and isinstance(t[0], str))
    return names


def _keras_tensors(value):
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history") or [None]
            return [history[0]]
        return [n for v in value.values() for n in _keras_tensors(v)]
    if isinstance(value, list):
        return [n for v in value for n in _keras_tensors(v)]
    return []


def _layer_weights(entry, weights, slot_of):
    if slot_of is not None:  # .keras: arrays in vars order
        return weights.get(slot_of[id(entry)], [])
    stored = weights.get(_layer_name(entry), [])  # legacy: order by name, kernel first
    if not stored:
        return []
    by_role = {w.rsplit("/", 1)[-1].split(":")[0]: a for w, a in stored}
    if set(by_role) != set(_expected_weights(entry)) or len(by_role) != len(stored):
        raise KerasFormatError(
            f"{_describe(entry)} stores weights {[w for w, _ in stored]}, its configuration "
            f"needs {', '.join(_expected_weights(entry)) or 'none'}"
        )
    return [by_role[r] for r in _expected_weights(entry)]


def _expected_weights(entry):
    if entry["class_name"] == "Normalization":
        return normalization_weights(entry)
    if entry["class_name"] == "BatchNormalization":
        return batch_normalization_weights(entry)
    if entry["class_name"] in ("Conv2D", "Dense"):
        return ["kernel", "bias"] if entry["config"].get("use_bias", True) else ["kernel"]
    return []


def _check_shapes(entry, layer, arrays):
    for role, array, target in zip(_expected_weights(entry), arrays, layer_arrays(layer)):
        want = target.shape
        if tuple(array.shape) != tuple(want):
            raise KerasFormatError(
                f"{_describe(entry)}: stored {role} has shape {tuple(array.shape)}, the "
                f"configuration (on input {(None,) + layer.input_shape}) needs {tuple(want)}"
            )
        if array.dtype.kind != "f":
            raise KerasFormatError(f"{_describe(entry)}: stored {role} is {array.dtype}, not floating point")
