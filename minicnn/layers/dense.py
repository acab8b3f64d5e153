"""Dense: a fully connected layer."""

from __future__ import annotations

from .. import kernels
from ..kernels.bias import sum_rows
from .base import Array, expect_rank, glorot_uniform, grad_enabled, positive_int, registered, zeros
from .keras_activations import ActivatedLayer


@registered
class Dense(ActivatedLayer):
    r"""``y = f(x @ W + b)``, ``f`` the activation (none by default; softmax over the units).

    Shapes:
        x: ``(N, D)``    W: ``(D, U)``    b: ``(U,)``    y: ``(N, U)``, ``U = units``
        cache: ``x``; with an activation, also ``y`` (the returned array) in ``_activation_cache``

    Backward: first ``dz``, the gradient with respect to ``z = x @ W + b``, from ``dy`` and the
    kept ``y`` (:mod:`minicnn.layers.keras_activations`; ``dz = dy`` when linear); then the
    matrix calculus of a product:

        ``dW = x.T @ dz`` ``(D, U)``: each weight scaled one input into one output;
        ``db = dz.sum(0)`` ``(U,)``;
        ``dx = dz @ W.T`` ``(N, D)``.

    Fast path (:mod:`minicnn.kernels.bias`): ``db`` as ``ones @ dz``, one BLAS call.

    Args:
        units: number of outputs ``U``.
        activation: None (``"linear"``), ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"sigmoid"``,
            ``"tanh"`` or ``"softmax"``, as Keras names them; ``emit_logits``: see
            :class:`~minicnn.layers.keras_activations.ActivatedLayer`.
    """

    config_keys = ("units",)

    def __init__(self, units, activation=None, name=None):
        super().__init__(name)
        self._set_activation(activation)
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
        return self._activate(y, in_place=True)

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        dy = self._activation_backward(dy)
        x = self.pop_cache()
        self.grads["W"] = x.T @ dy
        self.grads["b"] = sum_rows(dy) if kernels.fast() else dy.sum(axis=0)
        return dy @ self.params["W"].T if need_input_grad else None
