"""``cupy.lib.stride_tricks`` stand-in: ``as_strided`` returns a device view."""

import numpy as _numpy

from .._core.core import _wrap
from .._core.core import ndarray as _ndarray
from .._core.publish import make_getattr as _make_getattr


def as_strided(x, shape=None, strides=None):
    if not isinstance(x, _ndarray):
        raise TypeError(f"cupy.lib.stride_tricks.as_strided needs a cupy.ndarray, got {type(x)}")
    return _wrap(_numpy.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides), (x,))


__getattr__, __dir__ = _make_getattr("cupy.lib.stride_tricks", globals(), _numpy.lib.stride_tricks)
