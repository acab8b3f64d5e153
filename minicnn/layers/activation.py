"""Element-wise activations: LeakyReLU and ReLU."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Layer, grad_enabled


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
    """

    config_keys = ("alpha",)

    def __init__(self, alpha=0.3, name=None):
        super().__init__(name)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
            raise ValueError(f"LeakyReLU: alpha must be a non-negative number, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        self._ensure_built(x)
        if not grad_enabled() and self.alpha <= 1:
            # Nothing to keep for backward: max(x, alpha*x) is the same function, in two passes.
            self.cache = None
            y = x * x.dtype.type(self.alpha)
            return get_array_module(x).maximum(x, y, out=y)
        # The local slope, 1 or alpha, kept for backward: then both passes are one multiply.
        # (An arithmetic blend, not np.where: NumPy's where is several times slower.)
        xp = get_array_module(x)
        slope = xp.greater(x, 0, out=self.scratch("slope", x.shape, x.dtype, x))  # 1.0 or 0.0
        slope *= x.dtype.type(1.0 - self.alpha)
        slope += x.dtype.type(self.alpha)
        self.cache = slope
        return x * slope

    def backward(self, dy, need_input_grad=True):
        return dy * self.pop_cache()


class ReLU(Layer):
    r"""``y = max(x, 0)``.

    Shapes: ``x``, ``y``, ``dy``: one shape. Cache: the boolean mask ``x > 0``.
    Backward: gradient passes where the input was positive, is zero elsewhere:
    ``dx = dy * (x > 0)``.
    """

    def forward(self, x, training=False):
        self._ensure_built(x)
        xp = get_array_module(x)
        self.cache = x > 0 if grad_enabled() else None
        return xp.maximum(x, 0, dtype=x.dtype)

    def backward(self, dy, need_input_grad=True):
        return dy * self.pop_cache()
