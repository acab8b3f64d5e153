"""``cupy.random`` stand-in: ``RandomState`` with CuPy's signatures (``dtype=`` on the samplers).

Streams come from NumPy's Mersenne Twister, so they differ from CuPy's XORWOW ones: tests may
rely on a seed giving the same stream twice, never on particular values.
"""

import numpy as _numpy
import standin_names as _names

from .._core.core import _unwrap, _wrap
from .._core.core import ndarray as _ndarray

_FLOATS = (_numpy.float32, _numpy.float64)


def _float_dtype(dtype):
    dtype = _numpy.dtype(dtype)
    if dtype.type not in _FLOATS:
        raise TypeError(f"cupy.random: dtype must be float32 or float64, got {dtype}")
    return dtype


class RandomState:
    """``cupy.random.RandomState(seed=None, method=None)``."""

    def __init__(self, seed=None, method=None):
        self._rs = _numpy.random.RandomState()
        self.seed(seed)

    def seed(self, seed=None):
        if isinstance(seed, _ndarray):
            seed = seed.get()
        self._rs.seed(None if seed is None else _numpy.asarray(seed).astype(_numpy.uint64) % (2**32))

    def random_sample(self, size=None, dtype=float):
        return _wrap(self._rs.random_sample(size).astype(_float_dtype(dtype), copy=False))

    def rand(self, *size, **kwarg):
        dtype = kwarg.pop("dtype", float)
        if kwarg:
            raise TypeError(f"rand() got unexpected keyword argument(s): {', '.join(kwarg)}")
        return self.random_sample(size, dtype)

    def randn(self, *size, **kwarg):
        dtype = kwarg.pop("dtype", float)
        if kwarg:
            raise TypeError(f"randn() got unexpected keyword argument(s): {', '.join(kwarg)}")
        return self.normal(size=size, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return _wrap(self._rs.uniform(_unwrap(low), _unwrap(high), size).astype(_float_dtype(dtype), copy=False))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return _wrap(self._rs.normal(_unwrap(loc), _unwrap(scale), size).astype(_float_dtype(dtype), copy=False))

    def standard_normal(self, size=None, dtype=float):
        return self.normal(size=size, dtype=dtype)

    def randint(self, low, high=None, size=None, dtype=int):
        return _wrap(_numpy.asarray(self._rs.randint(low, high, size)).astype(dtype, copy=False))

    def permutation(self, a):
        if isinstance(a, _ndarray):
            return _wrap(self._rs.permutation(a._a))
        if isinstance(a, _numpy.ndarray):
            raise TypeError("cupy.random.RandomState.permutation: a numpy.ndarray is not a device array")
        return _wrap(self._rs.permutation(a))

    def shuffle(self, a):
        if not isinstance(a, _ndarray):
            raise TypeError("The array must be cupy.ndarray")
        self._rs.shuffle(a._a)

    def choice(self, a, size=None, replace=True, p=None):
        return _wrap(self._rs.choice(_unwrap(a), size, replace, _unwrap(p)))

    def __getattr__(self, name):
        if name in _names.CLASSES["cupy.random.RandomState"]:
            raise AttributeError(f"cupy stand-in: RandomState.{name} exists in real CuPy but is not implemented")
        raise AttributeError(f"'RandomState' object has no attribute {name!r}")


_state = None


def get_random_state():
    global _state
    if _state is None:
        _state = RandomState()
    return _state


def set_random_state(rs):
    global _state
    if not isinstance(rs, RandomState):
        raise TypeError("Random state must be an instance of RandomState")
    _state = rs


def reset_states():
    global _state
    _state = None


def seed(seed=None):
    get_random_state().seed(seed)


def random_sample(size=None, dtype=float):
    return get_random_state().random_sample(size, dtype)


random = ranf = sample = random_sample


def rand(*size, **kwarg):
    return get_random_state().rand(*size, **kwarg)


def randn(*size, **kwarg):
    return get_random_state().randn(*size, **kwarg)


def uniform(low=0.0, high=1.0, size=None, dtype=float):
    return get_random_state().uniform(low, high, size, dtype)


def normal(loc=0.0, scale=1.0, size=None, dtype=float):
    return get_random_state().normal(loc, scale, size, dtype)


def standard_normal(size=None, dtype=float):
    return get_random_state().standard_normal(size, dtype)


def randint(low, high=None, size=None, dtype="l"):
    return get_random_state().randint(low, high, size, dtype)


def permutation(a):
    return get_random_state().permutation(a)


def shuffle(a):
    return get_random_state().shuffle(a)


def choice(a, size=None, replace=True, p=None):
    return get_random_state().choice(a, size, replace, p)


def __getattr__(name):
    if name in _names.MODULES["cupy.random"]:
        raise AttributeError(f"cupy stand-in: cupy.random.{name} exists in real CuPy but is not implemented")
    raise AttributeError(f"module 'cupy.random' has no attribute {name!r}")
