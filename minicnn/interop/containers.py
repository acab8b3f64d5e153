"""The two Keras containers opened: a ``.keras`` zip and a legacy ``.h5``, to (config, arrays).

Only JSON is parsed and arrays read: nothing is unpickled, no code from the file runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib

import numpy as np

from .format import KerasFormatError
from .h5guard import HDF5ReadError, read_hdf5

MAX_CONFIG_BYTES = 16 * 2**20  # a model's JSON: a few KB for a CNN


def _read_zip(path, h5py):
    """``.keras`` -> (config dict, {"layers/<slot>": [arrays in vars order]})."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise KerasFormatError("the zip holds no config.json (is this a Keras file?)")
            if "model.weights.h5" not in names:
                sharded = " (sharded weights are not supported)" if "model.weights.json" in names else ""
                raise KerasFormatError(f"the zip holds no model.weights.h5{sharded}")
            budget = {"config.json": MAX_CONFIG_BYTES, "model.weights.h5": 16 * os.path.getsize(path) + 64 * 2**20}
            for member, most in budget.items():  # declared sizes, before zipfile inflates anything
                if z.getinfo(member).file_size > most:
                    raise KerasFormatError(f"{member} declares {z.getinfo(member).file_size} bytes, over {most}")
            config_bytes = z.read("config.json")
            weights_bytes = z.read("model.weights.h5")
    except KerasFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise KerasFormatError(f"damaged zip file ({type(exc).__name__}: {exc})") from None
    config = _parse_json(config_bytes, "config.json")
    weights = {}
    # read in a helper process: no hang, no crash
    with _refused_as_damaged("model.weights.h5"), read_hdf5(weights_bytes, skip=("optimizer",)) as f:
        layers = f.get("layers")
        for slot in layers if layers is not None else {}:
            weights[f"layers/{slot}"] = _vars_arrays(layers[slot], slot)
    return config, weights


@contextlib.contextmanager
def _refused_as_damaged(what: str):
    """Whatever reading ``what`` (an HDF5 file) raises becomes :class:`KerasFormatError`: the helper
    process's refusal as it says it, anything else h5py or the layout raised with its type."""
    try:
        yield
    except KerasFormatError:
        raise
    except HDF5ReadError as exc:
        raise KerasFormatError(f"damaged {what} ({exc})") from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise KerasFormatError(f"damaged {what} ({type(exc).__name__}: {exc})") from None


def _vars_arrays(group, slot):
    """The arrays of ``layers/<slot>/vars``: datasets named 0, 1, ... in that order."""
    if "vars" not in group:
        return []
    vars_ = group["vars"]
    keys = list(vars_)
    if sorted(keys) != sorted(str(i) for i in range(len(keys))):
        raise KerasFormatError(f"model.weights.h5: layers/{slot}/vars holds {sorted(keys)}, expected 0, 1, ...")
    return [np.asarray(vars_[str(i)][()]) for i in range(len(keys))]


def _read_legacy_h5(path, h5py):
    """Legacy ``.h5`` -> (config dict, {layer name: [(weight name, array)]})."""
    with _refused_as_damaged("HDF5 file"), read_hdf5(path, skip=("optimizer_weights",)) as f:  # in a helper process
        if "model_config" not in f.attrs:
            raise KerasFormatError(
                "no model_config attribute: a weights-only file (save_weights)? "
                "load_keras needs a whole model saved with model.save"
            )
        raw = f.attrs["model_config"]
        root = f["model_weights"] if "model_weights" in f else f
        weights = {}
        for name in _string_list(_h5_attr(root, "layer_names")):
            group = root[name]
            weights[name] = [(w, np.asarray(group[w][()])) for w in _string_list(_h5_attr(group, "weight_names"))]
    return _parse_json(raw, "model_config"), weights


def _h5_attr(group, name):
    """An attribute Keras may have split into name0, name1, ... when it was large."""
    if name in group.attrs:
        return group.attrs[name]
    chunks, i = [], 0
    while f"{name}{i}" in group.attrs:
        chunks.extend(group.attrs[f"{name}{i}"])
        i += 1
    if not i:
        raise KerasFormatError(f"HDF5 group {group.name!r} has no {name!r} attribute")
    return chunks


def _string_list(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _parse_json(raw, what):
    try:
        config = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise KerasFormatError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise KerasFormatError(f"{what} is not a JSON object")
    return config
