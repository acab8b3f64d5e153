"""``cupy.cublas`` stand-in: ``gemm`` with real CuPy's signature and checks (cupy/cublas.py, 14.2).

``gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0)`` computes
``out = alpha * op(a) @ op(b) + beta * out`` with NumPy; like CuPy it asserts 2-D operands of
one dtype, an ``out`` of the right shape and dtype, takes ``'N'``/``'T'``/``'H'`` (or cuBLAS's
0/1/2), and makes a fresh F-ordered ``out`` (and ignores ``beta``) when none is given. Host
arrays are refused as CuPy refuses them: it reads private attributes NumPy arrays lack.
The other names of real ``cupy.cublas`` raise AttributeError saying they are not implemented.
"""

import numpy as _numpy
import standin_names as _names

from ._core.core import _wrap
from ._core.core import check_signature as _check_signature
from ._core.core import ndarray as _ndarray

_OPS = {"N": 0, "T": 1, "H": 2, 0: 0, 1: 1, 2: 2}


def _op(trans):
    if trans not in _OPS:
        raise TypeError(f"invalid trans (actual: {trans})")
    return _OPS[trans]


def _device(x):
    if not isinstance(x, _ndarray):  # CuPy reads x._f_contiguous, which a NumPy array has not
        raise AttributeError(f"{type(x).__module__}.{type(x).__name__!s} object has no attribute '_f_contiguous'")
    return x._a


def _apply(op, m):
    return m if op == 0 else (m.T if op == 1 else m.T.conj())


def gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    _check_signature("cupy.cublas.gemm", (transa, transb, a, b), dict(out=out, alpha=alpha, beta=beta))
    assert a.ndim == b.ndim == 2
    assert a.dtype == b.dtype
    if a.dtype.char not in "fdFD":
        raise TypeError("invalid dtype")
    ta, tb = _op(transa), _op(transb)
    prod = _apply(ta, _device(a)) @ _apply(tb, _device(b))
    if out is None:
        return _wrap(_numpy.asfortranarray(alpha * prod).astype(a.dtype, copy=False))
    assert out.ndim == 2
    assert out.shape == prod.shape
    assert out.dtype == a.dtype.char
    o = _device(out)
    if beta == 0:
        o[...] = alpha * prod
    else:
        o *= o.dtype.type(beta)
        o += (alpha * prod).astype(o.dtype, copy=False)
    return out


def __getattr__(name):
    if name in _names.MODULES["cupy.cublas"]:
        raise AttributeError(f"cupy stand-in: cupy.cublas.{name} exists in real CuPy but is not implemented")
    raise AttributeError(f"module 'cupy.cublas' has no attribute {name!r}")
