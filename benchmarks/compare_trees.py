"""``fit`` and ``predict`` of two versions of minicnn, alternating in one process: a change's own ratio.

    git archive 3056ff5 minicnn | tar -x -C /tmp/before && mv /tmp/before/minicnn /tmp/before/minicnn_before
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare_trees.py --before /tmp/before

The older tree is imported under another name (``minicnn_before``: the training path imports itself
relatively), so both run on the same machine state, round after round (before, after; then after,
before), which a shared VM's drift cannot bias. Each round is one epoch of ``fit`` (or one ``predict``)
over ``--images`` random images at batch 128 on ``--threads`` threads; the median images per second of
each and the median of the per-round ratios are printed, with the BLAS kernel threadpoolctl reports.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="folder holding the older tree as a package minicnn_before")
    p.add_argument("--mode", choices=("fit", "predict", "both"), default="both")
    p.add_argument("--rounds", type=int, default=11, help="alternating rounds after one warm-up (default: 11)")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", choices=("cifar10_cnn", "resnet_cifar"), default="cifar10_cnn", help="in both trees")
    args = p.parse_args(argv)
    sys.path.insert(0, args.before)
    from threadpoolctl import threadpool_info

    import minicnn

    libs = {"before": importlib.import_module("minicnn_before"), "after": minicnn}
    for lib in libs.values():
        importlib.import_module(lib.__name__ + ".models")
        importlib.import_module(lib.__name__ + ".optim")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, args.images)
    models = {k: getattr(lib.models, args.model)(seed=0) for k, lib in libs.items()}
    opts = {k: libs[k].optim.Adam(m, lr=1e-3, eps=1e-7) for k, m in models.items()}
    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()]
    print(f"CPU: {minicnn.backend.cpu_model()}; BLAS: {', '.join(blas)}; {args.threads} threads; {args.model}")
    print(f"before: {libs['before'].__file__}\nafter:  {minicnn.__file__}")

    def run(which: str, mode: str) -> float:
        start = time.perf_counter()
        if mode == "predict":
            models[which].predict(x, batch_size=128, threads=args.threads)
        else:
            models[which].fit(
                x, y, optimizer=opts[which], epochs=1, batch_size=128, verbose=0, seed=0, threads=args.threads
            )
        return args.images / (time.perf_counter() - start)

    for mode in ("fit", "predict") if args.mode == "both" else (args.mode,):
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds + 1):
            for which in ("before", "after") if r % 2 == 0 else ("after", "before"):
                rate = run(which, mode)
                if r:  # round 0 warms both up
                    rates[which].append(rate)
        ratios = [a / b for a, b in zip(rates["after"], rates["before"])]
        print(
            f"{mode:>7}: before {statistics.median(rates['before']):6.0f} img/s, "
            f"after {statistics.median(rates['after']):6.0f} img/s; "
            f"after/before median {statistics.median(ratios):.3f} "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
