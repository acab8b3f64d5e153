"""Conv2D's fast backward for stride 1: the input gradient as shifted GEMMs that add in place."""

from __future__ import annotations

from ..backend import get_array_module
from ..blas import matmul_add
from ..layers.im2col import pad2d
from .bias import sum_rows


def backward_stride1(layer, dy, need_input_grad: bool = True):
    """:meth:`minicnn.layers.Conv2D.backward` for ``strides == (1, 1)``: the same gradients;
    ``db`` by :func:`~minicnn.kernels.bias.sum_rows` and ``dx`` by :func:`input_grad_stride1`
    instead of ``col2im``."""
    cols, pad_shape, x_shape = layer.pop_cache()
    W = layer.params["W"]
    f = W.shape[3]
    dy2 = dy.reshape(-1, f)
    layer.grads["b"] = sum_rows(dy2)
    layer.grads["W"] = (cols.T @ dy2).reshape(W.shape)
    if not need_input_grad:
        return None
    pt, _, pl, _ = layer.pads
    n, h, w, c = x_shape
    dx_pad = input_grad_stride1(dy, W, pad_shape, lambda *a: layer.scratch(*a, like=dy))
    return dx_pad[:, pt : pt + h, pl : pl + w, :]


def input_grad_stride1(dy, W, padded_shape, scratch=None):
    """Gradient with respect to the padded input of a stride-1 convolution.

    dy: ``(N, Ho, Wo, F)``; W: ``(kh, kw, C, F)``; padded_shape: ``(N, Hp, Wp, C)``.
    Returns ``(N, Hp, Wp, C)``, a fresh array. ``scratch(key, shape, dtype)``, if given,
    supplies reusable work arrays.

    Every output pixel ``(i, j)`` sent ``dy[i, j] @ W[a, b].T`` to input pixel
    ``(i + a, j + b)``, so ``dx = sum over (a, b) of dy @ W[a, b].T, shifted by (a, b)``.
    Lay ``dy`` out on the padded input's grid (zeros past ``Ho, Wo``) and flatten the pixels:
    a shift by ``(a, b)`` is then one constant row offset ``a*Wp + b``, so each of the kh*kw
    terms is one matrix product added into a *contiguous* row range by a GEMM that adds in
    place (:func:`minicnn.blas.matmul_add`): no patch matrix, no scatter. Rows outside the
    valid output only ever carry zeros.
    """
    xp = get_array_module(dy)
    kh, kw, c, f = W.shape
    n, hp, wp, _ = padded_shape
    ho, wo = dy.shape[1:3]
    work = scratch or (lambda key, shape, dtype: xp.empty(shape, dtype=dtype))
    dy_grid = pad2d(dy, 0, hp - ho, 0, wp - wo, out=work("dy_grid", (n, hp, wp, f), dy.dtype))
    rows = n * hp * wp
    flat = dy_grid.reshape(rows, f)
    reach = (kh - 1) * wp + (kw - 1)  # the largest shift
    dx = xp.empty((rows + reach, c), dtype=dy.dtype)
    dx[rows:] = 0
    xp.matmul(flat, W[0, 0].T, out=dx[:rows])  # shift 0 covers every row: assign, no zeroing
    for a in range(kh):
        for b in range(kw):
            if a == b == 0:
                continue
            shift = a * wp + b
            matmul_add(dx[shift : shift + rows], flat, W[a, b].T)  # BLAS adds in place: no temporary
    return dx[:rows].reshape(padded_shape)
