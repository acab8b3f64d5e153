"""Conv2D's fast kernels for stride 1: forward, weight and input gradients as shifted GEMMs that add in place."""

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


def _shifts(kh: int, kw: int, wp: int):
    """``(a, b, a*Wp + b)`` for every kernel offset: on a flattened padded grid, the offset-``(a, b)``
    neighbour of row ``r`` is row ``r + a*Wp + b``."""
    return [(a, b, a * wp + b) for a in range(kh) for b in range(kw)]


def shifts_pay(padded_shape, W_shape, strides) -> bool:
    """True where :func:`conv_stride1` beats the patch matrix (measured: benchmarks/RESULTS.md):
    stride 1, at least 16 input channels (each shifted GEMM's inner dimension), and a padded grid
    at most 15% larger than the output (its extra rows are computed and thrown away)."""
    n, hp, wp, c = padded_shape
    kh, kw = W_shape[:2]
    ho, wo = hp - kh + 1, wp - kw + 1
    return tuple(strides) == (1, 1) and c >= 16 and hp * wp <= 1.15 * ho * wo


def conv_stride1(x_pad, W, bias, out_hw, work=None):
    """Forward of a stride-1 convolution without a patch matrix: ``y (N, Ho, Wo, F)``, fresh.

    x_pad: the padded input ``(N, Hp, Wp, C)``, C-contiguous; W: ``(kh, kw, C, F)``; bias: ``(F,)``;
    work: ``None`` or a reusable ``(N*Hp*Wp, F)`` array (contents undefined).

    Flatten the padded pixels to rows: output pixel ``(i, j)`` sits at row ``r = i*Wp + j`` of
    the same grid and reads rows ``r + a*Wp + b``, so ``y_grid[:m] = sum over (a, b) of
    x_rows[shift : shift + m] @ W[a, b]``: kh*kw GEMMs that add in place into contiguous rows.
    ``m = rows - largest shift`` covers every valid output pixel; the grid's other rows
    (past ``Ho, Wo``) are never read. The crop and the bias are then one pass.
    """
    xp = get_array_module(x_pad)
    kh, kw, c, f = W.shape
    n, hp, wp, _ = x_pad.shape
    rows = n * hp * wp
    flat = x_pad.reshape(rows, c)
    grid = work if work is not None else xp.empty((rows, f), dtype=x_pad.dtype)
    shifts = _shifts(kh, kw, wp)
    m = rows - shifts[-1][2]
    xp.matmul(flat[:m], W[0, 0], out=grid[:m])  # shift 0: assign, no zeroing
    for a, b, shift in shifts[1:]:
        matmul_add(grid[:m], flat[shift : shift + m], W[a, b])
    ho, wo = out_hw
    y = xp.empty((n, ho, wo, f), dtype=x_pad.dtype)
    return xp.add(grid.reshape(n, hp, wp, f)[:, :ho, :wo], bias, out=y)


def conv_dw_stride1(x_pad, dy_grid, kh: int, kw: int):
    """Weight gradient of a stride-1 convolution from the same shifts: ``dW (kh, kw, C, F)``, fresh.

    x_pad: ``(N, Hp, Wp, C)``; dy_grid: :func:`on_grid` of ``dy``. ``dW[a, b]`` sums, over the
    output pixels, input pixel ``(i + a, j + b)`` times ``dy[i, j]``: on the flattened grid
    ``x_rows[shift : shift + m].T @ dy_rows[:m]`` (the grid's rows past ``Ho, Wo`` are zeros and add
    nothing). Computed as ``dy_rows.T @ x_rows`` (``(F, C)``, the faster orientation here), then turned.
    """
    xp = get_array_module(x_pad)
    n, hp, wp, c = x_pad.shape
    f = dy_grid.shape[3]
    rows = n * hp * wp
    flat, g = x_pad.reshape(rows, c), dy_grid.reshape(rows, f)
    shifts = _shifts(kh, kw, wp)
    m = rows - shifts[-1][2]
    turned = xp.empty((kh, kw, f, c), dtype=x_pad.dtype)
    for a, b, shift in shifts:
        xp.matmul(g[:m].T, flat[shift : shift + m], out=turned[a, b])
    return xp.ascontiguousarray(turned.transpose(0, 1, 3, 2))


def conv_dx_stride1(dy_grid, W):
    """Gradient with respect to the padded input of a stride-1 convolution.

    dy_grid: :func:`on_grid` of ``dy``, ``(N, Hp, Wp, F)``; W: ``(kh, kw, C, F)``.
    Returns ``(N, Hp, Wp, C)``, a fresh array.

    Every output pixel ``(i, j)`` sent ``dy[i, j] @ W[a, b].T`` to input pixel
    ``(i + a, j + b)``, so ``dx = sum over (a, b) of dy @ W[a, b].T, shifted by (a, b)``.
    With ``dy`` laid out on the padded input's grid (zeros past ``Ho, Wo``) and the pixels
    flattened, a shift by ``(a, b)`` is one constant row offset ``a*Wp + b``, so each of the
    kh*kw terms is one matrix product added into a *contiguous* row range by a GEMM that adds
    in place (:func:`minicnn.blas.matmul_add`): no patch matrix, no scatter. Rows outside the
    valid output only ever carry zeros.
    """
    xp = get_array_module(dy_grid)
    kh, kw, c, f = W.shape
    n, hp, wp, _ = dy_grid.shape
    rows = n * hp * wp
    flat = dy_grid.reshape(rows, f)
    shifts = _shifts(kh, kw, wp)
    dx = xp.empty((rows + shifts[-1][2], c), dtype=dy_grid.dtype)
    dx[rows:] = 0
    xp.matmul(flat, W[0, 0].T, out=dx[:rows])  # shift 0 covers every row: assign, no zeroing
    for a, b, shift in shifts[1:]:
        matmul_add(dx[shift : shift + rows], flat, W[a, b].T)  # BLAS adds in place: no temporary
    return dx[:rows].reshape(n, hp, wp, c)
