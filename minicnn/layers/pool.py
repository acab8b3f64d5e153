"""MaxPool2D: the largest value in each window."""

from __future__ import annotations

from .. import kernels
from ..backend import get_array_module
from ..kernels import pool as pool_kernels
from .base import LAYER_CLASSES, Array, Layer, as_pair, expect_rank, grad_enabled, registered
from .im2col import conv_output_size


@registered
class MaxPool2D(Layer):
    r"""Max pooling over NHWC images, no padding (Keras's ``"valid"``).

    Maths: :math:`y[n, i, j, c] = \max_{a < ph,\ b < pw} x[n,\ i \cdot sh + a,\ j \cdot sw + b,\ c]`.

    Forward runs over the ``ph*pw`` window offsets, not over pixels: the offset-``(a, b)``
    element of every window is one strided slice ``x[:, a::sh, b::sw, :]``, so a running
    maximum over the offsets visits every window at once. Strict ``>`` keeps the first
    maximum of a window, as PyTorch does. (:func:`minicnn.layers.naive.maxpool_forward`:
    the same, one window at a time.)

    Shapes:
        x:  ``(N, H, W, C)``
        y:  ``(N, Ho, Wo, C)``, ``Ho = (H - ph) // sh + 1``
        cache: ``argmax (N, Ho, Wo, C)`` — which window offset won — and ``x``'s shape

    Backward: max is locally the identity on the winning element and constant in the
    others, so each ``dy`` goes to its window's winner and nowhere else. Windows that
    overlap (``stride < pool``) can share a winner; their gradients add up.

    Fast path (:func:`minicnn.kernels.pool.maxpool`, :func:`~minicnn.kernels.pool.maxpool_dx_tiled`):
    no ``where`` (arithmetic instead), no argmax at inference, and for windows that tile the
    input ``dx`` written straight into place.

    Args:
        pool_size: int or pair ``(ph, pw)``.
        strides: int or pair; defaults to ``pool_size`` (non-overlapping windows).
    """

    config_keys = ("pool_size", "strides")

    def __init__(self, pool_size=2, strides=None, name=None):
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size", "MaxPool2D")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", "MaxPool2D")

    def _build(self, input_shape, rng):
        expect_rank(input_shape, 3, self.describe(), "(H, W, C)")
        h, w, c = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        if ph > h or pw > w:
            raise ValueError(f"{self.describe()}: pool {ph}x{pw} is larger than its input {h}x{w}")
        return conv_output_size(h, ph, sh, 0), conv_output_size(w, pw, sw, 0), c

    def window_offset(self, a: int, b: int) -> tuple:
        """Index of the offset-``(a, b)`` element of every window: ``x[:, a::sh, b::sw, :]``, cut to the output."""
        ho, wo, _ = self.output_shape
        sh, sw = self.strides
        return (slice(None), slice(a, a + sh * (ho - 1) + 1, sh), slice(b, b + sw * (wo - 1) + 1, sw))

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        xp = get_array_module(x)
        ph, pw = self.pool_size
        if kernels.fast():  # no argmax at inference; a reused one in training
            small = xp.uint8 if ph * pw <= 256 else xp.int32
            keep = self.scratch("argmax", (len(x), *self.output_shape), small, x) if grad_enabled() else None
            y, argmax = pool_kernels.maxpool(x, self.pool_size, self.strides, self.output_shape[:2], keep)
            self.cache = (argmax, x.shape) if grad_enabled() else None
            return y
        y = x[self.window_offset(0, 0)].copy()
        argmax = xp.zeros(y.shape, dtype=xp.int32)  # which offset k = a*pw + b won each window
        for k in range(1, ph * pw):
            candidate = x[self.window_offset(*divmod(k, pw))]
            better = candidate > y  # strict: ties keep the first maximum
            y = xp.where(better, candidate, y)
            argmax = xp.where(better, k, argmax)
        self.cache = (argmax, x.shape) if grad_enabled() else None
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        argmax, x_shape = self.pop_cache()
        ph, pw = self.pool_size
        if kernels.fast() and pool_kernels.tiles(x_shape[1:3], self.pool_size, self.strides, self.output_shape[:2]):
            return pool_kernels.maxpool_dx_tiled(dy, argmax, x_shape, self.pool_size)
        xp = get_array_module(dy)
        dx = xp.zeros(x_shape, dtype=dy.dtype)  # zeros where no window reaches
        for k in range(ph * pw):
            # Windows whose winner sits at offset k send their gradient there; overlaps add up.
            dx[self.window_offset(*divmod(k, pw))] += dy * (argmax == k)
        return dx


MaxPooling2D = MaxPool2D  # Keras's name: the same class, so checkpoints keep writing "MaxPool2D"
LAYER_CLASSES["MaxPooling2D"] = MaxPooling2D
