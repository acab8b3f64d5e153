"""LeakyReLU's fast forward: the slope by arithmetic in a reused array, and no slope at all at inference."""

from __future__ import annotations

from ..backend import get_array_module


def leaky_relu(x, alpha: float, slope=None):
    """``(y, slope)`` of LeakyReLU: ``y = x * slope``, ``slope = 1 where x > 0 else alpha``.

    ``slope``: a reusable array of ``x``'s shape and dtype to write the slope into (contents
    undefined), or None when nobody needs it (inference): then, for ``alpha <= 1``, ``y`` is
    ``max(x, alpha * x)`` and the returned slope is None. The slope is
    ``(x > 0) * (1 - alpha) + alpha``: arithmetic, not ``where`` (several times slower on NumPy).
    """
    xp = get_array_module(x)
    a = x.dtype.type(alpha)
    if slope is None and alpha <= 1:
        y = x * a
        return xp.maximum(x, y, out=y), None
    slope = xp.greater(x, 0, out=slope if slope is not None else xp.empty_like(x))  # 1.0 or 0.0
    slope *= x.dtype.type(1.0 - alpha)
    slope += a
    return x * slope, slope
