"""The ceiling of a NumPy training step: its matrix products alone, run as ``fit``'s threads run them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ceiling.py --compare torch

Most of a training step is BLAS products; the rest (copies, activations, pooling, dropout, the
loss, Adam, Python) is what the fast kernels have been trimming. This script asks how far that
trimming could ever go. It times every product of one training step of the documented CNN alone,
in the shapes ``fit`` gives them (the body in 16-image shards, the dense head in two halves), two
at a time on two threads with BLAS on one thread each, as ``fit`` runs them. For each convolution
and direction (forward, weight gradient, input gradient) it keeps the faster of the two
formulations minicnn has: one product with the patch matrix (``K = kh*kw*C``), or ``kh*kw``
shifted products adding in place (``K = C``, :mod:`minicnn.kernels.conv`). The sum is the step's
time if everything but those products cost nothing: an upper bound on the images per second of
any NumPy step built on them. ``--compare torch`` times PyTorch's training step and minicnn's
``fit`` in the same run, alternating, so the three figures share the machine's state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from bench import FIT_BATCHES, minicnn_fit_rep
from harness import alternate, blas_description
from threadpoolctl import threadpool_limits
from torch_twin import TORCH_MISSING, import_torch, torch_model, torch_train_rep
from workload import EPS, LR

from minicnn import models, optim
from minicnn.backend import cpu_model
from minicnn.blas import matmul_add
from minicnn.distributed.threads import HEAD_SHARDS, SHARD_SIZE, head_start
from minicnn.kernels.conv import Layout
from minicnn.layers import Conv2D, Dense
from minicnn.layers.im2col import col2im, im2col, pad2d

DIRECTIONS = ("fwd", "dW", "dx")  # a layer's products: forward, weight gradient, input gradient


def conv_products(layer: Conv2D, n: int, rng, input_grad: bool = True) -> dict:
    """``{direction: {formulation: product-only function}}`` for ``layer`` on an ``n``-image shard
    (no input gradient for a first layer: ``input_grad=False``)."""
    (h, w, c), (ho, wo, f), (kh, kw) = layer.input_shape, layer.output_shape, layer.kernel_size
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    dy = rng.standard_normal((n, ho, wo, f), dtype=np.float32)
    W = layer.params["W"].astype(np.float32)
    pt, pb, pl, pr = layer.pads
    cols = im2col(pad2d(x, pt, pb, pl, pr), kh, kw, 1, 1, ho, wo)  # built once, outside the timing
    W2, dy2 = W.reshape(-1, f), dy.reshape(-1, f)
    y2, dW2, dcols = np.empty((len(cols), f), np.float32), np.empty(W2.shape, np.float32), np.empty_like(cols)
    grid = Layout(x.shape, (kh, kw), layer.pads)
    x_grid, dy_grid = grid.place(x), grid.place(dy)
    rows, front = grid.rows, grid.front
    g, y_grid = dy_grid[front : front + rows], np.empty((rows, f), np.float32)
    dW_turned, dx_grid = np.empty((kh, kw, f, c), np.float32), np.zeros((grid.size, c), np.float32)

    def shifted_forward():
        (a, b, s), *rest = grid.shifts
        np.matmul(x_grid[s : s + rows], W[a, b], out=y_grid)
        for a, b, s in rest:
            matmul_add(y_grid, x_grid[s : s + rows], W[a, b])

    def shifted_dW():
        for a, b, s in grid.shifts:
            np.matmul(g.T, x_grid[s : s + rows], out=dW_turned[a, b])

    def shifted_dx():
        for a, b, s in grid.shifts:
            matmul_add(dx_grid[s : s + rows], g, W[a, b].T)

    products = {
        "fwd": {"patch": lambda: np.matmul(cols, W2, out=y2), "shifted": shifted_forward},
        "dW": {"patch": lambda: np.matmul(cols.T, dy2, out=dW2), "shifted": shifted_dW},
    }
    if input_grad:
        products["dx"] = {"patch": lambda: np.matmul(dy2, W2.T, out=dcols), "shifted": shifted_dx}

    def agree() -> float:
        """Largest relative difference between the two formulations' results (after running each once)."""
        dx_grid[...] = 0
        for direction in [d for d in DIRECTIONS if d in products]:
            for fn in products[direction].values():
                fn()
        pairs = [
            (y2.reshape(n, ho, wo, f), grid.crop(y_grid, ho, wo)),
            (dW2, dW_turned.transpose(0, 1, 3, 2).reshape(-1, f)),
        ]
        if input_grad:
            dx_pad = col2im(dcols, (n, h + pt + pb, w + pl + pr, c), kh, kw, 1, 1, ho, wo)
            pairs.append((dx_pad[:, pt : pt + h, pl : pl + w], grid.crop(dx_grid[front : front + rows], h, w)))
        return max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in pairs)

    products["agree"] = agree
    return products


def dense_products(layer: Dense, n: int, rng) -> dict:
    """The dense layer's three products on ``n`` rows (one half of the head)."""
    x = rng.standard_normal((n, layer.input_shape[0]), dtype=np.float32)
    W = layer.params["W"].astype(np.float32)
    dy = rng.standard_normal((n, W.shape[1]), dtype=np.float32)
    y, dW, dx = np.empty((n, W.shape[1]), np.float32), np.empty_like(W), np.empty_like(x)
    return {
        "fwd": {"gemm": lambda: np.matmul(x, W, out=y)},
        "dW": {"gemm": lambda: np.matmul(x.T, dy, out=dW)},
        "dx": {"gemm": lambda: np.matmul(dy, W.T, out=dx)},
    }


def label(layer) -> str:
    """``conv 16→32`` or ``dense 4096→256``."""
    if isinstance(layer, Conv2D):
        return f"conv {layer.input_shape[-1]}→{layer.filters}"
    return f"dense {layer.input_shape[0]}→{layer.params['W'].shape[1]}"


def timed_together(pool, functions, repeats: int) -> float:
    """Median seconds for ``functions`` (one per thread) to run at once, after one warm-up."""
    samples = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        for future in [pool.submit(fn) for fn in functions]:
            future.result()
        if i:
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=SHARD_SIZE, help=f"images per body shard (fit's: {SHARD_SIZE})")
    p.add_argument("--repeats", type=int, default=21, help="medians of this many timed runs (default: 21)")
    p.add_argument("--compare", choices=("torch",), help="also time PyTorch's step and minicnn's fit, alternating")
    args = p.parse_args(argv)
    torch = import_torch() if args.compare else None
    if args.compare and torch is None:
        print(f"--compare torch: {TORCH_MISSING}", file=sys.stderr)
        return 2
    model = models.cifar10_cnn(seed=0)
    body, head = model.layers[: head_start(model)], model.layers[head_start(model) :]
    b, t = args.batch_size, args.threads
    shard, half = min(args.shard_size, b), -(-b // HEAD_SHARDS)
    rounds = {"body": -(-b // shard) / t, "head": HEAD_SHARDS / t}  # each thread's shards per step
    print(f"CPU: {cpu_model()}; BLAS: {blas_description()}; {t} threads, BLAS on 1 each")
    print(f"batch {b}: body in {-(-b // shard)} shards of {shard}, head in {HEAD_SHARDS} halves of {half}\n")
    rng = np.random.default_rng(0)
    total = 0.0
    print(f"{'layer':<18}{'product':<8}{'patch ms':>10}{'shifted ms':>12}{'best ms':>9}  (per pair, at once)")
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(t) as pool:
        for part, layers, rows in (("body", body, shard), ("head", head, half)):
            for layer in layers:
                if not isinstance(layer, (Conv2D, Dense)):
                    continue
                first = layer is model.layers[0]  # computes no input gradient, as in training
                made = [
                    conv_products(layer, rows, rng, not first)
                    if isinstance(layer, Conv2D)
                    else dense_products(layer, rows, rng)
                    for _ in range(t)
                ]
                for direction in [d for d in DIRECTIONS if d in made[0]]:
                    times = {
                        form: timed_together(pool, [m[direction][form] for m in made], args.repeats)
                        for form in made[0][direction]
                    }
                    best = min(times.values())
                    total += best * rounds[part]
                    one, shifted = (
                        times.get("patch", times.get("gemm")),
                        times.get("shifted"),
                    )  # a dense layer: one GEMM
                    cells = [f"{v * 1e3:.3f}" if v is not None else "-" for v in (one, shifted)]
                    print(f"{label(layer):<18}{direction:<8}{cells[0]:>10}{cells[1]:>12}{best * 1e3:9.3f}")
    ceiling = b / total
    print(f"\nproducts alone: {total * 1e3:.1f} ms a step of {b} = a ceiling of {ceiling:,.0f} images/s")
    if torch is None:
        return 0
    torch.set_num_threads(t)
    x = rng.standard_normal((FIT_BATCHES * b, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, FIT_BATCHES * b)
    opt = optim.Adam(model, lr=LR, eps=EPS)
    twin = torch_model(torch, model, torch.device("cpu"))
    twin_opt = torch.optim.Adam(twin.parameters(), lr=LR, eps=EPS)
    tx = torch.from_numpy(x[:b].transpose(0, 3, 1, 2).copy())
    ty = torch.from_numpy(y[:b])

    runners = {  # seconds per batch: one fit epoch of 4 batches, PyTorch's step 4 in a row
        "fit": lambda: minicnn_fit_rep(model, opt, x, y, b, t),
        "torch": lambda: torch_train_rep(torch, twin, twin_opt, tx, ty, lambda: None, FIT_BATCHES),
    }
    medians = alternate(runners, max(3, args.repeats // 4), warmup=1, settle=0.15)
    fit, pt = b / medians["fit"][0], b / medians["torch"][0]
    print(f"minicnn fit: {fit:,.0f} images/s ({fit / ceiling:.0%} of the ceiling)")
    print(f"PyTorch {torch.__version__} training step: {pt:,.0f} images/s")
    print(f"fit / PyTorch = {fit / pt:.2f}; ceiling / PyTorch = {ceiling / pt:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
