"""Conv2D's fast kernels for stride 1: forward, weight and input gradients as shifted GEMMs that add in place.

All of them work on one layout, the *shared-padding grid*: each image padded with ``zh`` zero rows
below it and each row with ``zw`` zero columns after it, the pixels flattened to rows of channels, and
``front`` zero rows before the first image and ``back`` after the last. On it the offset-``(a, b)``
neighbour of a pixel is a constant number of rows away, so a kernel offset is one row shift and a
convolution is kh*kw matrix products over contiguous row ranges: no patch matrix, no scatter. The
zeros below one image are the padding above the next (and after one row, before the next), so
the grid is ``(H+zh)(W+zw)`` pixels an image, not ``(H+2ph)(W+2pw)``: less work thrown away.
"""

from __future__ import annotations

from ..backend import get_array_module
from ..blas import matmul_add


class Layout:
    """The shared-padding grid of inputs ``(N, H, W, C)`` for a ``kh x kw`` kernel, stride 1, padding
    ``(top, bottom, left, right)``: ``rows`` grid pixels (``N`` images of ``hz x wz``), ``front`` and
    ``back`` zero rows around them, and ``shifts``: ``(a, b, s)`` with ``s`` the first of the ``rows``
    rows that kernel offset ``(a, b)`` reads (an output pixel at grid row ``r`` reads row ``r + s``)."""

    def __init__(self, x_shape, kernel, pads):
        n, h, w, _ = x_shape
        kh, kw = kernel
        pt, pb, pl, pr = pads
        self.ho, self.wo = h + pt + pb - kh + 1, w + pl + pr - kw + 1
        # bands: as wide as either side's padding, and wide enough to hold the outputs
        self.hz, self.wz = h + max(pt, pb, self.ho - h), w + max(pl, pr, self.wo - w)
        self.n, self.h, self.w, self.kernel = n, h, w, (kh, kw)
        self.rows = n * self.hz * self.wz
        self.front = pt * self.wz + pl
        offsets = [(a - pt) * self.wz + (b - pl) for a in range(kh) for b in range(kw)]
        self.back = max(0, max(offsets))
        self.shifts = [(k // kw, k % kw, self.front + off) for k, off in enumerate(offsets)]
        self.size = self.front + self.rows + self.back  # the grid's rows, margins included

    def place(self, a, out=None):
        """``a (N, H', W', K)`` (``H' <= hz``, ``W' <= wz``) on the grid: ``(size, K)``
        with zeros everywhere else; ``out``, if given, is that array (old contents overwritten)."""
        xp = get_array_module(a)
        n, h, w, k = a.shape
        if out is None:
            out = xp.empty((self.size, k), dtype=a.dtype)
        out[: self.front] = 0
        out[self.front + self.rows :] = 0
        grid = out[self.front : self.front + self.rows].reshape(n, self.hz, self.wz, k)
        grid[:, h:] = 0
        grid[:, :h, w:] = 0
        grid[:, :h, :w] = a
        return out

    def crop(self, flat, h: int, w: int):
        """The ``(N, h, w, K)`` pixels of grid rows ``flat (rows, K)``: a view."""
        return flat.reshape(self.n, self.hz, self.wz, flat.shape[1])[:, :h, :w]


def shifts_pay(layout: Layout, channels: int, itemsize: int, training: bool) -> bool:
    """True where the shifted kernels beat the patch matrix (measured: benchmarks/RESULTS.md): at
    least 16 input channels (each shifted GEMM's inner dimension) and a grid at most 15% larger
    than the output (its extra rows are computed and thrown away: 6% at 32x32, 13% at 16x16); in
    training also a grid of at most 2 MiB, since each of the kh*kw weight-gradient products reads
    all of it again (from cache, then) and such long, narrow products do not split across BLAS
    threads."""
    small = layout.size * channels * itemsize <= 2 << 20
    return channels >= 16 and layout.rows <= 1.15 * layout.n * layout.ho * layout.wo and (small or not training)


def conv_stride1(x_grid, W, bias, layout: Layout, work=None):
    """Forward of a stride-1 convolution without a patch matrix: ``y (N, Ho, Wo, F)``, fresh.

    x_grid: the input placed on ``layout`` (:meth:`Layout.place`); W: ``(kh, kw, C, F)``;
    bias: ``(F,)``; work: ``None`` or a reusable ``(layout.rows, F)`` array (contents undefined).
    ``y_grid = sum over (a, b) of x_grid[s : s + rows] @ W[a, b]``, kh*kw GEMMs adding in place;
    then the crop to ``Ho x Wo`` and the bias in one pass.
    """
    xp = get_array_module(x_grid)
    f, rows = W.shape[3], layout.rows
    y_grid = work if work is not None else xp.empty((rows, f), dtype=x_grid.dtype)
    (a0, b0, s0), *rest = layout.shifts
    xp.matmul(x_grid[s0 : s0 + rows], W[a0, b0], out=y_grid)  # the first offset assigns: no zeroing
    for a, b, s in rest:
        matmul_add(y_grid, x_grid[s : s + rows], W[a, b])
    y = xp.empty((layout.n, layout.ho, layout.wo, f), dtype=x_grid.dtype)
    return xp.add(layout.crop(y_grid, layout.ho, layout.wo), bias, out=y)


def conv_dw_stride1(x_grid, dy_grid, layout: Layout):
    """Weight gradient of a stride-1 convolution from the same shifts: ``dW (kh, kw, C, F)``, fresh.

    x_grid: the input on ``layout``; dy_grid: ``dy`` on it (:meth:`Layout.place`). ``dW[a, b]`` sums,
    over output pixels, the input pixel it read at offset ``(a, b)`` times ``dy`` there:
    ``x_grid[s : s + rows].T @ dy_rows`` (grid rows that are no output hold zeros in ``dy_rows``).
    Computed as ``dy_rows.T @ x_rows`` (``(F, C)``, the faster orientation here), then turned.
    """
    xp = get_array_module(x_grid)
    (kh, kw), c, f = layout.kernel, x_grid.shape[1], dy_grid.shape[1]
    rows, g = layout.rows, dy_grid[layout.front : layout.front + layout.rows]
    turned = xp.empty((kh, kw, f, c), dtype=x_grid.dtype)
    for a, b, s in layout.shifts:
        xp.matmul(g.T, x_grid[s : s + rows], out=turned[a, b])
    return xp.ascontiguousarray(turned.transpose(0, 1, 3, 2))


def conv_dx_stride1(dy_grid, W, layout: Layout):
    """Gradient with respect to the input of a stride-1 convolution: ``dx (N, H, W, C)``.

    dy_grid: ``dy`` on ``layout`` (:meth:`Layout.place`); W: ``(kh, kw, C, F)``.
    Every output pixel sent ``dy @ W[a, b].T`` to the input pixel it read at offset ``(a, b)``,
    so ``dx_grid[s : s + rows] += dy_rows @ W[a, b].T`` for each offset: kh*kw GEMMs that add in
    place into contiguous rows (:func:`minicnn.blas.matmul_add`), then the padding cut off.
    """
    xp = get_array_module(dy_grid)
    c, rows, front = W.shape[2], layout.rows, layout.front
    g = dy_grid[front : front + rows]
    dx = xp.empty((layout.size, c), dtype=dy_grid.dtype)
    first = [(a, b, s) for a, b, s in layout.shifts if s == front]  # the offset that reads a pixel's own row
    if first:  # it covers exactly the grid's rows: assign them, zero only the margins
        dx[:front] = 0
        dx[front + rows :] = 0
        a, b, _ = first[0]
        xp.matmul(g, W[a, b].T, out=dx[front : front + rows])
    else:
        dx[...] = 0
    for a, b, s in layout.shifts:
        if (a, b, s) not in first[:1]:
            matmul_add(dx[s : s + rows], g, W[a, b].T)  # BLAS adds in place: no temporary
    return layout.crop(dx[front : front + rows], layout.h, layout.w)
