"""What travels between the page and the server: arrays as base64 text, integers checked on the way in,
and :class:`ApiError` for a request that cannot be answered."""

from __future__ import annotations

import base64

import numpy as np


class ApiError(ValueError):
    """A request the explorer cannot answer: ``status`` (400, 404) and the reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def b64(array, dtype) -> str:
    """``array`` as base64 of its bytes in ``dtype`` (little-endian, C order)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def integer(value, what: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high)``, else an :class:`ApiError` saying what came."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(f"{what} must be an integer in [{low}, {high}), got {value!r}")
    if not low <= value < high:
        raise ApiError(f"{what} must be in [{low}, {high}), got {value}", status=404 if what == "index" else 400)
    return value


def kernel_tiles(w) -> list[str]:
    """Each filter of a conv kernel ``(kh, kw, C, F)`` as base64 uint8 ``(kh, kw, C)``, scaled on its own to 0..255."""
    w = np.asarray(w, np.float64)
    tiles = []
    for f in range(w.shape[-1]):
        k = w[..., f]
        lo, hi = k.min(), k.max()
        tiles.append(b64(np.round(255 * (k - lo) / (hi - lo)) if hi > lo else np.full(k.shape, 128), np.uint8))
    return tiles
