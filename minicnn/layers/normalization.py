"""Normalization: per-feature standardisation a model carries itself (Keras 3's layer), and ``adapt``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from .base import Array, Layer, grad_enabled, registered

EPSILON = 1e-7  # keras.backend.epsilon(): the smallest denominator Normalization divides by
_ADAPT_CHUNK = 1 << 22  # values per float64 chunk in adapt (32 MB): the data is never copied whole


@registered
class Normalization(Layer):
    r"""``y = (x - mean) / max(sqrt(variance), 1e-7)`` per feature (``keras.layers.Normalization``).

    ``axis`` names the axes (of the batched input, as in Keras) that keep their own mean and
    variance: ``-1``, the default, is one per channel of NHWC images; a tuple keeps several;
    None keeps none (one scalar mean and variance). ``mean`` and ``variance`` broadcast
    against the kept axes, right-aligned (Keras's rule); given neither, they are 0 and 1
    until :meth:`adapt` computes them from data.

    Shapes: ``x``, ``y``, ``dy``, ``dx`` ``(N, *input_shape)``; ``mean`` and ``variance`` the
    sizes of the kept axes, e.g. ``(C,)``. ``x`` is cast to the layer's dtype first (uint8
    pixels are a valid input). Cache: the denominator ``d = max(sqrt(variance), 1e-7)``,
    broadcast to ``(1, ...)``. Backward: ``dx = dy / d`` (``None`` with
    ``need_input_grad=False``).

    Args:
        axis: an int, a tuple of ints, or None; never 0 (the batch axis).
        mean, variance: numbers or nested lists, both or neither; ``variance >= 0``.
    """

    config_keys = ("axis", "mean", "variance")
    accepts_raw_pixels = True

    def __init__(self, axis=-1, mean=None, variance=None, name=None):
        super().__init__(name)
        self.axis = _axis(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization: give both mean and variance or neither, got mean={mean!r}")
        self.mean = None if mean is None else _statistic(mean, "mean")
        self.variance = None if variance is None else _statistic(variance, "variance")
        if self.mean is not None and self.variance is not None:
            if self.mean.shape != self.variance.shape:
                raise ValueError(
                    f"Normalization: mean and variance need one shape, got {self.mean.shape} and {self.variance.shape}"
                )
            if (self.variance < 0).any():
                raise ValueError("Normalization: variance must be >= 0")
        self._constants: dict[tuple, tuple[Array, Array]] = {}  # (array module, dtype) -> (mean, d), broadcast

    def _kept_axes(self, ndim: int) -> tuple[int, ...]:
        """The axes (of an input with ``ndim`` axes, batch first) that keep their own statistics."""
        axes = () if self.axis is None else (self.axis,) if isinstance(self.axis, int) else self.axis
        kept = sorted({a + ndim if a < 0 else a for a in axes})
        if any(not 1 <= a < ndim for a in kept) or len(kept) != len(axes):
            raise ValueError(
                f"{self.describe()}: axis {self.axis} does not fit inputs of rank {ndim} (batch axis 0 "
                f"included; it cannot be kept, and each axis may be named once)"
            )
        return tuple(kept)

    def _build(self, input_shape, rng):
        kept = self._kept_axes(len(input_shape) + 1)
        self._kept_shape = tuple(input_shape[a - 1] for a in kept)
        # The statistics' shape among the batched input's axes: (1, 1, 1, C) for axis=-1 on NHWC.
        self._broadcast_shape = (1,) + tuple(
            input_shape[a - 1] if a in kept else 1 for a in range(1, len(input_shape) + 1)
        )
        for stat in (self.mean, self.variance):
            if stat is not None:
                self._on_kept_axes(stat)  # a ValueError now, not at the first forward
        self._constants = {}
        return input_shape

    def _on_kept_axes(self, stat: np.ndarray) -> np.ndarray:
        """``stat`` broadcast to the kept axes' sizes (NumPy's rule, right-aligned, is Keras's)."""
        try:
            return np.broadcast_to(stat, self._kept_shape)
        except ValueError:
            raise ValueError(
                f"{self.describe()}: mean/variance of shape {stat.shape} do not broadcast to the sizes "
                f"{self._kept_shape} of the kept axes (axis={self.axis})"
            ) from None

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` as float64 arrays of the kept axes' sizes (0 and 1 before :meth:`adapt`)."""
        if self.output_shape is None:
            raise RuntimeError(f"{self.describe()}: build it (or adapt it) first")
        if self.mean is None or self.variance is None:
            return np.zeros(self._kept_shape), np.ones(self._kept_shape)
        return np.array(self._on_kept_axes(self.mean)), np.array(self._on_kept_axes(self.variance))

    def _device_constants(self, like: Array, dtype: np.dtype) -> tuple[Array, Array]:
        """``(mean, d)`` in ``dtype`` on ``like``'s device, shaped to broadcast against the input."""
        xp = get_array_module(like)
        key = (xp.__name__, dtype.str)
        if key not in self._constants:
            mean, variance = self.statistics()
            d = np.maximum(np.sqrt(variance), EPSILON)  # in float64, then cast
            self._constants[key] = (
                xp.asarray(mean.reshape(self._broadcast_shape), dtype=dtype),
                xp.asarray(d.reshape(self._broadcast_shape), dtype=dtype),
            )
        return self._constants[key]

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        dtype = self.dtype if self.dtype is not None else np.dtype(np.float32)
        mean, d = self._device_constants(x, dtype)
        y = x.astype(dtype) - mean  # a fresh array: the caller's x is left alone
        y /= d
        self.cache = d if grad_enabled() else None
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        d = self.pop_cache()
        return dy / d if need_input_grad else None

    def adapt(self, data) -> None:
        """Set ``mean`` and ``variance`` to those of ``data`` over every axis but the kept ones.

        ``data``: an array ``(N, *input_shape)`` of any real dtype (NumPy or the backend's),
        or an iterable of such batches (or of ``(x, y)`` pairs, as a data set yields). Read
        in float64, chunk by chunk, each chunk's mean and sum of squared deviations merged
        into the running ones (Chan et al.'s pairwise update), so no float copy of the whole
        data is made. The variance is the population one (divided by the count), as Keras's.
        """
        count, mean, m2 = 0, np.zeros(()), np.zeros(())
        example_shape = self.input_shape  # None before build: the first batch's then
        for batch in _chunks(data):
            xp = get_array_module(batch)
            example_shape = tuple(batch.shape[1:]) if example_shape is None else example_shape
            if tuple(batch.shape[1:]) != example_shape:
                raise ValueError(
                    f"{self.describe()}: adapt got a batch of shape {tuple(batch.shape)}, expected (N, "
                    f"{', '.join(map(str, example_shape))})"
                )
            kept = self._kept_axes(batch.ndim)
            reduce = tuple(a for a in range(batch.ndim) if a not in kept)
            n = math.prod(batch.shape[a] for a in reduce)
            if n == 0:
                continue
            b = batch.astype(xp.float64)
            b_mean = b.mean(axis=reduce, keepdims=True)
            b_m2 = to_numpy(((b - b_mean) ** 2).sum(axis=reduce))
            b_mean = to_numpy(b_mean).reshape(b_m2.shape)
            delta, total = b_mean - mean, count + n
            mean = mean + delta * (n / total)
            m2 = m2 + b_m2 + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise ValueError(f"{self.describe()}: adapt got no data")
        self.mean, self.variance = mean, m2 / count
        self._constants = {}

    def get_config(self) -> dict:
        config = super().get_config()
        config["axis"] = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        for key in ("mean", "variance"):
            value = getattr(self, key)
            config[key] = None if value is None else value.tolist()  # JSON: a float or nested lists
        return config


def _axis(axis) -> int | tuple[int, ...] | None:
    def is_int(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)

    if axis is None or is_int(axis):
        return None if axis is None else int(axis)
    if isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise ValueError(f"Normalization: axis must be an int, a tuple of ints or None, got {axis!r}")


def _statistic(value, what: str) -> np.ndarray:
    """``value`` (a number or nested lists of them, as a config holds it) as a float64 array."""
    try:
        raw = np.array(value)
    except (TypeError, ValueError):  # ragged lists
        raw = np.array(None)
    if raw.dtype.kind not in "fiu":  # not strings, booleans or objects
        raise ValueError(f"Normalization: {what} must be a number or nested lists of numbers, got {value!r}")
    array = raw.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"Normalization: {what} must be finite")
    return array


def _chunks(data) -> Iterator[Any]:
    """``data``'s rows in chunks of about :data:`_ADAPT_CHUNK` values; an iterable's batches as they come."""
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        if data.ndim < 1:
            raise ValueError("Normalization.adapt: data must have a batch axis")
        rows = max(1, _ADAPT_CHUNK // max(1, math.prod(data.shape[1:])))
        for start in range(0, data.shape[0], rows):
            yield data[start : start + rows]
        return
    for batch in data:
        batch = batch[0] if isinstance(batch, tuple) else batch
        if not (hasattr(batch, "shape") and hasattr(batch, "dtype")):
            batch = np.asarray(batch)
        yield from _chunks(batch)
