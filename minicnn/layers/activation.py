"""Element-wise activations: LeakyReLU and ReLU."""
from __future__ import annotations

from .base import Layer
from ..backend import get_array_module


class LeakyReLU(Layer):
    r"""``y = x`` where ``x > 0``, else ``alpha * x``.

    Shapes: ``x``, ``y`` and ``dy`` all share one shape (any rank).
    Cache: the boolean mask ``x > 0`` (1 byte per element, not a float copy of ``x``).

    Backward: the derivative is 1 on the positive side and ``alpha`` on the other, so
    ``dx = dy`` where the mask is set and ``alpha * dy`` elsewhere. (At exactly 0 the
    function has no derivative; we use ``alpha``, as Keras and PyTorch do.)

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
        xp = get_array_module(x)
        mask = x > 0
        if 0 <= self.alpha <= 1:
            # max(x, alpha*x) is the same function for 0 <= alpha <= 1, with one temporary.
            y = x * x.dtype.type(self.alpha)
            xp.maximum(x, y, out=y)
        else:
            y = xp.where(mask, x, x * x.dtype.type(self.alpha))
        self.cache = mask
        return y

    def backward(self, dy):
        xp = get_array_module(dy)
        mask, self.cache = self.cache, None
        return xp.where(mask, dy, dy * dy.dtype.type(self.alpha))


class ReLU(Layer):
    r"""``y = max(x, 0)``.

    Shapes: ``x``, ``y``, ``dy``: one shape. Cache: the boolean mask ``x > 0``.
    Backward: gradient passes where the input was positive, is zero elsewhere:
    ``dx = dy * (x > 0)``.
    """

    def forward(self, x, training=False):
        self._ensure_built(x)
        xp = get_array_module(x)
        self.cache = x > 0
        return xp.maximum(x, 0, dtype=x.dtype)

    def backward(self, dy):
        mask, self.cache = self.cache, None
        return dy * mask
