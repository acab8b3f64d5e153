"""What a layer did: the machine's GEMM peak, and every layer timed inside a real training step."""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..backend import get_backend
from ..layers import Dropout, Flatten
from ..losses import SoftmaxCrossEntropy
from ..optim import Adam
from .counting import _nbytes, describe, layer_flops, work_arrays

_PEAK_CACHE: dict = {}


class Profile(list):
    """The rows of :func:`profile_model` (a list of dicts, one per layer), plus what the step
    spent outside the layers: ``step`` holds ``loss_ms``, ``update_ms``, ``batch_size``,
    ``backend``, ``device``, ``peak_gflops``, ``repeats``."""

    def __init__(self, rows, step):
        super().__init__(rows)
        self.step = step


def matmul_peak(n: int | None = None, repeats: int = 10) -> float:
    """GFLOP/s of a float32 ``n×n @ n×n`` product on the current backend: the best of
    ``repeats`` (10: a shared VM's cores are not always both there) after a warm-up, measured once per
    backend and device and then cached.

    ``n`` defaults to 2048 on the CPU (about 17 GFLOP per product) and 8192 on a GPU.
    This is what BLAS reaches here on a large square product — the ceiling the
    convolutions' (tall, thin) matrix products are compared with.
    """
    backend = get_backend()
    n = n or (8192 if backend.name == "cupy" else 2048)
    key = (backend.name, backend.device_name(), n)
    if key not in _PEAK_CACHE:
        xp = backend.xp
        rng = np.random.default_rng(0)
        a = backend.asarray(rng.standard_normal((n, n), dtype=np.float32))
        b = backend.asarray(rng.standard_normal((n, n), dtype=np.float32))
        c = xp.empty((n, n), dtype=np.float32)
        xp.matmul(a, b, out=c)
        backend.synchronize()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            xp.matmul(a, b, out=c)
            backend.synchronize()
            best = min(best, time.perf_counter() - start)
        _PEAK_CACHE[key] = 2 * n**3 / best / 1e9
    return _PEAK_CACHE[key]


# -- profiling ----------------------------------------------------------------------------------
def profile_model(
    model, batch_size: int = 128, repeats: int = 5, *, seed: int = 0, peak: float | None = None
) -> Profile:
    """Profile one training step of ``model`` on random data, layer by layer.

    Returns a :class:`Profile`: a list with one dict per layer holding ``index``, ``layer``
    (a short description), ``name``, ``type``, ``output_shape`` (with the batch axis as None),
    ``params``, ``fwd_flops``, ``bwd_flops``, ``dx`` (whether backward computed the input
    gradient), ``bytes`` (the element-wise layers' memory traffic, 0 for conv/dense),
    ``work_bytes``, ``work`` (by array), ``fwd_ms``, ``bwd_ms``, ``share`` (of the whole
    step, loss and update included), ``gflops``, ``peak_fraction``, ``gbps``.
    The layers' ``output_shape`` etc. come from the model; times from ``repeats`` timed steps
    after one warm-up (medians). ``peak`` (GFLOP/s) skips :func:`matmul_peak`.
    """
    if batch_size < 1 or repeats < 1:
        raise ValueError(f"profile_model: batch_size and repeats must be positive, got {batch_size}, {repeats}")
    backend = get_backend()
    rng = np.random.default_rng(seed)
    x = backend.asarray(rng.standard_normal((batch_size, *model.input_shape)), dtype=model.dtype)
    n_classes = int(np.prod(model.output_shape))
    y = backend.asarray(rng.integers(0, n_classes, batch_size))
    layers = model.layers
    # Training steps move the weights and BatchNormalization's moving statistics: both are put back.
    saved = [{k: v.copy() for k, v in (layer.params | layer.state).items()} for layer in layers]
    loss_fn = SoftmaxCrossEntropy()
    opt = Adam(model, lr=1e-3)
    sync = backend.synchronize

    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    loss_times, update_times = [], []
    moved = [[0, 0] for _ in layers]  # bytes read + written, forward and backward
    work = [{} for _ in layers]

    def clock():
        sync()
        return time.perf_counter()

    try:
        for rep in range(repeats + 1):  # rep 0 is the warm-up
            timed = rep > 0
            h = x
            for i, layer in enumerate(layers):
                t0 = clock()
                out = layer.forward(h, training=True)
                t1 = clock()
                if timed:
                    fwd[i].append(t1 - t0)
                    if rep == repeats:  # what forward keeps, at its largest
                        work[i] = work_arrays(layer)
                        moved[i][0] = (
                            _nbytes(h) + _nbytes(out) + _nbytes(layer.cache)
                            if out is not h and not isinstance(layer, Flatten)
                            else 0
                        )
                h = out
            t0 = clock()
            loss_fn.forward(h, y)
            dy = loss_fn.backward()
            t1 = clock()
            if timed:
                loss_times.append(t1 - t0)
            for i in reversed(range(len(layers))):
                layer = layers[i]
                kept = _nbytes(layer.cache)
                t0 = clock()
                dx = layer.backward(dy, need_input_grad=i > 0)
                t1 = clock()
                if timed:
                    bwd[i].append(t1 - t0)
                    if rep == repeats and moved[i][0]:
                        moved[i][1] = _nbytes(dy) + kept + _nbytes(dx)
                    if rep == repeats:  # backward's own work array (dy_grid) now exists too
                        work[i] = {**work_arrays(layer), **work[i]}
                dy = dx
            t0 = clock()
            opt.step()
            t1 = clock()
            if timed:
                update_times.append(t1 - t0)
    finally:
        for layer, arrays in zip(layers, saved):
            for k, v in arrays.items():
                (layer.params if k in layer.params else layer.state)[k][...] = v
        for layer in layers:
            layer.cache = None
            if isinstance(layer, Dropout):
                layer.reseed(layer.seed)

    peak = matmul_peak() if peak is None else float(peak)
    med = statistics.median
    loss_ms, update_ms = 1e3 * med(loss_times), 1e3 * med(update_times)
    step_ms = sum(1e3 * (med(f) + med(b)) for f, b in zip(fwd, bwd)) + loss_ms + update_ms
    rows = []
    for i, layer in enumerate(layers):
        f_flops, b_flops = layer_flops(layer, batch_size, need_input_grad=i > 0)
        f_ms, b_ms = 1e3 * med(fwd[i]), 1e3 * med(bwd[i])
        seconds = (f_ms + b_ms) / 1e3
        gflops = (f_flops + b_flops) / seconds / 1e9 if f_flops and seconds > 0 else 0.0
        traffic = sum(moved[i]) if not f_flops else 0
        rows.append(
            {
                "index": i,
                "layer": describe(layer),
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": (None, *layer.output_shape),
                "params": layer.count_params(),
                "fwd_flops": f_flops,
                "bwd_flops": b_flops,
                "dx": i > 0,
                "bytes": traffic,
                "work_bytes": sum(work[i].values()),
                "work": work[i],
                "fwd_ms": f_ms,
                "bwd_ms": b_ms,
                "share": (f_ms + b_ms) / step_ms,
                "gflops": gflops,
                "peak_fraction": gflops / peak if peak else 0.0,
                "gbps": traffic / seconds / 1e9 if traffic and seconds > 0 else 0.0,
            }
        )
    step = {
        "loss_ms": loss_ms,
        "update_ms": update_ms,
        "step_ms": step_ms,
        "batch_size": batch_size,
        "repeats": repeats,
        "backend": backend.name,
        "device": backend.device_name(),
        "peak_gflops": peak,
        "dtype": np.dtype(model.dtype).name,
    }
    return Profile(rows, step)
