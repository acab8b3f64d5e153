"""Conv2D: a 2-D convolution (cross-correlation, as in every DL framework) by im2col."""

from __future__ import annotations

from .. import kernels
from ..kernels import conv as conv_kernels
from ..kernels.bias import sum_rows
from .base import Array, as_pair, expect_rank, glorot_uniform, grad_enabled, positive_int, registered, zeros
from .im2col import col2im, conv_output_size, im2col, pad2d, padding_amounts
from .keras_activations import ActivatedLayer


@registered
class Conv2D(ActivatedLayer):
    r"""2-D convolution over NHWC images.

    Maths (one output pixel, padded input ``xp``, strides ``sh, sw``):

    .. math::

        z[n, i, j, f] &= b[f] + \sum_{a, b', c} xp[n,\ i \cdot sh + a,\ j \cdot sw + b',\ c] \; W[a, b', c, f]

        y &= f(z)

    with ``f`` the activation, element-wise (softmax: over ``F``); none by default.

    Computed as one matrix product: ``cols = im2col(xp)`` of shape ``(N*Ho*Wo, kh*kw*C)``,
    then ``z = cols @ W.reshape(kh*kw*C, F) + b``.

    Shapes:
        x:  ``(N, H, W, C)``             input
        W:  ``(kh, kw, C, F)``            kernel, ``F = filters``
        b:  ``(F,)``                      bias
        y:  ``(N, Ho, Wo, F)``            ``Ho = (H + pad_h - kh) // sh + 1`` (same for Wo)
        cache: ``(cols, None, x_shape)``, set by a training forward (none under
            :func:`~minicnn.no_grad`) and taken by backward:
            ``cols (N*Ho*Wo, kh*kw*C)`` the patch matrix (for ``dW``; a reused work array,
            so the cache lives until the next forward) and ``x_shape`` ``(N, H, W, C)`` (``dx``
            is assembled on the padded ``(N, H+pad_h, W+pad_w, C)``, then the padding cut off);
            with an activation, also ``y`` (the returned array itself) in ``_activation_cache``

    Backward, given ``dy (N, Ho, Wo, F)``: first ``dz``, the gradient with respect to ``z``, from
    ``dy`` and the kept ``y`` (:mod:`minicnn.layers.keras_activations`; ``dz = dy`` when linear),
    then with ``dy2 = dz.reshape(-1, F)``:

        ``db = dz.sum over N, Ho, Wo`` — the bias touches every output pixel;
        ``dW = cols.T @ dy2`` — each weight met every patch it multiplied;
        ``dx``: each input pixel fed every output whose window covered it, so
        ``dcols = dy2 @ W2.T`` is added back where each patch came from (``col2im``: one
        strided add per kernel offset), and the padding cut off.

    Fast path (stride 1, :mod:`minicnn.kernels.conv`): the same ``dx`` as kh*kw shifted
    matrix products added in place, without the ``dcols`` patch matrix
    (:func:`~minicnn.kernels.conv.conv_dx_stride1`); ``db`` by
    :func:`~minicnn.kernels.bias.sum_rows`; and where :func:`~minicnn.kernels.conv.shifts_pay`
    (16+ channels, a grid barely larger than the output) no patch matrix at all: ``y`` and
    ``dW`` by the same shifts of the input on that grid (:func:`~minicnn.kernels.conv.conv_stride1`,
    :func:`~minicnn.kernels.conv.conv_dw_stride1`; cache ``(None, x_grid, x_shape)``).

    Args:
        filters: number of output channels ``F``.
        kernel_size: int or pair ``(kh, kw)``.
        strides: int or pair ``(sh, sw)``.
        padding: ``"valid"`` (none), ``"same"`` (output ``ceil(H / sh)``, as Keras) or an int
            added on every side.
        activation: None (``"linear"``), ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"sigmoid"``,
            ``"tanh"`` or ``"softmax"`` (over the filters), as Keras names them; ``emit_logits``:
            see :class:`~minicnn.layers.keras_activations.ActivatedLayer`.
    """

    config_keys = ("filters", "kernel_size", "strides", "padding")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, name=None):
        super().__init__(name)
        self._set_activation(activation)
        self.filters = positive_int(filters, "filters", "Conv2D")
        self.kernel_size = as_pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = as_pair(strides, "strides", "Conv2D")
        if not (
            padding in ("same", "valid")
            or (isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0)
        ):
            raise ValueError(f"Conv2D: padding must be 'same', 'valid' or a non-negative int, got {padding!r}")
        self.padding = padding

    def _build(self, input_shape, rng):
        expect_rank(input_shape, 3, self.describe(), "(H, W, C)")
        h, w, c = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        self.pads = padding_amounts(self.padding, h, kh, sh) + padding_amounts(self.padding, w, kw, sw)
        pt, pb, pl, pr = self.pads
        if h + pt + pb < kh or w + pl + pr < kw:
            raise ValueError(
                f"{self.describe()}: kernel {kh}x{kw} is larger than its padded input "
                f"{h + pt + pb}x{w + pl + pr} (input {h}x{w}, padding {self.padding!r})"
            )
        ho = conv_output_size(h, kh, sh, pt + pb)
        wo = conv_output_size(w, kw, sw, pl + pr)
        self.params = {
            "W": glorot_uniform((kh, kw, c, self.filters), kh * kw * c, kh * kw * self.filters, rng, self.dtype),
            "b": zeros((self.filters,), self.dtype),
        }
        self.grads = {k: None for k in self.params}
        return ho, wo, self.filters

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        W, b = self.params["W"], self.params["b"]
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        pt, pb, pl, pr = self.pads
        ho, wo, f = self.output_shape
        n, h, w, c = x.shape
        if kernels.fast() and (sh, sw) == (1, 1):
            grid = conv_kernels.Layout(x.shape, (kh, kw), self.pads)
            if conv_kernels.shifts_pay(grid, c, x.dtype.itemsize, grad_enabled()):  # y (and dW) by shifts
                x_grid = grid.place(x, self.scratch("x_grid", (grid.size, c), x.dtype, x))
                self.cache = (None, x_grid, x.shape) if grad_enabled() else None
                y = conv_kernels.conv_stride1(x_grid, W, b, grid, self.scratch("y_grid", (grid.rows, f), x.dtype, x))
                return self._activate(y, in_place=True)
        x_pad = pad2d(x, pt, pb, pl, pr, out=self.scratch("x_pad", (n, h + pt + pb, w + pl + pr, c), x.dtype, x))
        cols = im2col(x_pad, kh, kw, sh, sw, ho, wo, out=self.scratch("cols", (n * ho * wo, kh * kw * c), x.dtype, x))
        y = cols @ W.reshape(-1, f)
        y += b  # in place: no second (N*Ho*Wo, F) array
        self.cache = (cols, None, x.shape) if grad_enabled() else None
        return self._activate(y.reshape(x.shape[0], ho, wo, f), in_place=True)

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        dy = self._activation_backward(dy)
        cols, x_grid, x_shape = self.pop_cache()
        W2 = self.params["W"].reshape(-1, self.filters)  # (kh*kw*C, F)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        pt, pb, pl, pr = self.pads
        ho, wo, f = self.output_shape
        n, h, w, c = x_shape
        dy2 = dy.reshape(-1, f)  # (N*Ho*Wo, F)
        self.grads["b"] = sum_rows(dy2) if kernels.fast() else dy2.sum(axis=0)
        shifted = kernels.fast() and (sh, sw) == (1, 1)  # dx by kernels.conv's shifted GEMMs
        if x_grid is not None or (shifted and need_input_grad):  # dy on the same grid, for those kernels
            grid = conv_kernels.Layout(x_shape, (kh, kw), self.pads)
            dy_grid = grid.place(dy, self.scratch("dy_grid", (grid.size, f), dy.dtype, dy))
        if x_grid is not None:  # the forward took the shifted path: dW by the same shifts
            self.grads["W"] = conv_kernels.conv_dw_stride1(x_grid, dy_grid, grid)
        else:
            self.grads["W"] = (cols.T @ dy2).reshape(self.params["W"].shape)
        if not need_input_grad:  # a first layer: nobody needs d(loss)/d(images)
            return None
        if shifted:
            return conv_kernels.conv_dx_stride1(dy_grid, self.params["W"], grid)
        dcols = dy2 @ W2.T  # (N*Ho*Wo, kh*kw*C)
        dx_pad = col2im(dcols, (n, h + pt + pb, w + pl + pr, c), kh, kw, sh, sw, ho, wo)
        return dx_pad[:, pt : pt + h, pl : pl + w, :]
