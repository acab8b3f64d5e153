"""Element-wise activations: LeakyReLU and ReLU."""

from __future__ import annotations

from .. import kernels
from ..backend import get_array_module
from ..kernels.activation import leaky_relu_forward
from .base import Array, Layer, grad_enabled


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

    Fast path (:mod:`minicnn.kernels.activation`): the slope by arithmetic in a reused array,
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
        if kernels.fast():
            return leaky_relu_forward(self, x)
        xp = get_array_module(x)
        slope = xp.where(x > 0, 1.0, self.alpha).astype(x.dtype)  # the local derivative, kept for backward
        self.cache = slope if grad_enabled() else None
        return x * slope

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return dy * self.pop_cache()


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
