"""A tiny CIFAR-10 archive in the official layout, built inside the tests (no download, no ../shared)."""

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from minicnn.datasets.cifar10 import write_batch


def make_images(n, seed):
    """Images whose pixels are random but whose labels are learnable: class k brightens channel k % 3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 120, (n, 32, 32, 3)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, :, :, label % 3] += np.uint8(60 + 13 * label)
        x[i, (label * 3) % 32 : (label * 3) % 32 + 4] = 250  # a class-specific stripe
    return x, y


def make_cifar_folder(root, rows_per_batch=8, test_rows=10, seed=0):
    """Write ``root/cifar-10-batches-py`` with 5 train batches and a test batch; return the arrays."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = make_images(rows_per_batch, seed + i)
        write_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys.append(y)
    xt, yt = make_images(test_rows, seed + 100)
    write_batch(folder / "test_batch", xt, yt)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": rows_per_batch}, f, protocol=2)
    return (np.concatenate(xs), np.concatenate(ys)), (xt, yt)


def make_cifar_archive(path, **kwargs):
    """Write the tar.gz the official site serves; return (md5, arrays)."""
    path = Path(path)
    staging = path.parent / "staging"
    arrays = make_cifar_folder(staging, **kwargs)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return hashlib.md5(path.read_bytes()).hexdigest(), arrays


def tar_with(path, members):
    """A tar.gz holding the given TarInfo members (with data for regular files)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_cifar.py"


def script_args(data_dir, out, *extra, backend="numpy", **options):
    """A ``train_cifar.py`` command line: the backend, the data and output folders, then
    ``--key value`` for each of ``options`` (``val_split=40`` -> ``--val-split 40``), then ``extra``."""
    args = ["--backend", backend, "--data-dir", str(data_dir), "--out", str(out)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args + [str(a) for a in extra]


def run_train(args, **kw):
    """``python examples/train_cifar.py ARGS`` in a subprocess, output captured."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT)] + [str(a) for a in args], capture_output=True, text=True, timeout=300, **kw
    )
