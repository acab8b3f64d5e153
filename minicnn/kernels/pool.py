"""MaxPool2D's fast forward and backward: arithmetic instead of ``where``, results written in place."""

from __future__ import annotations

from ..backend import get_array_module
from ..layers.base import grad_enabled


def forward(layer, x):
    """:meth:`minicnn.layers.MaxPool2D.forward`, the same ``y`` and ``argmax``.

    Under :func:`minicnn.no_grad` the running maximum alone (no ``argmax``); otherwise the
    winner is recorded as ``max(argmax, k * better)`` (``k`` grows with the loop, so the
    latest winner stays), which is several times faster than ``where`` on NumPy.
    """
    xp = get_array_module(x)
    ph, pw = layer.pool_size
    y = x[layer.window_offset(0, 0)].copy()
    if not grad_enabled():
        layer.cache = None
        for k in range(1, ph * pw):
            xp.maximum(y, x[layer.window_offset(*divmod(k, pw))], out=y)
        return y
    argmax = layer.scratch("argmax", y.shape, xp.uint8 if ph * pw <= 256 else xp.int32, x)
    argmax.fill(0)
    for k in range(1, ph * pw):
        candidate = x[layer.window_offset(*divmod(k, pw))]
        better = candidate > y
        xp.maximum(y, candidate, out=y)
        xp.maximum(argmax, better * argmax.dtype.type(k), out=argmax)
    layer.cache = (argmax, x.shape)
    return y


def tiles(layer) -> bool:
    """True when the windows tile the input exactly (stride = pool, no leftover rows or columns)."""
    (ph, pw), (sh, sw), (ho, wo, _) = layer.pool_size, layer.strides, layer.output_shape
    h, w, _ = layer.input_shape
    return (sh, sw) == (ph, pw) and h == ho * ph and w == wo * pw


def backward_tiled(layer, dy):
    """:meth:`minicnn.layers.MaxPool2D.backward` for windows that tile the input: every element
    of ``dx`` is written exactly once, straight into place (no zeroing pass, no temporary)."""
    xp = get_array_module(dy)
    argmax, x_shape = layer.pop_cache()
    ph, pw = layer.pool_size
    dx = xp.empty(x_shape, dtype=dy.dtype)
    for k in range(ph * pw):
        xp.multiply(dy, argmax == k, out=dx[layer.window_offset(*divmod(k, pw))])
    return dx
