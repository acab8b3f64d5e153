"""Time reading CIFAR batches: this checkout's ``read_batch`` against the one of a git revision, alternating.

    python benchmarks/load_batches.py 'DIR/cifar-10-batches-py/*_batch*' --against HEAD~1 --rounds 7

Both loaders read the same files in the same process, round after round (old, new, old, new, ...),
and must give the same arrays; the minimum and median seconds of each are printed. The other revision's
``minicnn/datasets/safe_pickle.py`` is taken from git and imported as a stand-alone module.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minicnn.datasets import safe_pickle

ROOT = Path(__file__).resolve().parents[1]


def module_at(revision: str):
    """``minicnn/datasets/safe_pickle.py`` as it was at ``revision``, imported under another name."""
    show = ["git", "show", f"{revision}:minicnn/datasets/safe_pickle.py"]
    text = subprocess.run(show, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    text = text.replace("from .errors import", "from minicnn.datasets.errors import")
    path = Path(tempfile.mkdtemp()) / "safe_pickle_then.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("safe_pickle_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pattern", help="a glob of batch files, e.g. 'DIR/cifar-10-batches-py/*_batch*'")
    p.add_argument("--against", default="HEAD", help="the git revision to compare with (default: HEAD)")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    files = sorted(glob.glob(args.pattern))
    if not files:
        p.error(f"no file matches {args.pattern}")
    then = module_at(args.against)
    for f in files:  # the same arrays, or the comparison means nothing
        (a, y), (b, z) = then.read_batch(f), safe_pickle.read_batch(f)
        assert np.array_equal(a, b) and np.array_equal(y, z) and a.dtype == b.dtype and y.dtype == z.dtype, f
    images = sum(len(safe_pickle.read_batch(f)[1]) for f in files)
    seconds: dict[str, list[float]] = {args.against: [], "this checkout": []}
    for _ in range(args.rounds):
        for name, module in ((args.against, then), ("this checkout", safe_pickle)):
            start = time.perf_counter()
            for f in files:
                module.read_batch(f)
            seconds[name].append(time.perf_counter() - start)
    print(f"{len(files)} files, {images:,} images, {args.rounds} alternating rounds (Python {sys.version.split()[0]})")
    for name, values in seconds.items():
        print(f"  {name:>14}: min {min(values):.3f} s, median {statistics.median(values):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
