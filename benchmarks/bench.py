"""minicnn benchmark suite: per-layer times, whole-model throughput and peak memory.

    python benchmarks/bench.py [--backend numpy|cupy] [--batch-size N ...] [--compare torch]
                               [--repeats R] [--warmup W] [--layers/--no-layers]
                               [--memory/--no-memory] [--threads T] [--json PATH]

Everything is measured on the documented CIFAR-10 CNN (``minicnn.models.cifar10_cnn``),
input ``(B, 32, 32, 3)`` NHWC float32, on random data (speed does not depend on the values).

* Per layer: ``forward(training=True)`` and ``backward`` of every layer at its own shapes.
* Whole model: a training step (forward, softmax cross-entropy forward + backward, model
  backward, Adam step) and inference (``forward(training=False)``), in images/second.
* Peak memory of a short training run, each library in its own child process
  (``--_memory-child minicnn|torch``): peak RSS on the CPU, pool / allocator high-water on a GPU.

Times are medians over ``--repeats`` after ``--warmup`` untimed runs; the device is
synchronised before each clock reading. With ``--compare torch`` the same network is built in
PyTorch (native NCHW, train mode, Adam) and timed *alternately* with minicnn, one repeat of
each in turn, so that background noise hits both alike.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import minicnn
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import cifar10_cnn
from minicnn.optim import Adam

TORCH_MISSING = "PyTorch is a benchmark-only dependency: pip install torch==2.13.0"
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
LR = 1e-3
EPS = 1e-7          # minicnn's Adam default (Keras's); PyTorch is given the same


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="minicnn backend; with cupy, PyTorch runs on CUDA (default: numpy)")
    p.add_argument("--batch-size", action="append", metavar="N",
                   help="batch size(s) for the layer and model timings; repeat the flag or give a "
                        "comma list (default: 32,128)")
    p.add_argument("--compare", choices=("torch",), default=None,
                   help="also time the same network in PyTorch, alternately with minicnn")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats; medians are reported (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before timing (default: 2)")
    p.add_argument("--layers", action=argparse.BooleanOptionalAction, default=True,
                   help="per-layer forward/backward table (default: on)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="peak memory of a short training run in a child process (default: on)")
    p.add_argument("--memory-batch-size", type=int, default=128, metavar="N",
                   help="batch size of the memory run (default: 128)")
    p.add_argument("--memory-steps", type=int, default=20, metavar="N",
                   help="training steps of the memory run (default: 20)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="CPU threads for NumPy's BLAS and torch.set_num_threads "
                        "(default: what NumPy's BLAS uses, else os.cpu_count())")
    p.add_argument("--settle", type=float, default=0.15, metavar="S",
                   help="seconds to pause when switching between minicnn and PyTorch, so that the "
                        "other library's idle threads stop spinning (default: 0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the random data")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--_memory-child", dest="memory_child", choices=("minicnn", "torch"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = []
    for item in args.batch_size or ["32,128"]:
        for part in item.split(","):
            if part.strip():
                sizes.append(int(part))
    if not sizes or min(sizes) < 1:
        p.error(f"--batch-size must be positive ints, got {args.batch_size}")
    args.batch_sizes = list(dict.fromkeys(sizes))       # unique, in the given order
    if args.repeats < 1 or args.warmup < 0 or args.settle < 0:
        p.error("--repeats must be >= 1, --warmup and --settle >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# Machine description and thread control
# ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _openblas_function(what: str):
    """``openblas_<what>`` from the OpenBLAS that NumPy loaded, by ctypes; None if not found.

    NumPy wheels ship a renamed OpenBLAS (``scipy_openblas_get_num_threads64_``), so try the
    usual prefixes and suffixes. This only serves when threadpoolctl is not installed.
    """
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                fn = getattr(lib, f"{prefix}openblas_{what}{suffix}", None)
                if fn is not None:
                    return fn
    return None


def blas_threads() -> int | None:
    """How many threads NumPy's BLAS uses, or None when that cannot be found out."""
    try:
        import threadpoolctl
        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                return int(info["num_threads"])
    except ImportError:
        pass
    fn = _openblas_function("get_num_threads")
    if fn is not None:
        fn.restype = ctypes.c_int
        return int(fn())
    return None


_THREAD_LIMITER = None     # keeps threadpoolctl's limiter alive


def set_blas_threads(n: int) -> bool:
    """Make NumPy's BLAS use ``n`` threads; False if neither threadpoolctl nor OpenBLAS allows it."""
    global _THREAD_LIMITER
    try:
        import threadpoolctl
        _THREAD_LIMITER = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        return True
    except ImportError:
        pass
    fn = _openblas_function("set_num_threads")
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int]
    fn(n)
    return True


def blas_description() -> str:
    """NumPy's BLAS: name, version and configuration (threadpoolctl adds the kernel it picked)."""
    try:
        import threadpoolctl
        libs = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            i = libs[0]
            return f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, via threadpoolctl)"
    except ImportError:
        pass
    try:
        with contextlib.redirect_stdout(io.StringIO()), _quiet_warnings():
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}"
        config = blas.get("openblas configuration")
    except Exception:            # old NumPy: no mode="dicts"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), _quiet_warnings():
            np.show_config()
        lines = [l.strip() for l in buf.getvalue().splitlines() if "blas" in l.lower()]
        return "; ".join(lines[:3]) or "unknown"
    fn = _openblas_function("get_config")
    if fn is not None:           # the runtime configuration names the CPU kernel actually used
        fn.restype = ctypes.c_char_p
        config = fn().decode(errors="replace")
    return f"{text} ({config})" if config else text


@contextlib.contextmanager
def _quiet_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def import_torch():
    """``torch``, or None when it is not importable (a benchmark-only dependency)."""
    try:
        import torch
        return torch
    except ImportError:
        return None


def machine_info(args, backend, torch) -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_description(),
        "blas_threads": blas_threads(),
        "minicnn": minicnn.__version__,
        "backend": backend.name,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "gpu": None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if backend.name == "cupy":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    if torch is not None and backend.name == "cupy":
        info["torch_cuda"] = torch.version.cuda
    return info


def print_header(info, args):
    print("minicnn benchmark")
    print(f"  machine : {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['platform']}")
    print(f"  python  : {info['python']}, numpy {info['numpy']}, minicnn {info['minicnn']}")
    print(f"  BLAS    : {info['blas']}, {info['blas_threads'] or '?'} threads")
    if info["torch"] is not None:
        print(f"  torch   : {info['torch']}, {info['torch_threads']} threads"
              + (f", CUDA {info.get('torch_cuda')}" if info.get("torch_cuda") else ""))
    else:
        print("  torch   : not installed")
    if info["gpu"]:
        print(f"  GPU     : {info['gpu']} (CuPy {info['cupy']}, CUDA runtime {info['cuda_runtime']})")
    print(f"  backend : {info['backend']}; batch sizes {args.batch_sizes}; "
          f"median of {args.repeats} repeats after {args.warmup} warm-up")
    if args.compare and info["torch"] is not None:
        print(f"  compare : PyTorch timed alternately with minicnn (per layer: in blocks), "
              f"{args.settle:g} s pause at each switch")
    load = info["load_average_1min"]
    if load is not None:
        busy = load > 0.5
        print(f"  load    : {load:.2f} (1-min average)"
              + ("  WARNING: the machine is busy, timings will be slow and noisy" if busy else ""))
    print()


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
class Stopwatch:
    """``lap()`` returns the seconds since the previous lap, after the device has finished."""

    def __init__(self, sync):
        self.sync = sync
        self.sync()
        self.t = time.perf_counter()

    def lap(self) -> float:
        self.sync()
        now = time.perf_counter()
        elapsed, self.t = now - self.t, now
        return elapsed


def minicnn_sync():
    minicnn.get_backend().synchronize()


def torch_sync_for(torch, device):
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def alternate(runners: dict, repeats: int, warmup: int, settle: float = 0.0, interleave: bool = True) -> dict:
    """Time every runner ``warmup + repeats`` times; medians of the timed repeats.

    ``runners`` maps a name to a callable that performs one repeat and returns a tuple of
    durations in seconds (e.g. ``(forward, backward)``). Returns name -> tuple of medians.

    ``interleave``: one repeat of each runner in turn, round after round, so that background
    noise hits all alike; else all repeats of one runner, then the next (used per layer).
    ``settle``: seconds to sleep whenever the runner changes. A thread pool busy-waits for a
    while after its last job (OpenBLAS's workers for ~0.1 s by default), which would steal
    cores from whichever library runs next.
    """
    names = list(runners)
    rounds = range(warmup + repeats)
    schedule = ([(i, n) for i in rounds for n in names] if interleave
                else [(i, n) for n in names for i in rounds])
    samples = {name: [] for name in names}
    previous = None
    for i, name in schedule:
        if settle and previous not in (None, name):
            time.sleep(settle)
        previous = name
        durations = runners[name]()
        if i >= warmup:
            samples[name].append(durations)
    return {name: tuple(statistics.median(col) for col in zip(*rows)) for name, rows in samples.items()}


# ---------------------------------------------------------------------------------------------
# The same network in PyTorch
# ---------------------------------------------------------------------------------------------
def torch_layer(torch, layer):
    """The PyTorch (NCHW) module that computes what the minicnn ``layer`` computes."""
    nn = torch.nn
    if isinstance(layer, Conv2D):
        pt, pb, pl, pr = layer.pads
        if pt != pb or pl != pr:
            raise NotImplementedError(f"{layer.describe()}: asymmetric padding has no nn.Conv2d twin")
        return nn.Conv2d(layer.input_shape[-1], layer.filters, layer.kernel_size, layer.strides, padding=(pt, pl))
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.alpha)
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, MaxPool2D):
        return nn.MaxPool2d(layer.pool_size, layer.strides)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.rate)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Dense):
        return nn.Linear(layer.input_shape[0], layer.units)
    raise NotImplementedError(f"no PyTorch twin for {type(layer).__name__}")


def torch_model(torch, model, device):
    """The same stack of layers in PyTorch, in train mode.

    Flatten sees NCHW rather than NHWC, so the dense layer's inputs are ordered differently:
    that changes which weight meets which pixel, not the amount of work.
    """
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch_layer(torch, l) for l in model.layers]).to(device).train()


def to_torch(torch, a, device, requires_grad=False):
    """A minicnn array as a PyTorch tensor, NHWC images turned to NCHW (contiguous)."""
    a = minicnn.get_backend().to_numpy(a)
    if a.ndim == 4:
        a = a.transpose(0, 3, 1, 2)
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return t.requires_grad_(requires_grad)


def torch_device(torch, backend):
    if backend.name == "cupy":
        if not torch.cuda.is_available():
            raise SystemExit("--backend cupy --compare torch needs a CUDA build of PyTorch; this one has no CUDA")
        return torch.device("cuda")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Per-layer timings
# ---------------------------------------------------------------------------------------------
def describe(layer) -> str:
    if isinstance(layer, Conv2D):
        return f"Conv2D {layer.filters} {layer.kernel_size[0]}x{layer.kernel_size[1]}"
    if isinstance(layer, MaxPool2D):
        return f"MaxPool2D {layer.pool_size[0]}x{layer.pool_size[1]}"
    if isinstance(layer, Dropout):
        return f"Dropout {layer.rate:g}"
    if isinstance(layer, Dense):
        return f"Dense {layer.units}"
    if isinstance(layer, LeakyReLU):
        return f"LeakyReLU {layer.alpha:g}"
    return type(layer).__name__


def random_batch(batch, seed, backend):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch)
    return backend.asarray(x), backend.asarray(y)


def layer_inputs(model, x):
    """Each layer's input during one training forward pass (realistic activations)."""
    inputs = []
    for layer in model.layers:
        inputs.append(x)
        x = layer.forward(x, training=True)
    for layer in model.layers:
        layer.cache = None
    return inputs


def minicnn_layer_rep(layer, x, dy):
    clock = Stopwatch(minicnn_sync)
    layer.forward(x, training=True)
    fwd = clock.lap()
    layer.backward(dy)
    return fwd, clock.lap()


def torch_layer_rep(module, x, dy, sync):
    for p in module.parameters():
        p.grad = None               # as optimizer.zero_grad(set_to_none=True) leaves them
    x.grad = None
    clock = Stopwatch(sync)
    y = module(x)
    fwd = clock.lap()
    y.backward(dy)
    return fwd, clock.lap()


def bench_layers(batch, args, backend, torch=None, device=None) -> dict:
    """Forward/backward of every layer of the documented model, then the loss and an Adam step.

    Per layer, all repeats of one library run in a block (after its warm-up), then the other's.
    """
    model = cifar10_cnn(seed=args.seed)
    x, labels = random_batch(batch, args.seed, backend)
    inputs = layer_inputs(model, x)
    rng = np.random.default_rng(args.seed + 1)
    tmodel = torch_model(torch, model, device) if torch is not None else None
    tsync = torch_sync_for(torch, device) if torch is not None else None

    def row(runners, **fields):
        med = alternate(runners, args.repeats, args.warmup, args.settle, interleave=False)
        times = {"minicnn_fwd_ms": med["minicnn"][0] * 1e3, "minicnn_bwd_ms": med["minicnn"][1] * 1e3}
        if "torch" in med:
            times.update(torch_fwd_ms=med["torch"][0] * 1e3, torch_bwd_ms=med["torch"][1] * 1e3)
        return {**fields, **times}

    rows = []
    for i, (layer, x_in) in enumerate(zip(model.layers, inputs)):
        out_shape = (batch,) + tuple(layer.output_shape)
        dy = backend.asarray(rng.standard_normal(out_shape, dtype=np.float32))
        runners = {"minicnn": lambda l=layer, a=x_in, d=dy: minicnn_layer_rep(l, a, d)}
        if tmodel is not None:
            # Layer 0 gets no input gradient, in training and here, in both libraries.
            tx = to_torch(torch, x_in, device, requires_grad=i > 0)
            tdy = to_torch(torch, dy, device)
            runners["torch"] = lambda m=tmodel[i], a=tx, d=tdy: torch_layer_rep(m, a, d, tsync)
        rows.append(row(runners, index=i, name=layer.name, layer=describe(layer),
                        output_shape=list(out_shape), input_grad=i > 0))

    # The two pieces of a training step that are not layers.
    logits = model.forward(x, training=True)
    model.backward(logits * logits.dtype.type(1e-3))     # any gradient: it fills grads for Adam
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model, lr=LR, eps=EPS)
    runners = {"minicnn": lambda: _minicnn_loss_rep(loss_fn, logits, labels)}
    if tmodel is not None:
        tlogits = to_torch(torch, logits, device, requires_grad=True)
        tlabels = to_torch(torch, labels, device)
        runners["torch"] = lambda: _torch_loss_rep(torch, tlogits, tlabels, tsync)
    rows.append(row(runners, index=None, name="loss", layer="softmax CE loss", output_shape=[], input_grad=True))

    runners = {"minicnn": lambda: _minicnn_adam_rep(opt)}
    if tmodel is not None:
        topt = torch.optim.Adam(tmodel.parameters(), lr=LR, eps=EPS)
        for p in tmodel.parameters():
            p.grad = torch.randn_like(p)
        runners["torch"] = lambda: _torch_adam_rep(topt, tsync)
    rows.append(row(runners, index=None, name="optimizer", layer="Adam step", output_shape=[], input_grad=True))
    return {"batch_size": batch, "rows": rows}


def _minicnn_loss_rep(loss_fn, logits, labels):
    clock = Stopwatch(minicnn_sync)
    loss_fn.forward(logits, labels)
    fwd = clock.lap()
    loss_fn.backward()
    return fwd, clock.lap()


def _torch_loss_rep(torch, logits, labels, sync):
    logits.grad = None
    clock = Stopwatch(sync)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    fwd = clock.lap()
    loss.backward()
    return fwd, clock.lap()


def _minicnn_adam_rep(opt):
    clock = Stopwatch(minicnn_sync)
    opt.step()
    return 0.0, clock.lap()


def _torch_adam_rep(opt, sync):
    clock = Stopwatch(sync)
    opt.step()
    return 0.0, clock.lap()


def print_layer_table(result, compare: bool):
    b = result["batch_size"]
    print(f"== Per layer, batch {b}: forward (training=True) and backward, median ms ==")
    head = f"{'#':>2}  {'layer':<16} {'output shape':<18} {'fwd':>8} {'bwd':>8}"
    if compare:
        head += f"  | {'torch fwd':>9} {'torch bwd':>9}  | {'fwd x':>6} {'bwd x':>6}"
    print(head)
    print("-" * len(head))
    totals = {k: 0.0 for k in ("minicnn_fwd_ms", "minicnn_bwd_ms", "torch_fwd_ms", "torch_bwd_ms")}

    def line(idx, name, shape, r, mark=""):
        text = f"{idx:>2}  {name:<16} {shape:<18} {r['minicnn_fwd_ms']:>8.2f} {r['minicnn_bwd_ms']:>7.2f}{mark or ' '}"
        if compare:
            text += (f"  | {r['torch_fwd_ms']:>9.2f} {r['torch_bwd_ms']:>8.2f}{mark or ' '}"
                     f"  | {_ratio(r['minicnn_fwd_ms'], r['torch_fwd_ms']):>6} "
                     f"{_ratio(r['minicnn_bwd_ms'], r['torch_bwd_ms']):>6}")
        print(text)

    layer_rows = [r for r in result["rows"] if r["index"] is not None]
    for r in layer_rows:
        line(r["index"], r["layer"], "(" + ", ".join(map(str, r["output_shape"])) + ")", r,
             "" if r["input_grad"] else "*")
        for k in totals:
            totals[k] += r.get(k, 0.0)
    print("-" * len(head))
    line("", "all layers", "", totals)
    for r in result["rows"]:
        if r["index"] is None:
            line("", r["layer"][:16], "", r)
    print("* layer 0: backward computes no input gradient (dx), in both libraries, as in training.")
    if compare:
        print("  fwd x / bwd x: time ratio minicnn / PyTorch (> 1: minicnn is slower).")
    print()


def _ratio(a, b) -> str:
    return f"{a / b:.1f}" if b > 0 else "-"


# ---------------------------------------------------------------------------------------------
# Whole-model throughput
# ---------------------------------------------------------------------------------------------
def minicnn_train_rep(model, loss_fn, opt, x, y):
    clock = Stopwatch(minicnn_sync)
    logits = model.forward(x, training=True)
    loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    opt.step()
    return (clock.lap(),)


def minicnn_infer_rep(model, x):
    clock = Stopwatch(minicnn_sync)
    model.forward(x, training=False)
    return (clock.lap(),)


def torch_train_rep(torch, model, opt, x, y, sync):
    clock = Stopwatch(sync)
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return (clock.lap(),)


def torch_infer_rep(torch, model, x, sync):
    clock = Stopwatch(sync)
    with torch.inference_mode():
        model(x)
    return (clock.lap(),)


def bench_model(batch, args, backend, torch=None, device=None) -> dict:
    """Training-step and inference throughput (images/s) of the whole model."""
    model = cifar10_cnn(seed=args.seed)
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model, lr=LR, eps=EPS)
    x, y = random_batch(batch, args.seed, backend)
    train = {"minicnn": lambda: minicnn_train_rep(model, loss_fn, opt, x, y)}
    infer = {"minicnn": lambda: minicnn_infer_rep(model, x)}
    if torch is not None:
        tsync = torch_sync_for(torch, device)
        tmodel = torch_model(torch, model, device)
        topt = torch.optim.Adam(tmodel.parameters(), lr=LR, eps=EPS)
        tx, ty = to_torch(torch, x, device), to_torch(torch, y, device)
        train["torch"] = lambda: torch_train_rep(torch, tmodel, topt, tx, ty, tsync)
        infer["torch"] = lambda: torch_infer_rep(torch, tmodel, tx, tsync)
    result = {"batch_size": batch}
    med = alternate(train, args.repeats, args.warmup, args.settle)
    result["train"] = {name: {"step_ms": m[0] * 1e3, "images_per_s": batch / m[0]} for name, m in med.items()}
    if torch is not None:
        tmodel.eval()
    med = alternate(infer, args.repeats, args.warmup, args.settle)
    result["inference"] = {name: {"step_ms": m[0] * 1e3, "images_per_s": batch / m[0]} for name, m in med.items()}
    return result


def print_model_table(results, compare: bool):
    print("== Whole model: images/second (median step time) ==")
    head = f"{'batch':>5}  {'mode':<10} {'minicnn':>20}"
    if compare:
        head += f"  {'PyTorch':>20}  {'minicnn/PyTorch':>15}"
    print(head)
    print("-" * len(head))
    for r in results:
        for mode, label in (("train", "train step"), ("inference", "inference")):
            m = r[mode]["minicnn"]
            text = f"{r['batch_size']:>5}  {label:<10} {m['images_per_s']:>9.0f} ({m['step_ms']:7.1f} ms)"
            if compare:
                t = r[mode]["torch"]
                text += (f"  {t['images_per_s']:>9.0f} ({t['step_ms']:7.1f} ms)"
                         f"  {m['images_per_s'] / t['images_per_s']:>15.2f}")
            print(text)
    print("train step = forward(training=True) + softmax cross-entropy forward/backward + backward + Adam step.")
    if compare:
        print("minicnn/PyTorch: throughput ratio (< 1: minicnn is slower).")
    print()


# ---------------------------------------------------------------------------------------------
# Peak memory (each library in a child process of its own)
# ---------------------------------------------------------------------------------------------
def _proc_status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux) in MiB, or None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mib() -> float | None:
    return _proc_status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's peak resident memory.

    Linux's ``ru_maxrss`` survives ``execve``: a child forked from a big parent starts with
    the parent's peak. ``VmHWM`` belongs to the process's own address space, so prefer it.
    """
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024      # bytes on macOS, KiB on Linux


def memory_child(args) -> dict:
    """Train for ``--memory-steps`` steps and report this process's peak memory (as one JSON line)."""
    batch, steps = args.batch_sizes[0], args.memory_steps
    out = {"library": args.memory_child, "batch_size": batch, "steps": steps, "backend": args.backend}
    if args.memory_child == "minicnn":
        backend = minicnn.set_backend(args.backend)
        x, y = random_batch(batch, args.seed, backend)
        out["rss_before_mib"] = current_rss_mib()
        model = cifar10_cnn(seed=args.seed)
        loss_fn, opt = SoftmaxCrossEntropy(), Adam(model, lr=LR, eps=EPS)
        pool = backend.xp.get_default_memory_pool() if backend.name == "cupy" else None
        used = 0
        for _ in range(steps):
            logits = model.forward(x, training=True)
            loss_fn.forward(logits, y)
            used = max(used, pool.used_bytes()) if pool else 0
            model.backward(loss_fn.backward())
            used = max(used, pool.used_bytes()) if pool else 0
            opt.step()
            used = max(used, pool.used_bytes()) if pool else 0
        minicnn_sync()
        if pool is not None:
            out["gpu_used_peak_mib"] = used / 2**20
            out["gpu_pool_total_mib"] = pool.total_bytes() / 2**20
    else:
        torch = import_torch()
        if torch is None:
            raise SystemExit(TORCH_MISSING)
        device = torch.device("cuda" if args.backend == "cupy" else "cpu")
        torch.manual_seed(args.seed)
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        out["rss_before_mib"] = current_rss_mib()
        spec = cifar10_cnn(seed=args.seed)          # only its layer shapes are used
        tmodel = torch_model(torch, spec, device)
        del spec
        opt = torch.optim.Adam(tmodel.parameters(), lr=LR, eps=EPS)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(tmodel(x), y).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            out["gpu_used_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            out["gpu_pool_total_mib"] = torch.cuda.max_memory_reserved() / 2**20
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def bench_memory(args, compare: bool) -> dict:
    """Run the memory child for minicnn (and PyTorch) and collect their reports."""
    libraries = ["minicnn"] + (["torch"] if compare else [])
    results = {}
    for lib in libraries:
        cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", lib, "--backend", args.backend,
               "--batch-size", str(args.memory_batch_size), "--memory-steps", str(args.memory_steps),
               "--seed", str(args.seed), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results[lib] = {"error": (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]}
            continue
        results[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"batch_size": args.memory_batch_size, "steps": args.memory_steps, "libraries": results}


def print_memory_table(mem, gpu: bool):
    print(f"== Peak memory of training: batch {mem['batch_size']}, {mem['steps']} steps, "
          f"each library in its own process ==")
    names = {"minicnn": "minicnn", "torch": "PyTorch"}
    if gpu:
        print(f"{'library':<8} {'GPU peak used':>14} {'GPU pool/reserved':>18} {'host peak RSS':>14}")
    else:
        print(f"{'library':<8} {'peak RSS':>10} {'before model':>13} {'training adds':>14}")
    for lib, r in mem["libraries"].items():
        if "error" in r:
            print(f"{names[lib]:<8} failed: {r['error']}")
        elif gpu:
            print(f"{names[lib]:<8} {r['gpu_used_peak_mib']:>10.1f} MiB {r['gpu_pool_total_mib']:>14.1f} MiB "
                  f"{r['peak_rss_mib']:>10.1f} MiB")
        else:
            before = r.get("rss_before_mib")
            adds = f"{r['peak_rss_mib'] - before:>10.1f} MiB" if before is not None else f"{'?':>14}"
            before = f"{before:>9.1f} MiB" if before is not None else f"{'?':>13}"
            print(f"{names[lib]:<8} {r['peak_rss_mib']:>6.1f} MiB {before} {adds}")
    if gpu:
        print("GPU peak used: minicnn = CuPy pool used_bytes, sampled after forward / backward / step;"
              " PyTorch = torch.cuda.max_memory_allocated.")
        print("GPU pool/reserved: CuPy pool total_bytes / torch.cuda.max_memory_reserved.")
    else:
        print("peak RSS: the child's VmHWM (else ru_maxrss); before model: RSS after imports and data;"
              " training adds: the difference.")
    print()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def setup_threads(args):
    """One thread count for both libraries: --threads, else what NumPy's BLAS uses, else all cores."""
    if args.threads is None:
        args.threads = blas_threads() or os.cpu_count() or 1
    elif not set_blas_threads(args.threads):
        print(f"note: cannot set NumPy's BLAS threads (install threadpoolctl); "
              f"set OPENBLAS_NUM_THREADS={args.threads} instead", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_threads(args)
    if args.memory_child:
        torch = import_torch() if args.memory_child == "torch" else None
        if torch is not None:
            torch.set_num_threads(args.threads)
        print(json.dumps(memory_child(args)))
        return 0

    backend = minicnn.set_backend(args.backend)
    torch = device = None
    if args.compare == "torch":
        torch = import_torch()
        if torch is None:
            print(f"note: --compare torch skipped: {TORCH_MISSING}\n")
        else:
            torch.set_num_threads(args.threads)
            device = torch_device(torch, backend)
    compare = torch is not None

    info = machine_info(args, backend, torch)
    print_header(info, args)
    report = {"machine": info, "config": {k: v for k, v in vars(args).items() if k != "memory_child"},
              "layers": [], "model": [], "memory": None}

    if args.layers:
        for batch in args.batch_sizes:
            result = bench_layers(batch, args, backend, torch, device)
            print_layer_table(result, compare)
            report["layers"].append(result)

    report["model"] = [bench_model(batch, args, backend, torch, device) for batch in args.batch_sizes]
    print_model_table(report["model"], compare)

    if args.memory:
        report["memory"] = bench_memory(args, compare)
        print_memory_table(report["memory"], gpu=backend.name == "cupy")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
