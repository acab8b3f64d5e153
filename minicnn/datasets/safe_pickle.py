"""CIFAR-10's pickled batches read without running code: an unpickler that can only rebuild NumPy arrays."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from .errors import DatasetError


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class _ArrayOnlyUnpickler(pickle._Unpickler):
    """Rebuilds only what a CIFAR batch holds: dicts, lists, strings, ints and NumPy arrays.

    ``find_class`` is the one door through which a pickle can reach code; it opens only
    to the four callables NumPy arrays are rebuilt from. Anything else is refused before
    it is imported, let alone called.

    It is pickle's pure-Python unpickler, as fast here (a batch is one big string): the C one
    grows its memo to the largest index a file names, so one damaged byte (``BINPUT`` turned
    ``LONG_BINPUT``) had it allocate and zero gigabytes; this one keeps the memo in a dict.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch only needs NumPy arrays")
        if name == "_reconstruct":
            return _reconstruct()
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def safe_unpickle(data: bytes):
    """Unpickle ``data`` (Python 2 or 3 pickles) allowing only NumPy arrays; DatasetError otherwise."""
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RecursionError:
        raise DatasetError("pickle nests too deeply") from None
    except EOFError:
        raise DatasetError("the pickle ends early: the file is truncated") from None
    except KeyError as exc:  # the pure-Python unpickler's word for a byte that is no opcode
        raise DatasetError(f"invalid pickle opcode {exc}") from None
    except Exception as exc:  # UnpicklingError, EOFError, struct/Type/Value errors from garbage
        raise DatasetError(f"{type(exc).__name__}: {exc}") from None


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> ``(x (N, 32, 32, 3) uint8, y (N,) int64)``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    try:
        batch = safe_unpickle(raw)
    except DatasetError as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype}{data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{path}: 'labels' must be a list of ints") from None
    if y.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {data.shape[0]} images but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9, got {y.min()}..{y.max()}")
    # Rows are CHW planes; NHWC is (N, 3, 32, 32) with the channel axis moved last.
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y


def write_batch(path, x, y, protocol=2):
    """Write images ``(N, 32, 32, 3)`` uint8 and labels as a batch in the official layout.

    Used by tests (and handy for making small CIFAR-format datasets).
    """
    data = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)).reshape(len(x), 3072)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"minicnn", b"labels": [int(v) for v in y], b"data": data}, f, protocol=protocol)
