"""Dense: a fully connected layer."""

from __future__ import annotations

from .. import kernels
from ..kernels.bias import sum_rows
from .base import Array, Layer, expect_rank, glorot_uniform, grad_enabled, positive_int, zeros


class Dense(Layer):
    r"""``y = x @ W + b``.

    Shapes:
        x: ``(N, D)``    W: ``(D, U)``    b: ``(U,)``    y: ``(N, U)``, ``U = units``
        cache: ``x``

    Backward (matrix calculus of a product):
        ``dW = x.T @ dy`` ``(D, U)``: each weight scaled one input into one output;
        ``db = dy.sum(0)`` ``(U,)``;
        ``dx = dy @ W.T`` ``(N, D)``.

    Fast path (:mod:`minicnn.kernels.bias`): ``db`` as ``ones @ dy``, one BLAS call.

    Args:
        units: number of outputs ``U``.
    """

    config_keys = ("units",)

    def __init__(self, units, name=None):
        super().__init__(name)
        self.units = positive_int(units, "units", "Dense")

    def _build(self, input_shape, rng):
        expect_rank(input_shape, 1, self.describe(), "(features,) — add a Flatten layer before it")
        (d,) = input_shape
        self.params = {
            "W": glorot_uniform((d, self.units), d, self.units, rng, self.dtype),
            "b": zeros((self.units,), self.dtype),
        }
        self.grads = {k: None for k in self.params}
        return (self.units,)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        self.cache = x if grad_enabled() else None
        y = x @ self.params["W"]
        y += self.params["b"]  # in place: no second (N, U) array
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        x = self.pop_cache()
        self.grads["W"] = x.T @ dy
        self.grads["b"] = sum_rows(dy) if kernels.fast() else dy.sum(axis=0)
        return dy @ self.params["W"].T if need_input_grad else None
