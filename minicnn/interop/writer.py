"""Keras out: ``save_keras`` writes a Keras 3 ``.keras`` file of a minicnn model."""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .._version import __version__
from ..backend import get_backend
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
from ..layers.im2col import padding_amounts
from ..run.outputs import write_atomic
from ..sequential import Sequential
from .format import KERAS_LAYOUT_VERSION, KerasFormatError, _import_h5py, _slots, layer_arrays


def save_keras(model: Sequential, path):
    """Write ``model`` as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` opens.

    The layout is Keras 3's own (that of Keras ``KERAS_LAYOUT_VERSION``): metadata.json,
    config.json (a Sequential: InputLayer, then one Keras layer per minicnn layer, in float32)
    and model.weights.h5 (``layers/<slot>/vars/0, 1``).

    The output: minicnn's model ends in logits and its ``predict`` applies a softmax, so the
    Keras model is given that softmax — ``activation="softmax"`` on the last layer when it
    is a Dense without an activation, otherwise an ``Activation("softmax")`` layer appended —
    and Keras's ``predict`` returns the same probabilities as minicnn's ``predict``.
    (``load_keras`` folds that softmax away again.) A model whose last layer already has
    ``activation == "softmax"`` gets none added: that layer hands the model logits under its
    ``emit_logits`` flag, and Keras applies its softmax.

    Rescaling and Normalization are written as Keras's; a Normalization as an adapted one
    (config ``mean: null``, weights ``mean``, ``variance``, ``count``), whatever it was given.

    Integer Conv2D padding is written as ``"same"`` or ``"valid"`` when it equals one of them
    for the layer's input; otherwise, and for layers Keras lacks, a :class:`~minicnn.interop.KerasFormatError`
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
    last = model.layers[-1]
    if getattr(last, "activation", None) == "softmax":
        pass  # the model's own softmax (see above)
    elif isinstance(last, Dense) and last.activation == "linear":
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
                "activation": layer.activation,
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
                "activation": layer.activation,
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
    if isinstance(layer, Activation):
        return _keras_entry("Activation", name, {"activation": layer.activation})
    if isinstance(layer, Rescaling):
        return _keras_entry("Rescaling", name, {"scale": layer.scale, "offset": layer.offset}, layer.input_shape)
    if isinstance(layer, Normalization):
        axis = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis or ())  # Keras: None is ()
        config = {"axis": axis, "invert": False, "mean": None, "variance": None}
        return _keras_entry("Normalization", name, config, layer.input_shape)
    if isinstance(layer, BatchNormalization):
        return _keras_entry("BatchNormalization", name, _batch_normalization_config(layer), layer.input_shape)
    if isinstance(layer, AveragePooling2D):
        config = {"pool_size": list(layer.pool_size), "padding": layer.padding, "strides": list(layer.strides)}
        return _keras_entry("AveragePooling2D", name, {**config, "data_format": "channels_last"})
    if isinstance(layer, GlobalAveragePooling2D):
        return _keras_entry("GlobalAveragePooling2D", name, {"data_format": "channels_last", "keepdims": False})
    if isinstance(layer, Residual):
        raise KerasFormatError(
            f"save_keras: layer {name!r} is a Residual block, which no Keras Sequential can hold (its "
            f"shortcut adds two branches: a Functional model); save it as a minicnn checkpoint (.npz)"
        )
    if isinstance(layer, Dropout):
        return _keras_entry("Dropout", name, {"rate": layer.rate, "seed": None, "noise_shape": None})
    if isinstance(layer, Flatten):
        return _keras_entry("Flatten", name, {"data_format": "channels_last"}, layer.input_shape)
    raise KerasFormatError(
        f"save_keras: layer {name!r} ({type(layer).__name__}) has no Keras counterpart here; "
        f"supported: Conv2D, Dense, Activation, LeakyReLU, ReLU, MaxPool2D, Dropout, Flatten, Rescaling, "
        f"Normalization, BatchNormalization, AveragePooling2D, GlobalAveragePooling2D"
    )


def _initializer(class_name):
    return {"module": "keras.initializers", "class_name": class_name, "config": {}, "registered_name": None}


def _batch_normalization_config(layer):
    """Keras 3's BatchNormalization config for ``layer`` (its initialisers are Keras's defaults)."""
    return {
        "axis": -1,
        "momentum": layer.momentum,
        "epsilon": layer.epsilon,
        "center": layer.center,
        "scale": layer.scale,
        "beta_initializer": _initializer("Zeros"),
        "gamma_initializer": _initializer("Ones"),
        "moving_mean_initializer": _initializer("Zeros"),
        "moving_variance_initializer": _initializer("Ones"),
        "beta_regularizer": None,
        "gamma_regularizer": None,
        "beta_constraint": None,
        "gamma_constraint": None,
        "synchronized": False,
    }


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
            if isinstance(layer, (Conv2D, Dense, BatchNormalization)):  # kernel, bias; gamma, beta, moving_*
                for k, array in enumerate(layer_arrays(layer)):
                    group.create_dataset(str(k), data=backend.to_numpy(array).astype(np.float32))
            if isinstance(layer, Normalization):  # Keras's adapted variables: mean, variance, count (unused)
                mean, variance = layer.statistics()
                group.create_dataset("0", data=mean.astype(np.float32))
                group.create_dataset("1", data=variance.astype(np.float32))
                group.create_dataset("2", data=np.int32(0))  # int32 as Keras writes it (int64 under TensorFlow)
        f.create_group("vars").attrs["name"] = model.name
    return buffer.getvalue()
