"""Measuring machinery of the benchmark: what the machine is, and how time is read.

* Machine: CPU model, NumPy's BLAS (description, thread count get/set, ``setup_threads``),
  ``machine_info`` and the printed header.
* Timing: ``Stopwatch`` (device-synchronised laps), the sync helpers for minicnn and PyTorch,
  and ``alternate``, which times several runners in turn and returns medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import minicnn
from minicnn.backend import cupy_module
from minicnn.profile.timing import matmul_peak


# ---------------------------------------------------------------------------------------------
# Machine description and thread control
# ---------------------------------------------------------------------------------------------
def blas_threads() -> int | None:
    """How many threads NumPy's BLAS uses (threadpoolctl), or None when it reports no BLAS."""
    import threadpoolctl

    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            return int(info["num_threads"])
    return None


_THREAD_LIMITER = None  # keeps threadpoolctl's limiter alive


def set_blas_threads(n: int) -> bool:
    """Make NumPy's BLAS use ``n`` threads (threadpoolctl, a required dependency of minicnn)."""
    global _THREAD_LIMITER
    import threadpoolctl

    _THREAD_LIMITER = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    return True


def blas_description() -> str:
    """NumPy's BLAS: name, version and the CPU kernel it picked (threadpoolctl)."""
    import threadpoolctl

    libs = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "unknown (threadpoolctl found no BLAS)"
    i = libs[0]
    return f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, via threadpoolctl)"


def machine_info(args, backend, torch) -> dict:
    info = {
        "cpu": minicnn.backend.cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "blas": blas_description(),
        "blas_threads": blas_threads(),
        "backend": backend.name,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "gpu": None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gemm_peak_gflops": matmul_peak(),  # float32 2048^3, best of 10, at the BLAS threads set
        **backend.versions(),  # minicnn, numpy, python (and cupy, gpu)
    }
    if backend.name == "cupy":
        info["cuda_runtime"] = cupy_module().cuda.runtime.runtimeGetVersion()
    if torch is not None and backend.name == "cupy":
        info["torch_cuda"] = torch.version.cuda
    return info


def print_header(info, args):
    print("minicnn benchmark")
    print(f"  machine : {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['platform']}")
    print(f"  python  : {info['python']}, numpy {info['numpy']}, minicnn {info['minicnn']}")
    print(f"  BLAS    : {info['blas']}, {info['blas_threads'] or '?'} threads")
    print(f"  GEMM    : {info['gemm_peak_gflops']:.0f} GFLOP/s float32 peak here (2048x2048 product, best of 10)")
    if info["torch"] is not None:
        print(
            f"  torch   : {info['torch']}, {info['torch_threads']} threads"
            + (f", CUDA {info.get('torch_cuda')}" if info.get("torch_cuda") else "")
        )
    else:
        print("  torch   : not installed")
    if info["gpu"]:
        print(f"  GPU     : {info['gpu']} (CuPy {info['cupy']}, CUDA runtime {info['cuda_runtime']})")
    print(
        f"  backend : {info['backend']}; batch sizes {args.batch_sizes}; "
        f"median of {args.repeats} repeats after {args.warmup} warm-up"
    )
    if "torch" in args.compare and info["torch"] is not None:
        print(
            f"  compare : PyTorch timed alternately with minicnn (per layer: in blocks), "
            f"{args.settle:g} s pause at each switch"
        )
    load = info["load_average_1min"]
    if load is not None:
        busy = load > 0.5
        print(
            f"  load    : {load:.2f} (1-min average)"
            + ("  WARNING: the machine is busy, timings will be slow and noisy" if busy else "")
        )
    print()


def setup_threads(args):
    """One thread count for both libraries: --threads, else what NumPy's BLAS uses, else all cores."""
    if args.threads is None:
        args.threads = blas_threads() or os.cpu_count() or 1
    elif not set_blas_threads(args.threads):
        print(
            f"note: cannot set NumPy's BLAS threads (install threadpoolctl); "
            f"set OPENBLAS_NUM_THREADS={args.threads} instead",
            file=sys.stderr,
        )


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
    schedule = [(i, n) for i in rounds for n in names] if interleave else [(i, n) for n in names for i in rounds]
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
