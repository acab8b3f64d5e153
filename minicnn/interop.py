"""Keras in and out: ``load_keras`` reads a Keras model file, ``save_keras`` writes one.

Two file layouts are read (the kind is told by the file's first bytes, not its name):

``.keras`` (Keras 3, and Keras 2.13+ with ``model.save("x.keras")``) is a zip::

    metadata.json       {"keras_version": ..., "date_saved": ...}
    config.json         the model: {"class_name": "Sequential", "config": {"layers": [
                            {"class_name": "InputLayer", "config": {"batch_shape": [null, 32, 32, 3]}},
                            {"class_name": "Conv2D", "config": {"filters": 16, ...}}, ...]}}
    model.weights.h5    HDF5: layers/<slot>/vars/0, 1, ...  (kernel, then bias)

    A layer's <slot> is not its name but its class in snake case, numbered by order of
    appearance: conv2d, conv2d_1, leaky_re_lu, max_pooling2d, dense, dense_1, ... over
    ``model.layers`` (a Sequential's leaves out the InputLayer, a Functional's keeps it).

legacy ``.h5`` (``model.save("x.h5")`` in Keras 2 / tf.keras, and Keras 3's legacy writer)
is one HDF5 file::

    attrs["model_config"]           the same JSON as config.json (Keras 2 spells the input
                                    shape ``batch_input_shape`` and LeakyReLU's slope ``alpha``)
    model_weights/<layer name>      attrs["weight_names"] = ["conv2d/kernel:0", "conv2d/bias:0"]
    model_weights/<layer name>/<weight name>    the arrays

Loading parses JSON and reads arrays, nothing else: no Lambda is deserialised, nothing is
unpickled, no code from the file runs. Only plain stacks of the layers minicnn has are
accepted (see ``SUPPORTED``); anything else is refused with a :class:`KerasFormatError`
naming the layer. The whole file is checked (every weight present, with the shape the
configuration implies) before a model is returned.

Keras's kernels are already minicnn's layout: Conv2D ``(kh, kw, C_in, F)``, Dense
``(n_in, units)``, images NHWC (``channels_last``).

h5py is needed for both directions (``pip install -e ".[keras]"``); Keras never is.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._version import __version__
from .backend import get_backend
from .h5guard import HDF5ReadError, read_hdf5
from .layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from .layers.base import snake_case
from .layers.im2col import padding_amounts
from .outputs import write_atomic
from .sequential import Sequential, load_model

SUPPORTED = (
    "InputLayer, Conv2D (channels_last, dilation 1, groups 1), Dense, LeakyReLU, ReLU, "
    "Activation('relu' or 'linear'), MaxPooling2D (padding 'valid'), Dropout, Flatten; "
    "activation= 'linear' or 'relu' on Conv2D/Dense; 'softmax' only on the last layer"
)

# The Keras release whose .keras layout save_keras writes (and was checked against).
KERAS_LAYOUT_VERSION = "3.15.1"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


class KerasFormatError(ValueError):
    """A Keras file that cannot be read, or holds a model minicnn cannot run."""


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('reading and writing Keras files needs h5py: pip install -e ".[keras]"') from None
    return h5py


# ==== loading =============================================================================
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


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
        KerasFormatError: damaged file, weights that do not fit the configuration, or a layer
            or option minicnn does not have (the message names the layer).
        ImportError: h5py is not installed.
    """
    h5py = _import_h5py()
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    try:
        if head.startswith(_ZIP_SIGNATURE):
            return _build(*_read_zip(path, h5py), slots=True)
        if head == _HDF5_SIGNATURE:
            return _build(*_read_legacy_h5(path, h5py), slots=False)
        raise KerasFormatError("not a Keras file: neither a zip (.keras) nor HDF5 (legacy .h5)")
    except KerasFormatError as exc:
        raise KerasFormatError(f"{path}: {exc}") from None
    except (TypeError, AttributeError, KeyError, IndexError) as exc:  # JSON of an unexpected shape
        raise KerasFormatError(f"{path}: malformed model configuration ({type(exc).__name__}: {exc})") from None


def _read_zip(path, h5py):
    """``.keras`` -> (config dict, {"layers/<slot>": [arrays in vars order]})."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise KerasFormatError("the zip holds no config.json (is this a Keras file?)")
            if "model.weights.h5" not in names:
                sharded = " (sharded weights are not supported)" if "model.weights.json" in names else ""
                raise KerasFormatError(f"the zip holds no model.weights.h5{sharded}")
            config_bytes = z.read("config.json")
            weights_bytes = z.read("model.weights.h5")
    except KerasFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise KerasFormatError(f"damaged zip file ({type(exc).__name__}: {exc})") from None
    config = _parse_json(config_bytes, "config.json")
    weights = {}
    try:
        with read_hdf5(weights_bytes, skip=("optimizer",)) as f:  # in a helper process: no hang, no crash
            layers = f.get("layers")
            for slot in layers if layers is not None else {}:
                weights[f"layers/{slot}"] = _vars_arrays(layers[slot], slot)
    except KerasFormatError:
        raise
    except HDF5ReadError as exc:
        raise KerasFormatError(f"damaged model.weights.h5 ({exc})") from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise KerasFormatError(f"damaged model.weights.h5 ({type(exc).__name__}: {exc})") from None
    return config, weights


def _vars_arrays(group, slot):
    """The arrays of ``layers/<slot>/vars``: datasets named 0, 1, ... in that order."""
    if "vars" not in group:
        return []
    vars_ = group["vars"]
    keys = list(vars_)
    if sorted(keys) != sorted(str(i) for i in range(len(keys))):
        raise KerasFormatError(f"model.weights.h5: layers/{slot}/vars holds {sorted(keys)}, expected 0, 1, ...")
    return [np.asarray(vars_[str(i)][()]) for i in range(len(keys))]


def _read_legacy_h5(path, h5py):
    """Legacy ``.h5`` -> (config dict, {layer name: [(weight name, array)]})."""
    try:
        with read_hdf5(path, skip=("optimizer_weights",)) as f:  # in a helper process: no hang, no crash
            if "model_config" not in f.attrs:
                raise KerasFormatError(
                    "no model_config attribute: a weights-only file (save_weights)? "
                    "load_keras needs a whole model saved with model.save"
                )
            raw = f.attrs["model_config"]
            root = f["model_weights"] if "model_weights" in f else f
            weights = {}
            for name in _string_list(_h5_attr(root, "layer_names")):
                group = root[name]
                weights[name] = [(w, np.asarray(group[w][()])) for w in _string_list(_h5_attr(group, "weight_names"))]
    except KerasFormatError:
        raise
    except HDF5ReadError as exc:
        raise KerasFormatError(f"damaged HDF5 file ({exc})") from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise KerasFormatError(f"damaged HDF5 file ({type(exc).__name__}: {exc})") from None
    return _parse_json(raw, "model_config"), weights


def _h5_attr(group, name):
    """An attribute Keras may have split into name0, name1, ... when it was large."""
    if name in group.attrs:
        return group.attrs[name]
    chunks, i = [], 0
    while f"{name}{i}" in group.attrs:
        chunks.extend(group.attrs[f"{name}{i}"])
        i += 1
    if not i:
        raise KerasFormatError(f"HDF5 group {group.name!r} has no {name!r} attribute")
    return chunks


def _string_list(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _parse_json(raw, what):
    try:
        config = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise KerasFormatError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise KerasFormatError(f"{what} is not a JSON object")
    return config


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
        if expected:
            loads.append((entry, made[0], arrays))
        layers.extend(made)
    if not layers:
        raise KerasFormatError("the model has no layers minicnn can run (an empty stack)")
    try:
        model = Sequential(layers, input_shape=input_shape, seed=0, name=name)
    except ValueError as exc:
        raise KerasFormatError(f"the stored layers do not fit together: {exc}") from None
    for entry, layer, arrays in loads:
        _check_shapes(entry, layer, arrays)
    backend = get_backend()
    for _entry, layer, arrays in loads:
        layer.params["W"][...] = backend.asarray(arrays[0].astype(np.float32))
        layer.params["b"][...] = backend.asarray(arrays[1].astype(np.float32)) if len(arrays) > 1 else 0
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


def _slots(class_names):
    """Keras's weight slots for layers of these classes, in order: ``layers/conv2d``,
    ``layers/conv2d_1``, ``layers/dense``, ... (the class in snake case, numbered)."""
    counts, slots = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        slots.append(f"layers/{base}" + (f"_{counts[base]}" if base in counts else ""))
        counts[base] = counts.get(base, 0) + 1
    return slots


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
    if entry["class_name"] in ("Conv2D", "Dense"):
        return ["kernel", "bias"] if entry["config"].get("use_bias", True) else ["kernel"]
    return []


def _check_shapes(entry, layer, arrays):
    for role, array, want in zip(("kernel", "bias"), arrays, (layer.params["W"].shape, layer.params["b"].shape)):
        if tuple(array.shape) != tuple(want):
            raise KerasFormatError(
                f"{_describe(entry)}: stored {role} has shape {tuple(array.shape)}, the "
                f"configuration (on input {(None,) + layer.input_shape}) needs {tuple(want)}"
            )
        if array.dtype.kind != "f":
            raise KerasFormatError(f"{_describe(entry)}: stored {role} is {array.dtype}, not floating point")


def _layer_name(entry):
    name = entry["config"].get("name", entry.get("name"))
    return name if isinstance(name, str) else "?"


def _describe(entry):
    return f"layer {_layer_name(entry)!r} ({entry['class_name']})"


def _refuse(entry, why):
    raise KerasFormatError(f"{_describe(entry)}: {why}. Supported: {SUPPORTED}")


# One converter per Keras class: (entry, its config, is it the last layer) -> minicnn layers.
def _convert(entry, last):
    converter = _CONVERTERS.get(entry["class_name"])
    if converter is None:
        _refuse(entry, "this layer type is not supported")
    try:
        return converter(entry, entry["config"], last)
    except KerasFormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise KerasFormatError(f"{_describe(entry)}: cannot read its configuration ({exc})") from None


def _conv2d(entry, c, last):
    _channels_last(entry, c)
    if _pair(c.get("dilation_rate", 1)) != (1, 1):
        _refuse(entry, f"dilation_rate {c['dilation_rate']} is not supported")
    if c.get("groups", 1) not in (1, None):
        _refuse(entry, f"groups={c['groups']} is not supported")
    if c.get("padding") not in ("same", "valid"):
        _refuse(entry, f"padding {c.get('padding')!r} is not supported")
    layer = Conv2D(
        c["filters"], _pair(c["kernel_size"]), _pair(c.get("strides", 1)), c["padding"], name=_layer_name(entry)
    )
    return [layer] + _activation(entry, c.get("activation", "linear"), last)


def _dense(entry, c, last):
    return [Dense(c["units"], name=_layer_name(entry))] + _activation(entry, c.get("activation", "linear"), last)


def _max_pooling2d(entry, c, last):
    _channels_last(entry, c)
    if c.get("padding", "valid") != "valid":
        _refuse(entry, f"padding {c.get('padding')!r} is not supported (only 'valid')")
    pool = _pair(c.get("pool_size", 2))
    strides = pool if c.get("strides") is None else _pair(c["strides"])
    return [MaxPool2D(pool, strides, name=_layer_name(entry))]


def _leaky_relu(entry, c, last):
    # Keras 3 stores negative_slope (default 0.2), Keras 2 alpha (default 0.3): read what is there.
    slope = c.get("negative_slope", c.get("alpha"))
    if slope is None:
        _refuse(entry, "it stores no slope (neither negative_slope nor alpha)")
    return [LeakyReLU(float(slope), name=_layer_name(entry))]


def _relu(entry, c, last):
    if c.get("max_value") is not None or (c.get("threshold") or 0) != 0:
        _refuse(entry, f"max_value={c.get('max_value')} / threshold={c.get('threshold')} are not supported")
    slope = float(c.get("negative_slope") or 0)
    return [LeakyReLU(slope, name=_layer_name(entry)) if slope else ReLU(name=_layer_name(entry))]


def _activation_layer(entry, c, last):
    if c.get("activation") == "relu":
        return [ReLU(name=_layer_name(entry))]
    return _activation(entry, c.get("activation"), last)


def _activation(entry, activation, last):
    """What ``activation=`` adds after a layer: nothing, a ReLU, or a final softmax (folded away)."""
    if activation in ("linear", None):
        return []
    if activation == "relu":
        return [ReLU(name=f"{_layer_name(entry)}_relu")]
    if activation == "softmax":
        if last:
            return []  # minicnn's predict (and loss) apply it to the logits
        _refuse(entry, "softmax is only supported on the last layer")
    _refuse(entry, f"activation {activation!r} is not supported")


def _dropout(entry, c, last):
    return [Dropout(float(c["rate"]), seed=0, name=_layer_name(entry))]


def _flatten(entry, c, last):
    _channels_last(entry, c)
    return [Flatten(name=_layer_name(entry))]


def _channels_last(entry, c):
    if c.get("data_format") not in (None, "channels_last"):
        _refuse(entry, f"data_format={c['data_format']!r} is not supported (minicnn is channels_last, NHWC)")


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


_CONVERTERS = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "MaxPooling2D": _max_pooling2d,
    "LeakyReLU": _leaky_relu,
    "ReLU": _relu,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Flatten": _flatten,
}


# ==== saving ==============================================================================
def save_keras(model: Sequential, path):
    """Write ``model`` as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` opens.

    The layout is Keras 3's own (that of Keras ``KERAS_LAYOUT_VERSION``): metadata.json,
    config.json (a Sequential: InputLayer, then one Keras layer per minicnn layer, in float32)
    and model.weights.h5 (``layers/<slot>/vars/0, 1``).

    The output: minicnn's model ends in logits and its ``predict`` applies a softmax, so the
    Keras model is given that softmax — ``activation="softmax"`` on the last layer when it
    is a Dense, otherwise an ``Activation("softmax")`` layer appended — and Keras's
    ``predict`` returns the same probabilities as minicnn's ``predict``. (``load_keras``
    folds that softmax away again.)

    Integer Conv2D padding is written as ``"same"`` or ``"valid"`` when it equals one of them
    for the layer's input; otherwise, and for layers Keras lacks, a :class:`KerasFormatError`
    is raised before anything is written. The file is written atomically; its name must end
    in ``.keras`` (the only name Keras 3's ``load_model`` accepts for this format).
    """
    h5py = _import_h5py()
    if Path(path).suffix != ".keras":
        raise ValueError(f"save_keras: {path} should end in .keras (Keras 3 opens this format under no other name)")
    names = _unique_names(model)
    entries = [_input_layer(model)]
    for layer, name in zip(model.layers, names):
        entries.append(_layer_entry(layer, name))
    if isinstance(model.layers[-1], Dense):
        entries[-1]["config"]["activation"] = "softmax"
    else:
        entries.append(_keras_entry("Activation", _unique(names, "softmax"), {"activation": "softmax"}))
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": _DTYPE_POLICY,
            "layers": entries,
            "build_input_shape": _batch_shape(model.input_shape),
        },
        "registered_name": None,
        "build_config": {"input_shape": _batch_shape(model.input_shape)},
        "compile_config": {},
    }
    metadata = {
        "keras_version": KERAS_LAYOUT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "written_by": f"minicnn {__version__}",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:  # stored, not deflated, as Keras writes it
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", _weights_h5(model, entries[1:], h5py))
    data = buffer.getvalue()
    write_atomic(path, lambda f: f.write(data))


_DTYPE_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _keras_entry(class_name, name, config, input_shape=None):
    entry = {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, "trainable": True, "dtype": _DTYPE_POLICY, **config},
        "registered_name": None,
    }
    if input_shape is not None:  # Keras records it for layers with their own build()
        entry["build_config"] = {"input_shape": _batch_shape(input_shape)}
    return entry


def _input_layer(model):
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": _batch_shape(model.input_shape),
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": "input_layer",
            "optional": False,
        },
        "registered_name": None,
    }


def _batch_shape(shape):
    return [None] + [int(d) for d in shape]


_INITIALIZERS = {
    "kernel_initializer": {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None},
        "registered_name": None,
    },
    "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None},
    "kernel_regularizer": None,
    "bias_regularizer": None,
}


def _layer_entry(layer, name):
    """One minicnn layer as the config entry Keras 3 writes for its counterpart."""
    if isinstance(layer, Conv2D):
        return _keras_entry(
            "Conv2D",
            name,
            {
                "filters": layer.filters,
                "kernel_size": list(layer.kernel_size),
                "strides": list(layer.strides),
                "padding": _keras_padding(layer),
                "data_format": "channels_last",
                "dilation_rate": [1, 1],
                "groups": 1,
                "activation": "linear",
                "use_bias": True,
                **_INITIALIZERS,
                "activity_regularizer": None,
                "kernel_constraint": None,
                "bias_constraint": None,
            },
            layer.input_shape,
        )
    if isinstance(layer, Dense):
        return _keras_entry(
            "Dense",
            name,
            {
                "units": layer.units,
                "activation": "linear",
                "use_bias": True,
                **_INITIALIZERS,
                "kernel_constraint": None,
                "bias_constraint": None,
                "quantization_config": None,
            },
            layer.input_shape,
        )
    if isinstance(layer, LeakyReLU):
        return _keras_entry("LeakyReLU", name, {"negative_slope": layer.alpha})
    if isinstance(layer, ReLU):
        return _keras_entry("ReLU", name, {"max_value": None, "negative_slope": 0.0, "threshold": 0.0})
    if isinstance(layer, MaxPool2D):
        return _keras_entry(
            "MaxPooling2D",
            name,
            {
                "pool_size": list(layer.pool_size),
                "padding": "valid",
                "strides": list(layer.strides),
                "data_format": "channels_last",
            },
        )
    if isinstance(layer, Dropout):
        return _keras_entry("Dropout", name, {"rate": layer.rate, "seed": None, "noise_shape": None})
    if isinstance(layer, Flatten):
        return _keras_entry("Flatten", name, {"data_format": "channels_last"}, layer.input_shape)
    raise KerasFormatError(
        f"save_keras: layer {name!r} ({type(layer).__name__}) has no Keras counterpart here; "
        f"supported: Conv2D, Dense, LeakyReLU, ReLU, MaxPool2D, Dropout, Flatten"
    )


def _keras_padding(layer):
    """minicnn's padding as Keras's 'same'/'valid' (an int only where it equals one of them)."""
    if layer.padding in ("same", "valid"):
        return layer.padding
    h, w, _ = layer.input_shape
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    for keras_padding in ("valid", "same"):
        if padding_amounts(keras_padding, h, kh, sh) + padding_amounts(keras_padding, w, kw, sw) == tuple(layer.pads):
            return keras_padding
    raise KerasFormatError(
        f"save_keras: {layer.describe()} pads {layer.padding} on every side, which is neither "
        f"Keras's 'same' nor 'valid' for its {h}x{w} input"
    )


def _unique_names(model):
    """Layer names as Keras needs them: unique, and without '/'."""
    names = []
    for i, layer in enumerate(model.layers):
        base = (layer.name or f"layer_{i}").replace("/", "_")
        names.append(_unique(names, base))
    return names


def _unique(taken, base):
    name, k = base, 1
    while name in taken or name == "input_layer":
        name, k = f"{base}_{k}", k + 1
    return name


def _weights_h5(model, entries, h5py) -> bytes:
    """model.weights.h5 in Keras 3's layout: ``layers/<slot>/vars/<i>``, a group per layer
    (weightless ones too), each ``vars`` group carrying the layer's name."""
    backend = get_backend()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for i, (entry, slot) in enumerate(zip(entries, _slots(e["class_name"] for e in entries))):
            group = f.create_group(f"{slot}/vars")
            group.attrs["name"] = entry["config"]["name"]
            layer = model.layers[i] if i < len(model.layers) else None  # past the end: the softmax
            if isinstance(layer, (Conv2D, Dense)):
                group.create_dataset("0", data=backend.to_numpy(layer.params["W"]).astype(np.float32))
                group.create_dataset("1", data=backend.to_numpy(layer.params["b"]).astype(np.float32))
        f.create_group("vars").attrs["name"] = model.name
    return buffer.getvalue()
