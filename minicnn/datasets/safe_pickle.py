"""CIFAR-10's pickled batches read without running code, and without letting the file steer NumPy.

A batch is a pickled dict ``{"data": uint8 array (N, 3072), "labels": [N ints], ...}``. Pickle
rebuilds an array by calling NumPy's C code with state tuples taken from the file
(``ndarray.__setstate__``, ``dtype.__setstate__``), and NumPy trusts them: a crafted state can
crash the interpreter or read memory it should not. So nothing from the file reaches NumPy here:

1. The unpickler hands out *inert stand-ins* for the three callables an array needs. Each only
   records the plain values the file gives it (a second state for the same object is refused).
2. Python checks what was recorded: the shape (an int pair ``N x 3072``), the dtype (``uint8``
   with its standard state: no fields, no object flag), the byte count, the labels (ints in 0..9).
3. Only then is the array made, by :func:`numpy.frombuffer` on the raw bytes with a dtype
   written here, never the file's.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError

ROW = 3 * 32 * 32  # one image's bytes: the red, green and blue planes


class _Recorded:
    """What the file said an object is: the call's arguments, then (once) its state."""

    kind = "object"
    args: tuple[Any, ...] = ()  # (also what NEWOBJ leaves, which skips __init__)
    state = None
    built = False

    def __init__(self, *args):
        self.args, self.state, self.built = args, None, False

    def __setstate__(self, state):  # pickle's BUILD opcode
        if self.built:
            raise pickle.UnpicklingError(f"a second state for one {self.kind}: refused")
        self.state, self.built = state, True


class _DtypeRecord(_Recorded):
    kind = "dtype"


class _ArrayRecord(_Recorded):
    kind = "array"


_NDARRAY = object()  # what ``numpy.ndarray`` stands for: only ever the first argument of _reconstruct


def _encode(text, encoding):
    """``_codecs.encode``: how Python 3 pickles bytes at protocol 2 (``latin1`` only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode of {type(text).__name__} with {encoding!r}: refused")
    return text.encode("latin1")


class _RecordingUnpickler(pickle._Unpickler):
    """Rebuilds dicts, lists, strings and ints; arrays and dtypes only as inert records.

    ``find_class`` is the one door through which a pickle reaches code: it opens to four names
    only, and each leads to a class of this module that records its arguments (``NEWOBJ``, which
    calls ``cls.__new__`` without ``__init__``, leaves a record with no arguments: refused later).

    It is pickle's pure-Python unpickler, as fast here (a batch is one big string): the C one
    grows its memo to the largest index a file names, so one damaged byte (``BINPUT`` turned
    ``LONG_BINPUT``) had it allocate and zero gigabytes; this one keeps the memo in a dict.
    """

    NAMES = {
        ("numpy.core.multiarray", "_reconstruct"): _ArrayRecord,
        ("numpy._core.multiarray", "_reconstruct"): _ArrayRecord,
        ("numpy", "dtype"): _DtypeRecord,
        ("_codecs", "encode"): _encode,
    }

    def find_class(self, module, name):
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) not in self.NAMES:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch only needs NumPy arrays")
        return self.NAMES[module, name]


def safe_unpickle(data: bytes):
    """Unpickle ``data`` (Python 2 or 3 pickles) into plain values, arrays as inert records
    (:func:`array_from_record` checks one and makes the array); DatasetError for anything else."""
    try:
        return _RecordingUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RecursionError:
        raise DatasetError("pickle nests too deeply") from None
    except EOFError:
        raise DatasetError("the pickle ends early: the file is truncated") from None
    except KeyError as exc:  # the pure-Python unpickler's word for a byte that is no opcode
        raise DatasetError(f"invalid pickle opcode {exc}") from None
    except Exception as exc:  # UnpicklingError, struct/Type/Value errors from garbage
        raise DatasetError(f"{type(exc).__name__}: {exc}") from None


def _text(value):
    return value.decode("latin1") if isinstance(value, bytes) else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_uint8(dtype) -> None:
    """The dtype record must be ``numpy.dtype("u1", False, True)`` with uint8's standard state:
    ``(version, "|", None, None, None, -1 or 1, -1 or 1, 0[, metadata None])``."""
    if not isinstance(dtype, _DtypeRecord):
        raise DatasetError(f"'data' has dtype {type(dtype).__name__}, expected uint8")
    args = tuple(_text(a) for a in dtype.args)  # (a record's args: a tuple, whatever the file did)
    if len(args) != 3 or args[0] not in ("u1", "|u1", "uint8") or args[1] not in (0, False) or args[2] not in (1, True):
        raise DatasetError(f"'data' has dtype {args!r}, expected uint8 ('u1')")
    state = dtype.state
    if dtype.built and state is not None:
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            count = len(state) if isinstance(state, tuple) else type(state).__name__
            raise DatasetError(f"'data' has a dtype state of {count} items, expected 8 or 9")
        version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
        metadata = state[8] if len(state) == 9 else None
        if not (
            version in (3, 4)
            and _text(order) == "|"
            and subarray is None
            and names is None
            and fields is None
            and elsize in (-1, 1)
            and alignment in (-1, 1)
            and flags == 0
            and metadata is None
        ):
            raise DatasetError(f"'data' has a non-standard uint8 dtype state {str(state)[:200]}")


def array_from_record(record) -> np.ndarray:
    """The ``(N, 3072)`` uint8 array a batch's ``data`` record describes, once every value is checked."""
    if not isinstance(record, _ArrayRecord):
        raise DatasetError(f"'data' must be a uint8 array of shape (N, 3072), got {type(record).__name__}")
    args: tuple = record.args
    if len(args) != 3 or args[0] is not _NDARRAY or args[1] != (0,) or _text(args[2]) != "b":
        raise DatasetError("'data' is not a plain ndarray (_reconstruct(numpy.ndarray, (0,), b'b'))")
    state = record.state
    if not isinstance(state, tuple) or len(state) != 5:
        raise DatasetError("'data' has no array state (expected version, shape, dtype, order, bytes)")
    version, shape, dtype, fortran, raw = state
    if version != 1 or fortran not in (0, 1, False, True):
        raise DatasetError(f"'data' has an unknown array state (version {version!r}, order flag {fortran!r})")
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(_is_int(d) and d >= 0 for d in shape)):
        raise DatasetError(f"'data' must be a uint8 array of shape (N, 3072), got shape {str(shape)[:100]}")
    if shape[1] != ROW:
        raise DatasetError(f"'data' must be a uint8 array of shape (N, 3072), got uint8{shape}")
    _check_uint8(dtype)
    if isinstance(raw, str):  # a Python 2 str read without encoding="bytes"
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes):
        raise DatasetError(f"'data' holds {type(raw).__name__}, expected its raw bytes")
    if len(raw) != shape[0] * ROW:
        raise DatasetError(f"'data' says {shape[0]} x {ROW} bytes but holds {len(raw)}")
    flat = np.frombuffer(raw, dtype=np.uint8)
    return flat.reshape(shape, order="F" if fortran else "C")


def labels_from_list(labels, n: int) -> np.ndarray:
    """``labels``: a list of ``n`` Python ints in 0..9 -> int64 ``(n,)``."""
    if not isinstance(labels, list):
        raise DatasetError(f"'labels' must be a list of ints, got {type(labels).__name__}")
    if len(labels) != n:
        raise DatasetError(f"{n} images but {len(labels)} labels")
    kinds = set(map(type, labels))  # exactly int: not bool, not a float that NumPy would truncate
    if not kinds <= {int}:
        raise DatasetError(f"labels must be ints in 0..9, got {sorted(k.__name__ for k in kinds - {int})}")
    if labels and (min(labels) < 0 or max(labels) > 9):
        raise DatasetError(f"labels must be ints in 0..9, got {min(labels)}..{max(labels)}")
    return np.array(labels, dtype=np.int64)


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
    if not isinstance(batch, dict) or not all(isinstance(k, (str, bytes)) for k in batch):
        raise DatasetError(f"{path}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {_text(k): v for k, v in batch.items()}
    try:
        data = array_from_record(batch.get("data"))
        y = labels_from_list(batch.get("labels"), data.shape[0])
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
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
