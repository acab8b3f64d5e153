"""Rescaling: ``x * scale + offset``, preprocessing a model carries itself (Keras 3's layer)."""

from __future__ import annotations

import math

import numpy as np

from .base import Array, Layer, grad_enabled, registered


def _number(value, what: str, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{layer}: {what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{layer}: {what} must be finite, got {value!r}")
    return float(value)


@registered
class Rescaling(Layer):
    r"""``y = x * scale + offset`` (``keras.layers.Rescaling``), e.g. ``Rescaling(1 / 255)``.

    ``x`` is cast to the layer's dtype first, so uint8 pixels are a valid input.

    Shapes: ``x``, ``y``, ``dy``, ``dx`` share one shape (any rank). Cache: a marker only.
    Backward: ``dx = scale * dy`` (``None`` with ``need_input_grad=False``, as for a first layer).

    Args:
        scale: a number.
        offset: a number added after scaling (default 0).
    """

    config_keys = ("scale", "offset")
    accepts_raw_pixels = True

    def __init__(self, scale, offset=0.0, name=None):
        super().__init__(name)
        self.scale = _number(scale, "scale", "Rescaling")
        self.offset = _number(offset, "offset", "Rescaling")

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        dtype = self.dtype if self.dtype is not None else np.dtype(np.float32)
        y = x.astype(dtype) * dtype.type(self.scale)  # a fresh array: the caller's x is left alone
        if self.offset:
            y += dtype.type(self.offset)
        self.cache = True if grad_enabled() else None
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        self.pop_cache()
        return dy * dy.dtype.type(self.scale) if need_input_grad else None
