"""Three ways to compute a 3×3 "same" convolution's forward on NumPy, timed on one shard, one thread.

    python benchmarks/conv_forward_variants.py [--repeats 30]

- ``im2col``: what ``Conv2D.forward`` does — copy every 3×3×C patch into a row of a matrix, one GEMM
  with ``K = 9C``.
- ``winograd``: Winograd's F(2×2, 3×3) (Lavin & Gray, 2015): each 4×4 input tile and each kernel are
  transformed so that a 2×2 output tile costs 16 multiplications instead of 36 — 16 GEMMs with
  ``K = C``, 2.25× fewer multiplications — then transformed back. The input transform runs down whole
  padded rows first (long contiguous runs), then across the tiles.
- ``shifted``: no patch matrix — the output on the padded grid is the sum over the 9 kernel positions
  of the flattened input shifted by ``a*Wp + b`` times ``W[a, b]`` (9 GEMMs with ``K = C`` that add
  in place), the trick ``kernels.conv.conv_dx_stride1`` uses for the input gradient.

The shapes are the model's three wide convolutions on a 16-image shard (the shard a thread runs).
The result of each is checked against ``im2col``. Only the forward is timed: a variant that
loses here loses the training step too, whose backward needs two more transforms of each kind.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minicnn.blas import matmul_add
from minicnn.layers.im2col import im2col, pad2d

# F(2x2, 3x3): the kernel transform G, the input transform B^T, the output transform A^T
# (Lavin & Gray's matrices; B^T and A^T are spelled out as additions in the code below).
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
SHAPES = [(32, 16, 32), (16, 32, 32), (16, 32, 64)]  # (H = W, C in, F out) of conv 2, 3 and 4


def im2col_forward(x, W, work):
    n, h, w, _ = x.shape
    x_pad = pad2d(x, 1, 1, 1, 1, out=work["pad"])
    cols = im2col(x_pad, 3, 3, 1, 1, h, w, out=work["cols"])
    return (cols @ W.reshape(-1, W.shape[3])).reshape(n, h, w, -1)


def winograd_kernel(W):
    """``G g G^T`` for every (C, F) pair: ``(16, C, F)``, position ``4*k + l`` of the 4×4 tile."""
    return np.einsum("ai,ijcf,bj->abcf", G, W, G).reshape(16, W.shape[2], W.shape[3]).astype(W.dtype)


def winograd_forward(x, U, work):
    n, h, w, c = x.shape
    th, tw = h // 2, w // 2
    x_pad = pad2d(x, 1, 1, 1, 1, out=work["pad"])
    rows = work["rows"]  # (4, N, th, W+2, C): B^T down the rows of every tile row
    row = lambda k: x_pad[:, k : k + h : 2]  # noqa: E731  (padded rows k, k+2, ...)
    np.subtract(row(0), row(2), out=rows[0])
    np.add(row(1), row(2), out=rows[1])
    np.subtract(row(2), row(1), out=rows[2])
    np.subtract(row(1), row(3), out=rows[3])
    V = work["V"]  # (4, 4, N, th, tw, C): and across each tile's columns
    col = lambda k: rows[:, :, :, k : k + w : 2]  # noqa: E731
    np.subtract(col(0), col(2), out=V[:, 0])
    np.add(col(1), col(2), out=V[:, 1])
    np.subtract(col(2), col(1), out=V[:, 2])
    np.subtract(col(1), col(3), out=V[:, 3])
    M = np.matmul(V.reshape(16, -1, c), U, out=work["M"]).reshape(4, 4, n, th, tw, -1)
    q = work["q"]  # (2, 4, N, th, tw, F): A^T down the rows
    np.add(M[0], M[1], out=q[0])
    q[0] += M[2]
    np.subtract(M[1], M[2], out=q[1])
    q[1] -= M[3]
    y = work["y"]  # (N, th, 2, tw, 2, F): and across, into each 2×2 output tile
    for i in range(2):
        np.add(q[i, 0], q[i, 1], out=y[:, :, i, :, 0])
        y[:, :, i, :, 0] += q[i, 2]
        np.subtract(q[i, 1], q[i, 2], out=y[:, :, i, :, 1])
        y[:, :, i, :, 1] -= q[i, 3]
    return y.reshape(n, h, w, -1)


def shifted_forward(x, W, work):
    n, h, w, c = x.shape
    x_pad = pad2d(x, 1, 1, 1, 1, out=work["pad"])
    hp, wp = h + 2, w + 2
    rows = n * hp * wp - (2 * wp + 2)  # the last rows only ever read past the end
    flat = x_pad.reshape(-1, c)
    grid = work["grid"]  # (N*Hp*Wp, F): the output laid out on the padded grid
    np.matmul(flat[:rows], W[0, 0], out=grid[:rows])
    for a in range(3):
        for b in range(3):
            if a or b:
                shift = a * wp + b
                matmul_add(grid[:rows], flat[shift : shift + rows], W[a, b])
    return grid.reshape(n, hp, wp, -1)[:, :h, :w].copy()


def work_arrays(n, hw, c, f, dtype=np.float32) -> dict:
    t = hw // 2
    shapes = {
        "pad": (n, hw + 2, hw + 2, c),
        "cols": (n * hw * hw, 9 * c),
        "rows": (4, n, t, hw + 2, c),
        "V": (4, 4, n, t, t, c),
        "M": (16, n * t * t, f),
        "q": (2, 4, n, t, t, f),
        "y": (n, t, 2, t, 2, f),
        "grid": (n * (hw + 2) ** 2, f),
    }
    return {k: np.empty(s, dtype) for k, s in shapes.items()}


def variants(x, W, work) -> dict:
    """Each variant as a function of nothing (its inputs bound), for timing and for the check."""
    U = winograd_kernel(W)
    return {
        "im2col": lambda: im2col_forward(x, W, work),
        "winograd": lambda: winograd_forward(x, U, work),
        "shifted": lambda: shifted_forward(x, W, work),
    }


def best_and_median(fn, repeats: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, float(np.median(times)) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--shard", type=int, default=16, help="images per shard (fit's shards hold 16)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"3x3 'same' convolution forward, {args.shard} images, one thread, float32: ms, best / median")
    print(f"{'layer':<16} {'im2col':>13} {'winograd':>13} {'shifted':>13}   max |diff| / max |y|")
    with threadpool_limits(1):
        for hw, c, f in SHAPES:
            x = rng.standard_normal((args.shard, hw, hw, c)).astype(np.float32)
            W = (rng.standard_normal((3, 3, c, f)) * 0.1).astype(np.float32)
            fns = variants(x, W, work_arrays(args.shard, hw, c, f))
            reference = fns["im2col"]().copy()
            error = max(np.abs(fns[k]() - reference).max() for k in ("winograd", "shifted")) / np.abs(reference).max()
            cells = [best_and_median(fn, args.repeats) for fn in fns.values()]
            print(
                f"{hw}x{hw}, {c:>2} -> {f:<3}  "
                + " ".join(f"{b:>6.2f} /{m:>5.2f}" for b, m in cells)
                + f"   {error:.1e}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
