"""AveragePooling2D and GlobalAveragePooling2D: the mean of each window, or of each whole channel."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Array, Layer, as_pair, expect_rank, grad_enabled, registered
from .im2col import conv_output_size, pad2d, padding_amounts


@registered
class AveragePooling2D(Layer):
    r"""Average pooling over NHWC images (``keras.layers.AveragePooling2D``).

    Maths:

    .. math::

        y[n, i, j, c] = \frac{1}{count[i, j]} \sum_{a < ph,\ b < pw} x_{pad}[n,\ i \cdot sh + a,\ j \cdot sw + b,\ c]

    where ``count[i, j]`` is the number of *real* pixels in window ``(i, j)``: ``ph*pw`` with
    ``"valid"``, fewer at the borders with ``"same"``, whose zero padding is left out of the
    mean (Keras's and TensorFlow's rule; PyTorch's ``count_include_pad=False``).

    Forward, as :class:`~minicnn.layers.MaxPool2D`, runs over the ``ph*pw`` window offsets: the
    offset-``(a, b)`` element of every window is one strided slice, so the window sums are
    ``ph*pw`` slice additions. (:func:`minicnn.layers.naive.avgpool_forward`: one window at a time.)

    Backward: ``y`` is linear in ``x``, each window's input pixels weighted ``1 / count``, so
    ``dy[i, j] / count[i, j]`` goes to every real pixel of window ``(i, j)``; overlapping
    windows add up, and what lands on the padding is cut away.

    Shapes:
        x, dx: ``(N, H, W, C)``
        y, dy: ``(N, Ho, Wo, C)``: ``Ho = (H - ph) // sh + 1`` ("valid"), ``ceil(H / sh)`` ("same")
        count: ``(1, Ho, Wo, 1)``, fixed at build; no cache but ``x``'s shape

    Args:
        pool_size: int or pair ``(ph, pw)``.
        strides: int or pair; defaults to ``pool_size``.
        padding: ``"valid"`` (no padding) or ``"same"``.
    """

    config_keys = ("pool_size", "strides", "padding")

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size", "AveragePooling2D")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", "AveragePooling2D")
        if padding not in ("valid", "same"):
            raise ValueError(f"AveragePooling2D: padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def _build(self, input_shape, rng):
        expect_rank(input_shape, 3, self.describe(), "(H, W, C)")
        h, w, c = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        self.pads = padding_amounts(self.padding, h, ph, sh) + padding_amounts(self.padding, w, pw, sw)
        pt, pb, pl, pr = self.pads
        if ph > h + pt + pb or pw > w + pl + pr:
            raise ValueError(f"{self.describe()}: pool {ph}x{pw} is larger than its input {h}x{w}")
        ho, wo = conv_output_size(h, ph, sh, pt + pb), conv_output_size(w, pw, sw, pl + pr)
        self._counts: dict = {}  # (array module, dtype) -> count, made on first use
        return ho, wo, c

    def _window_sums(self, x_pad: Array) -> Array:
        """``sum over (a, b)`` of the offset-``(a, b)`` slices of ``x_pad``: every window's sum at once."""
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        ho, wo, _ = self.output_shape
        total = None
        for a in range(ph):
            for b in range(pw):
                part = x_pad[:, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw, :]
                total = part.copy() if total is None else total + part
        return total

    def count(self, like: Array) -> Array:
        """``(1, Ho, Wo, 1)``: the real pixels in each window (the window sums of an image of ones)."""
        xp = get_array_module(like)
        key = (xp.__name__, like.dtype.str)
        if key not in self._counts:
            h, w, _ = self.input_shape
            ones = pad2d(xp.ones((1, h, w, 1), dtype=like.dtype), *self.pads)
            self._counts[key] = self._window_sums(ones)
        return self._counts[key]

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        y = self._window_sums(pad2d(x, *self.pads))
        y /= self.count(y)
        self.cache = x.shape if grad_enabled() else None
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        x_shape = self.pop_cache()
        if not need_input_grad:
            return None
        xp = get_array_module(dy)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        pt, pb, pl, pr = self.pads
        n, h, w, c = x_shape
        ho, wo, _ = self.output_shape
        share = dy / self.count(dy)  # what each real pixel of a window receives
        dx_pad = xp.zeros((n, h + pt + pb, w + pl + pr, c), dtype=dy.dtype)
        for a in range(ph):
            for b in range(pw):
                dx_pad[:, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw, :] += share
        return dx_pad[:, pt : pt + h, pl : pl + w, :]


@registered
class GlobalAveragePooling2D(Layer):
    r"""The mean of each channel over the whole image (``keras.layers.GlobalAveragePooling2D``).

    Maths: :math:`y[n, c] = \frac{1}{H W} \sum_{i, j} x[n, i, j, c]`; backward spreads each
    ``dy[n, c]`` evenly: :math:`dx[n, i, j, c] = dy[n, c] / (H W)`.

    Shapes: ``x, dx (N, H, W, C)`` -> ``y, dy (N, C)``; cache: ``x``'s shape.
    """

    def _build(self, input_shape, rng):
        expect_rank(input_shape, 3, self.describe(), "(H, W, C)")
        return (input_shape[2],)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        self.cache = x.shape if grad_enabled() else None
        return x.mean(axis=(1, 2))

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        n, h, w, c = self.pop_cache()
        if not need_input_grad:
            return None
        xp = get_array_module(dy)
        return xp.broadcast_to((dy / (h * w))[:, None, None, :], (n, h, w, c)).copy()
