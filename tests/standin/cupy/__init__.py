"""A CPU stand-in for CuPy, for tests only (see tests/standin/README in the docstring below).

NumPy underneath, CuPy's rules on top: a distinct ``cupy.ndarray`` that refuses implicit
conversion to NumPy and mixing with NumPy arrays, only the names real CuPy exposes
(``standin_names``), and every host sync counted (``standin_stats``). It proves that the
library's CuPy path keeps data on the device and follows CuPy's API; it proves nothing
about kernels, speed, GPU memory or cuBLAS numerics.
"""

from __future__ import annotations

import numpy as _numpy
import standin_names as _names
import standin_stats as _stats

from ._core.core import _unwrap_host_ok, _wrap, ndarray, ufunc  # noqa: F401
from ._core.core import check_signature as _check_signature
from ._core.publish import make_getattr as _make_getattr

__version__ = _names.CUPY_VERSION

from . import cuda, lib, linalg, random  # noqa: E402,F401
from .cuda.memory import _default_pinned_pool, _default_pool  # noqa: E402


def _to_device(qualname, npfunc, a, args, kwargs):
    _check_signature(qualname, (a,) + args, kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "blocking"}
    if (
        isinstance(a, ndarray)
        and not args
        and kwargs.get("dtype") in (None, a.dtype)
        and qualname in ("cupy.asarray", "cupy.asanyarray")
        and not kwargs.get("copy")
    ):
        return a
    host, from_host = _unwrap_host_ok(a)
    if from_host:
        _stats.record_transfer(qualname.split(".")[-1])
    kwargs.pop("copy", None)
    r = _numpy.array(host, *args, copy=True, **kwargs)  # device memory never aliases host memory
    return _wrap(r)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return _to_device("cupy.asarray", _numpy.array, a, (), dict(dtype=dtype, order=order, copy=copy))


def asanyarray(a, dtype=None, order=None, *, blocking=False):
    return _to_device("cupy.asanyarray", _numpy.array, a, (), dict(dtype=dtype, order=order))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        r = _numpy.array(obj._a, dtype=dtype, copy=True, order=order, ndmin=ndmin)
        return _wrap(r)
    return _to_device("cupy.array", _numpy.array, obj, (), dict(dtype=dtype, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        r = _numpy.ascontiguousarray(a._a, dtype=dtype)
        return a if r is a._a else _wrap(r)
    return _to_device("cupy.ascontiguousarray", _numpy.array, a, (), dict(dtype=dtype, order="C"))


def asfortranarray(a, dtype=None):
    if isinstance(a, ndarray):
        r = _numpy.asfortranarray(a._a, dtype=dtype)
        return a if r is a._a else _wrap(r)
    return _to_device("cupy.asfortranarray", _numpy.array, a, (), dict(dtype=dtype, order="F"))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Device -> host (a counted sync); host data passes through as ``_numpy.asarray``."""
    if isinstance(a, ndarray):
        _stats.record_sync("asnumpy")
        return a._get(order, out)
    r = _numpy.asarray(a, order=order)
    if out is not None:
        out[...] = r
        return out
    return r


def get_array_module(*args):
    for a in args:
        if isinstance(a, ndarray):
            import cupy

            return cupy
    return _numpy


def get_default_memory_pool():
    return _default_pool


def get_default_pinned_memory_pool():
    return _default_pinned_pool


def is_available():
    return True


__getattr__, __dir__ = _make_getattr("cupy", globals(), _numpy)


def _check_names():
    allowed = set(_names.MODULES["cupy"]) | {"annotations"}
    extra = {n for n in globals() if not n.startswith("_")} - allowed
    assert not extra, f"the stand-in exposes names real CuPy lacks: {sorted(extra)}"


_check_names()
