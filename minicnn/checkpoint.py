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
from ._version import __version__
from .backend import get_backend, is_device_array, to_numpy

FORMAT = "minicnn-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


def write_checkpoint(path, arrays: dict) -> None:
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


def save(model, path, optimizer=None, extra=None) -> None:
    """Write ``model``'s weights (and ``optimizer``'s state, and ``extra``) to one ``.npz``, atomically
    (what :meth:`minicnn.Sequential.save` does)."""
    arrays = {f"layers/{key}": to_numpy(layer.params[name]) for key, layer, name in model.named_parameters()}
    extra_arrays, extra_values = split_extra(extra)
    arrays.update({f"extra/{k}": v for k, v in extra_arrays.items()})
    meta = {"format": FORMAT, "minicnn_version": __version__, "model": model.get_config(), "extra": extra_values}
    if optimizer is not None:
        state = optimizer.state_dict()
        meta["optimizer"] = {k: v for k, v in state.items() if "/" not in k}
        arrays.update({f"optimizer/{k}": v for k, v in state.items() if "/" in k})
    arrays["__meta__"] = np.array(json.dumps(meta))
    write_checkpoint(path, arrays)


def load_weights(model, path, optimizer=None, *, contents: tuple[dict, dict] | None = None) -> dict:
    """Load a checkpoint into ``model`` (and ``optimizer``) after checking all of it; returns ``extra``
    (what :meth:`minicnn.Sequential.load_weights` does). ``contents``: ``(meta, arrays)`` already
    read by :func:`read_checkpoint`, so the file is not read twice."""
    meta, arrays = read_checkpoint(path) if contents is None else contents
    layers_meta = meta.get("model", {}).get("layers", [])
    if len(layers_meta) != len(model.layers):
        raise CheckpointError(f"{path}: checkpoint has {len(layers_meta)} layers, the model has {len(model.layers)}")
    for i, (spec, layer) in enumerate(zip(layers_meta, model.layers)):
        if spec.get("class") != type(layer).__name__:
            raise CheckpointError(
                f"{path}: layer {i} is {spec.get('class')} in the checkpoint, {type(layer).__name__} in the model"
            )
    expected = {f"layers/{key}": layer.params[name] for key, layer, name in model.named_parameters()}
    for key, param in expected.items():
        if key not in arrays:
            raise CheckpointError(f"{path}: missing {key} (the model has it, {param.dtype}{tuple(param.shape)})")
        got = arrays[key]
        if tuple(got.shape) != tuple(param.shape) or got.dtype != param.dtype:
            raise CheckpointError(
                f"{path}: {key} is {got.dtype}{tuple(got.shape)} in the checkpoint, "
                f"{param.dtype}{tuple(param.shape)} in the model"
            )
    for key in arrays:
        if key.startswith("layers/") and key not in expected:
            raise CheckpointError(f"{path}: checkpoint has {key}, which the model lacks")
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path}: no optimizer state in this checkpoint")
        state = dict(meta["optimizer"])
        state.update({k[len("optimizer/") :]: v for k, v in arrays.items() if k.startswith("optimizer/")})
        try:
            optimizer.check_state_dict(state)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    # All checks passed: only now touch the model.
    backend = get_backend()
    for key, param in expected.items():
        param[...] = backend.asarray(arrays[key])
    if optimizer is not None:
        optimizer.load_state_dict(state)
    extra = dict(meta.get("extra", {}))
    extra.update({k[len("extra/") :]: v for k, v in arrays.items() if k.startswith("extra/")})
    return extra
