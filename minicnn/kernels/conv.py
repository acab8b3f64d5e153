"""Conv2D's fast paths: the forward in cache-sized blocks of patches, and the stride-1 input
gradient as shifted GEMMs that add in place."""

from __future__ import annotations

from ..backend import get_array_module
from ..blas import matmul_add
from ..layers.base import grad_enabled
from ..layers.im2col import im2col, pad2d
from .bias import sum_rows

# Bytes of patch rows built and multiplied at a time: a block this size is multiplied while it
# is still in the core's L2 cache, instead of being read back from memory.
BLOCK_BYTES = 256 * 1024


def forward_in_blocks(layer, x):
    """:meth:`minicnn.layers.Conv2D.forward`, the same ``y`` and cache, with the patch matrix
    built and multiplied one block of rows at a time (:data:`BLOCK_BYTES`).

    A block is a run of whole images, or of output rows of one image when an image's patches are
    larger than a block. Training keeps the whole patch matrix for ``dW`` (each block is written
    into its rows); under :func:`minicnn.no_grad` one block-sized work array is reused.
    """
    xp = get_array_module(x)
    W, b = layer.params["W"], layer.params["b"]
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    pt, pb, pl, pr = layer.pads
    ho, wo, f = layer.output_shape
    n, h, w, c = x.shape
    x_pad = pad2d(x, pt, pb, pl, pr, out=layer.scratch("x_pad", (n, h + pt + pb, w + pl + pr, c), x.dtype, x))
    k = kh * kw * c
    W2 = W.reshape(k, f)
    keep = grad_enabled()
    y = xp.empty((n * ho * wo, f), dtype=x.dtype)
    blocks = list(_blocks(n, ho, wo * k * x.dtype.itemsize))
    if keep:
        cols = layer.scratch("cols", (n * ho * wo, k), x.dtype, x)
    else:
        largest = max((n1 - n0) * (i1 - i0) for n0, n1, i0, i1 in blocks) * wo
        work = layer.scratch("cols_block", (largest, k), x.dtype, x)
    for n0, n1, i0, i1 in blocks:
        rows = slice((n0 * ho + i0) * wo, ((n1 - 1) * ho + i1) * wo)
        block = cols[rows] if keep else work[: rows.stop - rows.start]
        x_block = x_pad[n0:n1, i0 * sh : (i1 - 1) * sh + kh]
        im2col(x_block, kh, kw, sh, sw, i1 - i0, wo, out=block)
        xp.matmul(block, W2, out=y[rows])
    y += b
    layer.cache = (cols, x_pad.shape, x.shape) if keep else None
    return y.reshape(n, ho, wo, f)


def _blocks(n, ho, row_bytes):
    """``(n0, n1, i0, i1)``: images ``n0:n1``, output rows ``i0:i1`` of each; whole images when
    one fits in :data:`BLOCK_BYTES`, else bands of rows of one image."""
    image_bytes = ho * row_bytes
    if image_bytes <= BLOCK_BYTES:
        per_block = BLOCK_BYTES // image_bytes
        for n0 in range(0, n, per_block):
            yield n0, min(n, n0 + per_block), 0, ho
        return
    band = max(1, BLOCK_BYTES // row_bytes)
    for i in range(n):
        for i0 in range(0, ho, band):
            yield i, i + 1, i0, min(ho, i0 + band)


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
