"""Checks on what users hand to a model: whole arrays, once, before any work is done."""

from __future__ import annotations

import warnings

import numpy as np

from .backend import get_array_module, to_numpy


def check_images(x, input_shape, where: str):
    """``x`` must be a non-empty real array of shape ``(N, *input_shape)`` with finite values."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(
            f"{where}: x must be an array of shape (N, {', '.join(map(str, input_shape))}), got {type(x).__name__}"
        )
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{where}: x must hold real numbers (float or int), got dtype {x.dtype}")
    expected = (None,) + tuple(input_shape)
    if x.ndim != len(expected):
        raise ValueError(
            f"{where}: x must have rank {len(expected)}, shape {_fmt(expected)}; "
            f"got rank {x.ndim}, shape {tuple(x.shape)}"
        )
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{where}: x must have shape {_fmt(expected)}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: x is empty (0 examples); expected at least one")
    if x.dtype.kind == "f":
        xp = get_array_module(x)
        finite = xp.isfinite(x).all(axis=tuple(range(1, x.ndim)))
        if not bool(finite.all()):
            bad = int(np.flatnonzero(to_numpy(~finite))[0])
            raise ValueError(f"{where}: x must be finite, but example {bad} holds NaN or inf")


def takes_raw_pixels(model) -> bool:
    """True when ``model``'s first layer casts integer pixels itself (its class sets
    ``accepts_raw_pixels``: Rescaling, Normalization), so uint8 images 0..255 are the input it
    expects. :func:`check_images` accepts integer images for every model (``fit``, ``evaluate``
    and ``predict`` cast each batch to the model's dtype); this says whether they are meant."""
    return bool(model.layers and getattr(model.layers[0], "accepts_raw_pixels", False))


RAW_PIXEL_LIMIT = 16.0  # |x| beyond this looks like 0..255 pixels: standardised or x/255 inputs stay far below


def warn_if_raw_pixels(model, x, where: str) -> None:
    """Warn when ``x`` looks like raw pixels (uint8, or values beyond ``RAW_PIXEL_LIMIT``) but the model
    carries no preprocessing of its own: it was trained on scaled inputs and would answer with confidence
    on numbers it never saw (the trap of a model saved without its preprocessing)."""
    if takes_raw_pixels(model) or not hasattr(x, "dtype") or x.dtype.kind not in "fiu" or not x.size:
        return
    # One number from the first examples, where they are (no host copy of a GPU batch).
    top = float(get_array_module(x).abs(x[:256]).max())
    if x.dtype == np.uint8 or top > RAW_PIXEL_LIMIT:
        warnings.warn(
            f"{where}: the input looks like raw pixels (values up to {top:g}) but the model has no "
            "Rescaling or Normalization layer first: scale it as the training data was (e.g. x / 255 - 0.5, "
            "or the checkpoint's mean/std), or put that preprocessing in the model",
            UserWarning,
            stacklevel=3,
        )


def whole_numbers_as_ints(y: np.ndarray) -> np.ndarray:
    """Labels written as floats that are whole numbers (``[3., 0.]``, as Keras code often has) -> int64."""
    if y.dtype.kind == "f" and np.array_equal(y, np.round(y)):
        return y.astype(np.int64)
    return y


def check_labels(y, n: int, classes: int, where: str):
    """``y`` must be ``n`` integer class ids in ``[0, classes)``."""
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise ValueError(f"{where}: y must be an integer array of shape ({n},), got {type(y).__name__}")
    if y.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: y must hold integer class ids, got dtype {y.dtype}"
            + (" (one-hot labels? pass y.argmax(1))" if y.ndim == 2 else "")
        )
    if y.ndim != 1:
        raise ValueError(
            f"{where}: y must have shape ({n},), got {tuple(y.shape)}"
            + (" (one-hot labels? pass y.argmax(1))" if y.ndim == 2 else "")
        )
    if y.shape[0] != n:
        raise ValueError(f"{where}: x has {n} examples but y has {y.shape[0]} labels")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise ValueError(f"{where}: labels must be in [0, {classes}), got values from {lo} to {hi}")


def _fmt(shape):
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
