"""Where a training step's time goes, layer by layer: a profile for learners.

    rows = profile_model(cifar10_cnn(seed=0), batch_size=128)
    print(format_table(rows))
    print(reading(rows))       # "87% of the step is convolution; conv 16→32 runs at ..."

or from a shell: ``python -m minicnn.profile [--batch-size N] [--backend numpy|cupy] [--repeats N]``.

Each row puts what a layer *must* do next to what it *did*:

* **FLOPs**, counted by hand from the shapes (a multiply-add is 2 FLOPs; bias additions and
  the element-wise work inside a layer are left out). A convolution of ``Cin`` into ``Cout``
  channels with a ``kh×kw`` kernel does ``2·Ho·Wo·kh·kw·Cin·Cout`` FLOPs per image forward.
  Its backward does the same again for ``dW`` and once more for ``dx`` — except in the
  model's first layer, which never computes ``dx`` in training (nobody needs the gradient of
  the images), so its backward costs one forward, not two. ``Dense`` likewise with
  ``2·D·U`` per example. (For stride 1 minicnn computes ``dx`` on the padded grid, slightly
  more than this count: the count is the mathematical work, not the code's.)
* **bytes** for layers with no FLOPs (activations, pooling, dropout): the least memory
  traffic the layer's arrays imply — read its input, write its output and what it keeps for
  backward; backward reads ``dy`` and the kept array and writes ``dx``. Memory, not
  arithmetic, bounds these layers.
* **work_bytes**: the arrays a layer holds on to, *measured* after a forward and a backward
  from its ``_scratch`` dict (arrays reused from step to step: patch matrix, padded input,
  masks) and its ``cache`` (what forward keeps for backward), each buffer counted once;
  ``work`` names each one.
* **times**: medians over ``repeats`` after one warm-up step, each layer timed on its own
  inside a real training step (forward with ``training=True``, the loss, backward in reverse,
  an Adam update); on a GPU the device is synchronised before every clock reading.
* **gflops** = FLOPs / time, and **peak_fraction** = that over this machine's matrix-product
  peak, measured once per backend with a large float32 GEMM (:func:`matmul_peak`).

The model's weights are restored after profiling (the Adam updates are real, then undone).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from .backend import get_backend, is_device_array, set_backend
from .layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from .losses import SoftmaxCrossEntropy
from .optim import Adam

__all__ = ["profile_model", "layer_flops", "matmul_peak", "totals", "reading", "format_table", "main"]

_PEAK_CACHE: dict = {}


class Profile(list):
    """The rows of :func:`profile_model` (a list of dicts, one per layer), plus what the step
    spent outside the layers: ``step`` holds ``loss_ms``, ``update_ms``, ``batch_size``,
    ``backend``, ``device``, ``peak_gflops``, ``repeats``."""

    def __init__(self, rows, step):
        super().__init__(rows)
        self.step = step


# -- counting -----------------------------------------------------------------------------------
def layer_flops(layer, batch_size: int, need_input_grad: bool = True) -> tuple[int, int]:
    """``(forward FLOPs, backward FLOPs)`` of one built layer for ``batch_size`` examples.

    A multiply-add counts 2. Conv2D: ``2·N·Ho·Wo·kh·kw·Cin·Cout`` forward; backward the same
    for ``dW`` plus the same for ``dx`` when ``need_input_grad``. Dense: ``2·N·D·U``, likewise.
    Every other layer: 0 (element-wise: see :func:`profile_model`'s ``bytes``).
    """
    if isinstance(layer, Conv2D):
        ho, wo, cout = layer.output_shape
        kh, kw = layer.kernel_size
        cin = layer.input_shape[2]
        fwd = 2 * batch_size * ho * wo * kh * kw * cin * cout
    elif isinstance(layer, Dense):
        fwd = 2 * batch_size * layer.input_shape[0] * layer.units
    else:
        return 0, 0
    return fwd, fwd * (2 if need_input_grad else 1)


def describe(layer) -> str:
    """A short name a learner recognises: ``conv 16→32 3×3``, ``dense 4096→256``, ``maxpool 2×2``."""
    if isinstance(layer, Conv2D):
        kh, kw = layer.kernel_size
        s = "" if layer.strides == (1, 1) else f" /{layer.strides[0]}"
        return f"conv {layer.input_shape[2]}→{layer.filters} {kh}×{kw}{s}"
    if isinstance(layer, Dense):
        return f"dense {layer.input_shape[0]}→{layer.units}"
    if isinstance(layer, LeakyReLU):
        return f"leaky_relu {layer.alpha:g}"
    if isinstance(layer, MaxPool2D):
        return f"maxpool {layer.pool_size[0]}×{layer.pool_size[1]}"
    if isinstance(layer, Dropout):
        return f"dropout {layer.rate:g}"
    if isinstance(layer, (ReLU, Flatten)):
        return type(layer).__name__.lower()
    return layer.name or type(layer).__name__


def _arrays(obj):
    """Every NumPy/CuPy array inside ``obj`` (an array, or tuples/lists/dicts of them)."""
    if isinstance(obj, np.ndarray) or is_device_array(obj):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _arrays(item)


def _owner(a):
    """The array that owns ``a``'s memory (a view's base), so a buffer is counted once."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def work_arrays(layer) -> dict:
    """``{name: bytes}`` of the arrays the layer holds now: its ``_scratch`` entries by key,
    then whatever its ``cache`` adds (``cache``, ``cache[1]``, ...), each buffer once."""
    seen, out = set(), {}
    for key, buf in layer._scratch.items():
        owner = _owner(buf)
        if id(owner) not in seen:
            seen.add(id(owner))
            out[key] = int(owner.nbytes)
    for i, a in enumerate(_arrays(layer.cache)):
        owner = _owner(a)
        if id(owner) not in seen:
            seen.add(id(owner))
            out["cache" if i == 0 else f"cache[{i}]"] = int(owner.nbytes)
    return out


def _nbytes(obj) -> int:
    return sum(int(a.nbytes) for a in _arrays(obj))


# -- the machine's peak -------------------------------------------------------------------------
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
    saved = [{k: v.copy() for k, v in layer.params.items()} for layer in layers]
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
        for layer, params in zip(layers, saved):
            for k, v in params.items():
                layer.params[k][...] = v
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


# -- reading it ---------------------------------------------------------------------------------
def totals(rows) -> dict:
    """Sums over the rows: FLOPs, bytes, work bytes, times; the step's time (loss and update
    included when ``rows`` is a :class:`Profile`), images per second, and each layer type's
    share of the step (``shares``, e.g. ``{"Conv2D": 0.87, ...}``)."""
    step = getattr(rows, "step", {})
    layer_ms = sum(r["fwd_ms"] + r["bwd_ms"] for r in rows)
    step_ms = step.get("step_ms", layer_ms)
    shares: dict = {}
    for r in rows:
        shares[r["type"]] = shares.get(r["type"], 0.0) + r["share"]
    flops = sum(r["fwd_flops"] + r["bwd_flops"] for r in rows)
    out = {
        "params": sum(r["params"] for r in rows),
        "fwd_flops": sum(r["fwd_flops"] for r in rows),
        "bwd_flops": sum(r["bwd_flops"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "work_bytes": sum(r["work_bytes"] for r in rows),
        "fwd_ms": sum(r["fwd_ms"] for r in rows),
        "bwd_ms": sum(r["bwd_ms"] for r in rows),
        "layer_ms": layer_ms,
        "loss_ms": step.get("loss_ms", 0.0),
        "update_ms": step.get("update_ms", 0.0),
        "step_ms": step_ms,
        "gflops": flops / step_ms / 1e6 if step_ms else 0.0,
        "shares": shares,
    }
    if "batch_size" in step and step_ms:
        out["images_per_second"] = step["batch_size"] / (step_ms / 1e3)
    if step.get("peak_gflops"):
        out["peak_fraction"] = out["gflops"] / step["peak_gflops"]
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def reading(rows) -> str:
    """One line a learner can act on: which kind of layer takes the step, how close the
    slowest convolution comes to the machine's peak, and how big its patch matrix is."""
    t = totals(rows)
    conv = [r for r in rows if r["type"] == "Conv2D"]
    if not conv:
        top = max(rows, key=lambda r: r["share"])
        return f"{top['share']:.0%} of the step is {top['layer']}"
    worst = max(conv, key=lambda r: r["fwd_ms"] + r["bwd_ms"])
    text = (
        f"{t['shares'].get('Conv2D', 0):.0%} of the step is convolution; {worst['layer'].rsplit(' ', 1)[0]} "
        f"(the slowest) runs at {worst['peak_fraction']:.0%} of peak"
    )
    if "cols" in worst["work"]:
        text += f"; its patch matrix is {_mb(worst['work']['cols'])}"
    return text


def format_table(rows) -> str:
    """The profile as a fixed-width text table, with a totals line."""
    header = (
        "#",
        "layer",
        "output shape",
        "params",
        "fwd GFLOP",
        "bwd GFLOP",
        "work MB",
        "fwd ms",
        "bwd ms",
        "share",
        "GFLOP/s",
        "% peak",
        "GB/s",
    )
    lines = []
    for r in rows:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")"
        flops = r["fwd_flops"] > 0
        lines.append(
            (
                str(r["index"]),
                r["layer"] + ("" if r["dx"] or not flops else " (no dx)"),
                shape,
                f"{r['params']:,}",
                f"{r['fwd_flops'] / 1e9:.3f}" if flops else "-",
                f"{r['bwd_flops'] / 1e9:.3f}" if flops else "-",
                f"{r['work_bytes'] / 1e6:.1f}",
                f"{r['fwd_ms']:.2f}",
                f"{r['bwd_ms']:.2f}",
                f"{r['share']:.1%}",
                f"{r['gflops']:.1f}" if flops else "-",
                f"{r['peak_fraction']:.0%}" if flops else "-",
                f"{r['gbps']:.1f}" if r["gbps"] else "-",
            )
        )
    t = totals(rows)
    lines.append(
        (
            "",
            "all layers",
            "",
            f"{t['params']:,}",
            f"{t['fwd_flops'] / 1e9:.3f}",
            f"{t['bwd_flops'] / 1e9:.3f}",
            f"{t['work_bytes'] / 1e6:.1f}",
            f"{t['fwd_ms']:.2f}",
            f"{t['bwd_ms']:.2f}",
            f"{t['layer_ms'] / t['step_ms']:.1%}",
            f"{t['gflops']:.1f}",
            f"{t['peak_fraction']:.0%}" if "peak_fraction" in t else "-",
            "",
        )
    )
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    left = {1, 2}

    def fmt(fields):
        return "  ".join(
            f.ljust(w) if k in left else f.rjust(w) for k, (f, w) in enumerate(zip(fields, widths))
        ).rstrip()

    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


def report(rows) -> str:
    """What ``python -m minicnn.profile`` prints: the setting, the table, the totals, the reading."""
    s, t = rows.step, totals(rows)
    head = (
        f"Training step of {s['batch_size']} images ({s['dtype']}), {s['backend']} on {s['device']}; "
        f"median of {s['repeats']} after 1 warm-up.\n"
        f"Matrix-product peak here: {s['peak_gflops']:.1f} GFLOP/s (float32 GEMM)."
    )
    tail = (
        f"Step: {t['step_ms']:.1f} ms = layers {t['layer_ms']:.1f} + loss {t['loss_ms']:.2f} + "
        f"Adam update {t['update_ms']:.2f} ms; {t.get('images_per_second', 0):.0f} images/s; "
        f"{(t['fwd_flops'] + t['bwd_flops']) / 1e9:.2f} GFLOP at {t['gflops']:.1f} GFLOP/s.\n"
        f"FLOPs: multiply-add = 2, matrix products only; the first layer's backward computes dW "
        f"alone (no dx). Element-wise layers: GB/s of the least traffic their arrays imply.\n"
        f"Reading: {reading(rows)}."
    )
    return f"{head}\n\n{format_table(rows)}\n\n{tail}"


def main(argv=None) -> int:
    """``python -m minicnn.profile``: print the per-layer profile of the documented model."""
    p = argparse.ArgumentParser(
        prog="python -m minicnn.profile",
        description="Per-layer profile of one training step of the documented CIFAR-10 CNN.",
    )
    p.add_argument("--batch-size", type=int, default=128, metavar="N")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--repeats", type=int, default=5, metavar="N", help="timed steps after one warm-up (median)")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        p.error("--batch-size and --repeats must be positive")
    set_backend(args.backend)
    from .models import cifar10_cnn

    rows = profile_model(cifar10_cnn(seed=0), batch_size=args.batch_size, repeats=args.repeats)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
