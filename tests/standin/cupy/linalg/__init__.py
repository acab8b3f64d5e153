"""``cupy.linalg`` stand-in: real CuPy's names, NumPy's implementations under the device rules."""

import numpy as _numpy

from .._core.publish import make_getattr as _make_getattr

__getattr__, __dir__ = _make_getattr("cupy.linalg", globals(), _numpy.linalg)
