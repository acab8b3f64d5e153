"""Conv2D's fast kernels for stride 1: the input gradient as shifted GEMMs that add in place."""

from __future__ import annotations

from ..backend import get_array_module
from ..blas import matmul_add


def on_grid(dy, padded_shape, out=None):
    """``dy (N, Ho, Wo, F)`` laid out on the padded input's grid ``(N, Hp, Wp, F)``: zeros past
    ``Ho, Wo``. ``out``, if given, is that array (old contents are overwritten)."""
    xp = get_array_module(dy)
    n, ho, wo, f = dy.shape
    hp, wp = padded_shape[1:3]
    if out is None:
        out = xp.empty((n, hp, wp, f), dtype=dy.dtype)
    out[:, ho:] = 0
    out[:, :ho, wo:] = 0
    out[:, :ho, :wo] = dy
    return out


def conv_dx_stride1(dy, W, padded_shape, work=None):
    """Gradient with respect to the padded input of a stride-1 convolution.

    dy: ``(N, Ho, Wo, F)``; W: ``(kh, kw, C, F)``; padded_shape: ``(N, Hp, Wp, C)``;
    work: ``None`` or a reusable ``(N, Hp, Wp, F)`` array (contents undefined).
    Returns ``(N, Hp, Wp, C)``, a fresh array.

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
    rows = n * hp * wp
    flat = on_grid(dy, padded_shape, work).reshape(rows, f)
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
