"""MaxPool2D: the largest value in each window."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Layer, as_pair, expect_rank, grad_enabled
from .im2col import conv_output_size


class MaxPool2D(Layer):
    r"""Max pooling over NHWC images, no padding (Keras's ``"valid"``).

    Maths: ``y[n, i, j, c] = max_{a < ph, b < pw} x[n, i*sh + a, j*sw + b, c]``.

    Forward runs over the ``ph*pw`` window offsets, not over pixels: the offset-``(a, b)``
    element of every window is one strided slice ``x[:, a::sh, b::sw, :]``, so a running
    maximum over the offsets visits every window at once. Strict ``>`` keeps the first
    maximum of a window, as PyTorch does.

    Shapes:
        x:  ``(N, H, W, C)``
        y:  ``(N, Ho, Wo, C)``, ``Ho = (H - ph) // sh + 1``
        cache: ``argmax (N, Ho, Wo, C)`` uint8 (int32 past 256 offsets) — which window offset won — and ``x``'s shape

    Backward: max is locally the identity on the winning element and constant in the
    others, so each ``dy`` goes to its window's winner and nowhere else. Windows that
    overlap (``stride < pool``) can share a winner; their gradients add up.

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

    def _slice(self, a, b):
        """Index of the offset-(a, b) element of every window."""
        ho, wo, _ = self.output_shape
        sh, sw = self.strides
        return (slice(None), slice(a, a + sh * (ho - 1) + 1, sh), slice(b, b + sw * (wo - 1) + 1, sw))

    def forward(self, x, training=False):
        self._ensure_built(x)
        xp = get_array_module(x)
        ph, pw = self.pool_size
        y = x[self._slice(0, 0)].copy()
        if not grad_enabled():  # inference: the maximum alone
            self.cache = None
            for k in range(1, ph * pw):
                xp.maximum(y, x[self._slice(*divmod(k, pw))], out=y)
            return y
        argmax = self.scratch("argmax", y.shape, xp.uint8 if ph * pw <= 256 else xp.int32, x)
        argmax.fill(0)
        for k in range(1, ph * pw):
            candidate = x[self._slice(*divmod(k, pw))]
            better = candidate > y
            xp.maximum(y, candidate, out=y)
            # k grows with the loop, so max(argmax, k where better) records the latest winner
            # (no np.where/masked copies: they are several times slower than arithmetic).
            xp.maximum(argmax, better * argmax.dtype.type(k), out=argmax)
        self.cache = (argmax, x.shape)
        return y

    def backward(self, dy, need_input_grad=True):
        xp = get_array_module(dy)
        argmax, x_shape = self.pop_cache()
        ph, pw = self.pool_size
        (sh, sw), (ho, wo, _) = self.strides, self.output_shape
        tiled = (sh, sw) == (ph, pw) and x_shape[1] == ho * ph and x_shape[2] == wo * pw
        # Windows that tile the input exactly write every element of dx once: no zeroing pass.
        # Otherwise zeros cover the rows/columns no window reaches, and overlaps add up.
        dx = (xp.empty if tiled else xp.zeros)(x_shape, dtype=dy.dtype)
        for k in range(ph * pw):
            # Windows whose winner sits at offset k send their gradient there.
            here = dx[self._slice(*divmod(k, pw))]
            if tiled:
                xp.multiply(dy, argmax == k, out=here)  # straight into place: no temporary
            else:
                here += dy * (argmax == k)
        return dx
