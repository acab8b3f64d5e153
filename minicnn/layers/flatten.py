"""Flatten: one feature vector per example."""

from __future__ import annotations

import numpy as np

from .base import Array, Layer, grad_enabled, registered


@registered
class Flatten(Layer):
    r"""``(N, d1, d2, ...) -> (N, d1*d2*...)`` in C order (for NHWC: H, then W, then C).

    No arithmetic, so no copy: a reshape of a contiguous array is a view.
    Cache: the input shape. Backward: reshape ``dy`` back to it.
    """

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        self.cache = x.shape if grad_enabled() else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return dy.reshape(self.pop_cache())
