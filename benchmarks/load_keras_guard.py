"""What reading HDF5 in a helper process (``minicnn.h5guard``) costs ``load_keras``.

Two ways, timed alternately in one process on the same files: ``in-process`` opens the file with
h5py in the caller (what ``load_keras`` did before the guard, and can hang on a damaged file),
``guarded`` reads it through the helper. Warm: the helper already runs (every load after the
first). First load: a fresh Python process per run that imports minicnn and loads one file, the
helper's start included, the two ways alternating.

    python benchmarks/load_keras_guard.py [--repeats 20] [--first-loads 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

import minicnn
from minicnn import interop
from minicnn.h5guard import read_hdf5

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "keras"


def in_process(source, skip=()):
    """The loaders' HDF5 read as it was: h5py in the caller's own process."""
    return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")


def load_with(reader, path):
    interop.read_hdf5 = reader
    try:
        start = time.perf_counter()
        interop.load_keras(path)
        return time.perf_counter() - start
    finally:
        interop.read_hdf5 = read_hdf5


FIRST_LOAD = (
    "import sys, time; start = time.perf_counter(); import io, h5py; from minicnn import interop\n"
    "if sys.argv[2] == 'in-process':\n"
    "    interop.read_hdf5 = lambda s, skip=(): h5py.File(io.BytesIO(s) if isinstance(s, bytes) else s, 'r')\n"
    "interop.load_keras(sys.argv[1]); print(time.perf_counter() - start)\n"
)


def first_load(path, way):
    out = subprocess.run([sys.executable, "-c", FIRST_LOAD, str(path), way], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--first-loads", type=int, default=5)
    args = parser.parse_args()
    big = Path(tempfile.mkdtemp()) / "cifar10_cnn.keras"
    interop.save_keras(minicnn.models.cifar10_cnn(seed=0), big)
    files = [FIXTURES / "stack_keras2.h5", FIXTURES / "stack_keras3.keras", big]
    print(f"{'file':<22} {'size':>9} {'in-process ms':>14} {'guarded ms':>11}  (median of {args.repeats}, warm)")
    load_with(read_hdf5, files[0])  # start the helper
    for path in files:
        times = {in_process: [], read_hdf5: []}
        for _ in range(args.repeats):
            for reader in times:
                times[reader].append(load_with(reader, path))
        old, new = (1000 * statistics.median(times[r]) for r in (in_process, read_hdf5))
        print(f"{path.name:<22} {path.stat().st_size:>9,} {old:>14.1f} {new:>11.1f}")
    runs = {"in-process": [], "guarded": []}
    for _ in range(args.first_loads):
        for way in runs:
            runs[way].append(first_load(files[0], way))
    old, new = (1000 * statistics.median(runs[w]) for w in runs)
    print(f"first load of {files[0].name} in a fresh process (import included, median of {args.first_loads}):")
    print(f"  in-process {old:.0f} ms, guarded {new:.0f} ms")


if __name__ == "__main__":
    main()
