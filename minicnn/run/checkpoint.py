"""Checkpoints: one ``.npz`` file of plain arrays, written atomically, loaded only if it fits.

Layout (every entry a plain array; nothing pickled, so loading never runs code)::

    __meta__                   0-d string: JSON with the format, minicnn version, the model's
                               layer configs, optimizer scalars and JSON-able ``extra`` values
    layers/00_Conv2D/W         parameters, keyed by position and class
    layers/01_BatchNormalization/moving_mean    a layer's non-trainable ``state``, after its parameters
    optimizer/m/00_Conv2D/W    optimizer slots (momenta), when an optimizer is saved
    extra/<name>               array values of ``extra`` (e.g. normalisation statistics)
"""

from __future__ import annotations

import ast
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from .._version import __version__
from ..backend import get_backend, is_device_array, to_numpy
from . import outputs

FORMAT = "minicnn-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


def write_checkpoint(path, arrays: dict) -> None:
    """Write ``arrays`` as an uncompressed npz so that ``path`` is always whole.

    The data goes to a temporary file in the same folder, is flushed to disk, and only
    then renamed over ``path``: a rename within one filesystem is atomic, so a crash at
    any moment leaves either the old file or the new one, never half of one. A full disk
    or an unwritable folder raises :class:`minicnn.run.outputs.OutputError` naming ``path``,
    with the old file intact and no temporary left (:func:`minicnn.run.outputs.write_atomic`).
    """
    outputs.write_atomic(path, lambda f: np.savez(f, **arrays))


MAX_EXPANSION = 16  # the arrays may declare at most this many times the file's bytes, plus 64 MiB
MAX_MEMBERS = 100_000
_NPY_MAGIC = b"\x93NUMPY"
_NPY_DESCR = re.compile(r"[<>|=]?(?:[fiu][1248]|b1|U[0-9]{1,9})")  # numbers and text: never objects or records
_PREFIXES = ("layers/", "optimizer/", "extra/")


def _npy_header(f, name: str) -> tuple[int, int]:
    """Parse one ``.npy`` member's header in Python: ``(header bytes, data bytes it declares)``."""
    head = f.read(8)
    if len(head) < 8 or not head.startswith(_NPY_MAGIC) or head[6] not in (1, 2, 3):
        raise CheckpointError(f"member {name!r} is not a .npy array")
    width = 2 if head[6] == 1 else 4
    length = int.from_bytes(f.read(width), "little")
    if length > 65536:
        raise CheckpointError(f"member {name!r} has a .npy header of {length} bytes")
    text = f.read(length)
    try:
        header = ast.literal_eval(text.decode("latin1" if head[6] < 3 else "utf8"))
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise CheckpointError(f"member {name!r} has a malformed .npy header")
    descr, shape = header["descr"], header["shape"]
    if not isinstance(descr, str) or not _NPY_DESCR.fullmatch(descr):
        raise CheckpointError(f"member {name!r} has dtype {str(descr)[:60]}: only numbers and text are read")
    if not (isinstance(shape, tuple) and len(shape) <= 8 and all(type(d) is int and d >= 0 for d in shape)):
        raise CheckpointError(f"member {name!r} has shape {str(shape)[:60]}, not a tuple of sizes")
    if not isinstance(header["fortran_order"], bool):
        raise CheckpointError(f"member {name!r} has a malformed .npy header (fortran_order)")
    kind_size = int(descr.lstrip("<>|=")[1:])
    itemsize = 4 * kind_size if "U" in descr else kind_size
    return 8 + width + length, math.prod(shape) * itemsize


def check_npz(path: Path, prefixes: tuple[str, ...] = _PREFIXES) -> None:
    """Check a checkpoint's zip and every array's header in Python before NumPy reads anything:
    only ``.npy`` members (``__meta__`` or names under ``prefixes``), numbers or text (never objects
    or records), and sizes that add up to what each member holds and, together, to what the file can
    hold (no decompression bomb). Other ``.npz`` files of minicnn's pass their own ``prefixes``."""
    budget = MAX_EXPANSION * path.stat().st_size + 64 * 2**20
    declared = 0
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{len(infos)} members, more than {MAX_MEMBERS}")
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or (name != "__meta__.npy" and not name.startswith(prefixes)):
                raise CheckpointError(f"unexpected member {name!r}")
            declared += info.file_size
            if declared > budget:
                raise CheckpointError(f"its members declare more than {budget} bytes (at {name!r})")
            with z.open(info) as f:
                header, data = _npy_header(f, name)
            if header + data != info.file_size:
                raise CheckpointError(f"member {name!r} declares {data} bytes of data in {info.file_size} bytes")


def _short(value) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_meta(meta, path) -> None:
    """Type-check every field of a checkpoint's ``__meta__``, naming the first wrong one."""

    def need(ok: bool, field: str, want: str, got) -> None:
        if not ok:
            raise CheckpointError(f"{path}: __meta__ field {field} must be {want}, got {_short(got)}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    version = meta.get("minicnn_version")
    need(version is None or isinstance(version, str), "minicnn_version", "a string", version)  # (absent: 0.1)
    model = meta.get("model")
    need(isinstance(model, dict), "model", "an object", model)
    shape = model.get("input_shape")
    need(
        isinstance(shape, list) and 1 <= len(shape) <= 4 and all(is_int(d) and d > 0 for d in shape),
        "model.input_shape",
        "a list of 1 to 4 positive ints",
        shape,
    )
    need(model.get("dtype") in ("float32", "float64"), "model.dtype", '"float32" or "float64"', model.get("dtype"))
    layers = model.get("layers")
    need(isinstance(layers, list) and len(layers) > 0, "model.layers", "a non-empty list", layers)
    for i, spec in enumerate(layers):
        field = f"model.layers[{i}]"
        need(isinstance(spec, dict) and set(spec) == {"class", "config"}, field, 'an object {"class", "config"}', spec)
        need(isinstance(spec["class"], str), f"{field}.class", "a string", spec["class"])
        config = spec["config"]
        need(isinstance(config, dict), f"{field}.config", "an object", config)
        need(config.get("name") is None or isinstance(config["name"], str), f"{field}.config.name", "a string", config)
    need(isinstance(meta.get("extra", {}), dict), "extra", "an object", meta.get("extra"))
    optimizer = meta.get("optimizer", {})
    need(isinstance(optimizer, dict), "optimizer", "an object", optimizer)
    for key, value in optimizer.items():
        scalar = value is None or isinstance(value, (str, int, float, bool))
        need(scalar, f"optimizer.{key}", "a number, a string, true/false or null", value)
    if optimizer:  # what every optimizer has; its own settings are its check_state_dict's
        lr, iterations = optimizer.get("lr"), optimizer.get("iterations")
        need(isinstance(optimizer.get("class"), str), "optimizer.class", "a string", optimizer.get("class"))
        positive = isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0
        need(positive, "optimizer.lr", "a positive number", lr)
        need(is_int(iterations) and iterations >= 0, "optimizer.iterations", "an int >= 0", iterations)


def read_checkpoint(path) -> tuple[dict, dict]:
    """Read a checkpoint fully into memory: ``(meta, arrays)``; raise CheckpointError if it is not one.

    The zip and every array header are checked in Python first (:func:`check_npz`), then
    everything is read (and every member's CRC checked) before anyone uses it, so a truncated,
    corrupt or crafted file is refused as a whole; ``__meta__`` is type-checked (:func:`check_meta`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        check_npz(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: not a minicnn checkpoint ({exc})") from None
    except Exception as exc:  # zip, npy-header and decompression errors all mean "corrupt"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    raw = arrays.pop("__meta__", None)
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        raise CheckpointError(f"{path}: not a minicnn checkpoint (no __meta__ entry)")
    try:
        meta = json.loads(str(raw))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: corrupt __meta__ ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {_short(meta.get('format') if isinstance(meta, dict) else meta)}, "
            f"expected {FORMAT!r}"
        )
    check_meta(meta, path)
    return meta, arrays


def stored_arrays(model) -> list[tuple[str, dict, str]]:
    """``[(key, table, name)]``, ``table[name]`` being the array: each layer's parameters, then its
    ``state`` (BatchNormalization's moving statistics, which no optimizer sees), keyed by position
    and class as :meth:`~minicnn.Sequential.named_parameters` (``"01_BatchNormalization/moving_mean"``).
    What checkpoints and ``get_weights`` hold, in Keras's ``get_weights`` order."""
    return [
        (f"{i:02d}_{type(layer).__name__}/{name}", table, name)
        for i, layer in enumerate(model.layers)
        for table in (layer.params, getattr(layer, "state", {}))
        for name in table
    ]


def check_parameters(model, arrays: dict, path) -> dict:
    """Raise CheckpointError unless ``arrays`` holds exactly ``model``'s parameters (and state), each with its
    shape and dtype; return ``{key: the model's array}``. ``model`` may be a plan built under
    :func:`minicnn.layers.base.shapes_only` (nothing allocated yet)."""
    expected = {f"layers/{key}": table[name] for key, table, name in stored_arrays(model)}
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
    return expected


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
    arrays = {f"layers/{key}": to_numpy(table[name]) for key, table, name in stored_arrays(model)}
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
    layers_meta = meta["model"]["layers"]
    if len(layers_meta) != len(model.layers):
        raise CheckpointError(f"{path}: checkpoint has {len(layers_meta)} layers, the model has {len(model.layers)}")
    for i, (spec, layer) in enumerate(zip(layers_meta, model.layers)):
        if spec["class"] != type(layer).__name__:
            raise CheckpointError(
                f"{path}: layer {i} is {spec['class']} in the checkpoint, {type(layer).__name__} in the model"
            )
    expected = check_parameters(model, arrays, path)
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
    extra = dict(meta.get("extra", {}))  # a dict: check_meta saw to it
    extra.update({k[len("extra/") :]: v for k, v in arrays.items() if k.startswith("extra/")})
    return extra
