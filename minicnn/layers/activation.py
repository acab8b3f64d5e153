"""Activations as layers: LeakyReLU, ReLU, and Activation (any activation Keras names)."""

from __future__ import annotations

from .. import kernels
from ..backend import get_array_module
from ..kernels import activation as activation_kernels
from .base import Array, Layer, grad_enabled, registered
from .keras_activations import ActivatedLayer


@registered
class LeakyReLU(Layer):
    r"""``y = x`` where ``x > 0``, else ``alpha * x``.

    Equivalently ``y = x * slope`` with ``slope = 1 if x > 0 else alpha``.

    Shapes: ``x``, ``y`` and ``dy`` all share one shape (any rank).
    Cache: ``slope``, same shape and dtype as ``x``.

    Backward: the derivative is the slope itself (1 on the positive side, ``alpha`` on
    the other), so ``dx = dy * slope``. (At exactly 0 the function has no derivative;
    we use ``alpha``, as Keras and PyTorch do.)

    Args:
        alpha: slope for negative inputs (Keras's default 0.3; the documented model uses 0.1).

    Fast path (:func:`minicnn.kernels.activation.leaky_relu`): the slope by arithmetic in a reused array,
    and ``max(x, alpha * x)`` with nothing kept under :func:`minicnn.no_grad`.
    """

    config_keys = ("alpha",)

    def __init__(self, alpha=0.3, name=None):
        super().__init__(name)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
            raise ValueError(f"LeakyReLU: alpha must be a non-negative number, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        if kernels.fast():  # the slope into a reused array, and none at inference
            keep = self.scratch("slope", x.shape, x.dtype, x) if grad_enabled() else None
            y, slope = activation_kernels.leaky_relu(x, self.alpha, keep)
            self.cache = slope if grad_enabled() else None
            return y
        xp = get_array_module(x)
        slope = xp.where(x > 0, 1.0, self.alpha).astype(x.dtype)  # the local derivative, kept for backward
        self.cache = slope if grad_enabled() else None
        return x * slope

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return dy * self.pop_cache()


@registered
class ReLU(Layer):
    r"""``y = max(x, 0)``.

    Shapes: ``x``, ``y``, ``dy``: one shape. Cache: the boolean mask ``x > 0``.
    Backward: gradient passes where the input was positive, is zero elsewhere:
    ``dx = dy * (x > 0)``.
    """

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        xp = get_array_module(x)
        self.cache = x > 0 if grad_enabled() else None
        return xp.maximum(x, 0, dtype=x.dtype)

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return dy * self.pop_cache()


@registered
class Activation(ActivatedLayer):
    r"""``y = f(x)`` for an activation Keras names (``keras.layers.Activation``).

    ``f`` and its backward, given the output ``y``
    (:mod:`minicnn.layers.keras_activations`):

    .. code-block:: text

        "linear"      y = x                              dx = dy
        "relu"        y = max(x, 0)                      dx = dy * (y > 0)
        "leaky_relu"  y = x if x > 0 else 0.2 * x        dx = dy * (1 if y > 0 else 0.2)
        "sigmoid"     y = 1 / (1 + exp(-x))              dx = dy * y * (1 - y)
        "tanh"        y = tanh(x)                        dx = dy * (1 - y**2)
        "softmax"     y = exp(x) / sum(exp(x), axis=-1)  dx = y * (dy - sum(dy * y, axis=-1))

    Softmax's line is its Jacobian-vector product: ``dy_i/dx_k = y_i * (delta_ik - y_k)``.

    Shapes: ``x``, ``y``, ``dy``, ``dx`` share one shape (any rank; softmax over the last
    axis). Cache: ``y`` (the returned array itself, no copy), in ``_activation_cache``.
    ``emit_logits`` (a softmax only): forward returns ``x`` and backward ``dy`` unchanged
    (:class:`~minicnn.layers.keras_activations.ActivatedLayer`).

    Args:
        activation: None (``"linear"``), ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``
            or ``"softmax"``; any other name is a ValueError listing these.
    """

    config_keys = ("activation",)

    def __init__(self, activation, name=None):
        super().__init__(name)
        self._set_activation(activation)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        return self._activate(x, in_place=False)  # x is the previous layer's output: never written

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return self._activation_backward(dy)
