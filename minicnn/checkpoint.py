"""Checkpoints: one ``.npz`` file of plain arrays, written atomically, loaded only if it fits.

Layout (every entry a plain array; nothing pickled, so loading never runs code)::

    __meta__                   0-d string: JSON with the format, minicnn version, the model's
                               layer configs, optimizer scalars and JSON-able ``extra`` values
    layers/00_Conv2D/W         parameters, keyed by position and class
    optimizer/m/00_Conv2D/W    optimizer slots (momenta), when an optimizer is saved
    extra/<name>               array values of ``extra`` (e.g. normalisation statistics)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import outputs
from .backend import is_device_array, to_numpy

FORMAT = "minicnn-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


def write_atomic(path, arrays: dict):
    """Write ``arrays`` as an uncompressed npz so that ``path`` is always whole.

    The data goes to a temporary file in the same folder, is flushed to disk, and only
    then renamed over ``path``: a rename within one filesystem is atomic, so a crash at
    any moment leaves either the old file or the new one, never half of one. A full disk
    or an unwritable folder raises :class:`minicnn.outputs.OutputError` naming ``path``,
    with the old file intact and no temporary left (:func:`minicnn.outputs.write_atomic`).
    """
    outputs.write_atomic(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path) -> tuple[dict, dict]:
    """Read a checkpoint fully into memory: ``(meta, arrays)``; raise CheckpointError if it is not one.

    Everything is read (and every zip member's CRC checked) before anyone uses it, so a
    truncated or corrupt file is refused as a whole.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except Exception as exc:  # zip, npy-header and decompression errors all mean "corrupt"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    raw = arrays.pop("__meta__", None)
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        raise CheckpointError(f"{path}: not a minicnn checkpoint (no __meta__ entry)")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt __meta__ ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {meta.get('format') if isinstance(meta, dict) else meta!r}, "
            f"expected {FORMAT!r}"
        )
    return meta, arrays


def to_json_able(value):
    """Numbers, strings, lists and dicts as JSON takes them (NumPy scalars converted)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic) else o.tolist()))


def split_extra(extra: dict | None) -> tuple[dict, dict]:
    """Split ``extra`` into arrays (stored as npz entries) and JSON-able values."""
    arrays, values = {}, {}
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or "/" in k:
            raise ValueError(f"extra keys must be strings without '/', got {k!r}")
        if isinstance(v, np.ndarray) or is_device_array(v):
            arrays[k] = to_numpy(v)
        else:
            try:
                values[k] = to_json_able(v)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"extra[{k!r}] must be an array or JSON-able, got {type(v).__name__}") from exc
    return arrays, values
