"""Peak memory of a short training run, each library in a child process of its own.

``bench_memory`` re-invokes ``bench.py --_memory-child minicnn|torch``; the child calls
``memory_child`` and prints one JSON line. Also the RSS helpers and the memory table.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from harness import minicnn_sync
from torch_twin import TORCH_MISSING, import_torch, torch_model
from workload import EPS, LR, NUM_CLASSES, random_batch

import minicnn
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import cifar10_cnn
from minicnn.optim import Adam

BENCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.py")  # the child's entry point


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
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


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
        if backend.name == "numpy":  # the step fit runs: shards on --threads threads
            with minicnn.parallel.execution(model, opt, args.threads) as (sharded, sharded_opt):
                for _ in range(steps):
                    minicnn.training.train_step(sharded, loss_fn, sharded_opt, x, y)
        for _ in range(steps if pool is not None else 0):
            logits = model.forward(x, training=True)
            loss_fn.forward(logits, y)
            used = max(used, pool.used_bytes())
            model.backward(loss_fn.backward())
            used = max(used, pool.used_bytes())
            opt.step()
            used = max(used, pool.used_bytes())
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
        spec = cifar10_cnn(seed=args.seed)  # only its layer shapes are used
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
        cmd = [
            sys.executable,
            BENCH_SCRIPT,
            "--_memory-child",
            lib,
            "--backend",
            args.backend,
            "--batch-size",
            str(args.memory_batch_size),
            "--memory-steps",
            str(args.memory_steps),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results[lib] = {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]}
            continue
        results[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"batch_size": args.memory_batch_size, "steps": args.memory_steps, "libraries": results}


def print_memory_table(mem, gpu: bool):
    print(
        f"== Peak memory of training: batch {mem['batch_size']}, {mem['steps']} steps, "
        f"each library in its own process =="
    )
    names = {"minicnn": "minicnn", "torch": "PyTorch"}
    if gpu:
        print(f"{'library':<8} {'GPU peak used':>14} {'GPU pool/reserved':>18} {'host peak RSS':>14}")
    else:
        print(f"{'library':<8} {'peak RSS':>10} {'before model':>13} {'training adds':>14}")
    for lib, r in mem["libraries"].items():
        if "error" in r:
            print(f"{names[lib]:<8} failed: {r['error']}")
        elif gpu:
            print(
                f"{names[lib]:<8} {r['gpu_used_peak_mib']:>10.1f} MiB {r['gpu_pool_total_mib']:>14.1f} MiB "
                f"{r['peak_rss_mib']:>10.1f} MiB"
            )
        else:
            before = r.get("rss_before_mib")
            adds = f"{r['peak_rss_mib'] - before:>10.1f} MiB" if before is not None else f"{'?':>14}"
            before = f"{before:>9.1f} MiB" if before is not None else f"{'?':>13}"
            print(f"{names[lib]:<8} {r['peak_rss_mib']:>6.1f} MiB {before} {adds}")
    if gpu:
        print(
            "GPU peak used: minicnn = CuPy pool used_bytes, sampled after forward / backward / step;"
            " PyTorch = torch.cuda.max_memory_allocated."
        )
        print("GPU pool/reserved: CuPy pool total_bytes / torch.cuda.max_memory_reserved.")
    else:
        print(
            "peak RSS: the child's VmHWM (else ru_maxrss); before model: RSS after imports and data;"
            " training adds: the difference."
        )
    print()
