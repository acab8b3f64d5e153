"""One converter per Keras layer class: a stored layer entry -> minicnn layers (or a clear refusal)."""

from __future__ import annotations

import numpy as np

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
)
from ..layers.keras_activations import KERAS_ACTIVATIONS, LEAKY_RELU_SLOPE
from .format import SUPPORTED, KerasFormatError


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
    return [layer] + _activation(entry, c.get("activation", "linear"), last, f"{_layer_name(entry)}_")


def _dense(entry, c, last):
    dense = Dense(c["units"], name=_layer_name(entry))
    return [dense] + _activation(entry, c.get("activation", "linear"), last, f"{_layer_name(entry)}_")


def _max_pooling2d(entry, c, last):
    _channels_last(entry, c)
    if c.get("padding", "valid") != "valid":
        _refuse(entry, f"padding {c.get('padding')!r} is not supported (only 'valid')")
    pool = _pair(c.get("pool_size", 2))
    strides = pool if c.get("strides") is None else _pair(c["strides"])
    return [MaxPool2D(pool, strides, name=_layer_name(entry))]


def _average_pooling2d(entry, c, last):
    _channels_last(entry, c)
    if c.get("padding", "valid") not in ("valid", "same"):
        _refuse(entry, f"padding {c.get('padding')!r} is not supported")
    pool = _pair(c.get("pool_size", 2))
    strides = pool if c.get("strides") is None else _pair(c["strides"])
    return [AveragePooling2D(pool, strides, c.get("padding", "valid"), name=_layer_name(entry))]


def _global_average_pooling2d(entry, c, last):
    _channels_last(entry, c)
    if c.get("keepdims", False):
        _refuse(entry, "keepdims=True is not supported")
    return [GlobalAveragePooling2D(name=_layer_name(entry))]


def _batch_normalization(entry, c, last):
    """BatchNormalization over the last axis; its weights (gamma, beta, moving_mean,
    moving_variance) are loaded by the reader like any layer's."""
    for option in ("renorm", "virtual_batch_size", "adjustment"):  # tf.keras 2 extras
        if c.get(option):
            _refuse(entry, f"{option}={c[option]!r} is not supported")
    axis = c.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    keys = ("momentum", "epsilon", "center", "scale")
    options = {k: c[k] for k in keys if k in c}
    return [BatchNormalization(axis, **options, name=_layer_name(entry))]


def batch_normalization_weights(entry) -> list[str]:
    """The weights a stored BatchNormalization holds, in Keras's order."""
    c = entry["config"]
    trained = ["gamma"] * bool(c.get("scale", True)) + ["beta"] * bool(c.get("center", True))
    return trained + ["moving_mean", "moving_variance"]


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
    return _activation(entry, c.get("activation"), last, "")


def _activation(entry, activation, last, prefix):
    """The layer an activation becomes: nothing for ``linear`` or a last softmax (minicnn's
    predict and loss apply it to the logits), a ReLU or LeakyReLU(0.2) layer, else an
    Activation layer. Named ``prefix + activation`` (``conv2d_relu``), or the entry's own
    name for an Activation entry (empty ``prefix``)."""
    if activation in ("linear", None) or (activation == "softmax" and last):
        return []
    if activation not in KERAS_ACTIVATIONS:
        _refuse(entry, f"activation {activation!r} is not supported (only {', '.join(KERAS_ACTIVATIONS)})")
    name = f"{prefix}{activation}" if prefix else _layer_name(entry)
    if activation == "relu":
        return [ReLU(name=name)]
    if activation == "leaky_relu":
        return [LeakyReLU(LEAKY_RELU_SLOPE, name=name)]
    return [Activation(activation, name=name)]


def _rescaling(entry, c, last):
    scale, offset = c.get("scale"), c.get("offset", 0.0)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (scale, offset)):
        _refuse(entry, f"scale={scale!r} / offset={offset!r}: only numbers are supported (not per-channel arrays)")
    return [Rescaling(scale, offset, name=_layer_name(entry))]


def _normalization(entry, c, last):
    """Normalization: its statistics come from the config (given to the constructor) or from
    the stored weights (adapted), which the reader sets with :func:`set_normalization_weights`."""
    if c.get("invert", False):
        _refuse(entry, "invert=True is not supported")
    axis = c.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    mean, variance = c.get("mean"), c.get("variance")
    return [Normalization(axis, mean, variance, name=_layer_name(entry))]


def normalization_weights(entry) -> list[str]:
    """The weights a stored Normalization holds: mean, variance and count when it was adapted
    (its config has no mean), none when it was given its statistics."""
    return ["mean", "variance", "count"] if entry["config"].get("mean") is None else []


def set_normalization_weights(entry, layer, arrays):
    """Load an adapted Normalization's stored ``[mean, variance, count]`` into ``layer``."""
    mean, variance = arrays[0], arrays[1]
    for role, array in (("mean", mean), ("variance", variance)):
        if array.dtype.kind not in "fiu":
            raise KerasFormatError(f"{_describe(entry)}: stored {role} is {array.dtype}, not a number")
    if mean.shape != variance.shape or not (np.isfinite(mean).all() and np.isfinite(variance).all()):
        raise KerasFormatError(
            f"{_describe(entry)}: stored mean {mean.shape} and variance {variance.shape} must be finite, of one shape"
        )
    if (variance < 0).any():
        raise KerasFormatError(f"{_describe(entry)}: stored variance has negative values")
    layer.mean, layer.variance = mean.astype("float64"), variance.astype("float64")


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
    "Rescaling": _rescaling,
    "Normalization": _normalization,
    "Dense": _dense,
    "MaxPooling2D": _max_pooling2d,
    "AveragePooling2D": _average_pooling2d,
    "GlobalAveragePooling2D": _global_average_pooling2d,
    "BatchNormalization": _batch_normalization,
    "LeakyReLU": _leaky_relu,
    "ReLU": _relu,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Flatten": _flatten,
}
