"""``out += a @ b`` in one BLAS call: the GEMM that adds in place, which NumPy does not offer.

A BLAS GEMM computes ``C = alpha * A @ B + beta * C``. NumPy's ``matmul`` always calls it with
``beta = 0``, so ``out += a @ b`` writes the product to a fresh array and reads it back once
more; for the tall, narrow products of :mod:`minicnn.kernels.conv` that extra traffic is most
of the cost (figures: ``benchmarks/RESULTS.md``).

So :func:`matmul_add` calls the BLAS that NumPy itself is linked to (found by threadpoolctl)
through ``ctypes``, with ``beta = 1``. Two things make ``ctypes`` the right tool here: it
releases Python's GIL during the call, so the shards of :mod:`minicnn.distributed.threads` keep both
cores busy (SciPy's wrapper holds the GIL); and it needs no second BLAS library in the
process. Where NumPy's BLAS cannot be found (a build linked to Accelerate or MKL, say), or for
operands BLAS cannot take without a copy, the plain expression runs instead: same result, one
temporary more.

On CuPy the same GEMM is one call of ``cupy.cublas.gemm(..., out=out, alpha=1, beta=1)``
(:func:`_cublas_matmul_add`): cuBLAS adds into ``out`` where it lies, C- or F-ordered.

Row-major operands map onto CBLAS directly: a matrix whose rows are contiguous is
``NoTrans`` with leading dimension = its row stride; a transposed view (columns contiguous)
is the same memory read as ``Trans``.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from .backend import cupy_cublas, get_array_module

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enum values, fixed by the standard

# (symbol, 64-bit integers?) as NumPy's wheels name them: NumPy 2 links OpenBLAS built with
# 64-bit integers and a "scipy_" prefix; NumPy 1.2x wheels used the "64_" suffix alone.
_SYMBOLS = (("scipy_cblas_{}gemm64_", True), ("cblas_{}gemm64_", True), ("scipy_cblas_{}gemm", False))

_gemm: dict | None = None  # {np.float32: function, np.float64: function}, or {} if none


def _numpy_blas_gemms() -> dict:
    """NumPy's own CBLAS ``sgemm``/``dgemm`` as ctypes functions, or ``{}`` if not found."""
    if os.environ.get("MINICNN_NO_DIRECT_BLAS"):
        return {}
    from threadpoolctl import threadpool_info

    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    for lib in threadpool_info():
        path = os.path.abspath(lib.get("filepath") or "")
        # NumPy's own copy (numpy.libs/ on Linux, numpy/.dylibs/ on macOS), not another library's
        if lib.get("user_api") != "blas" or not os.path.relpath(path, site).startswith("numpy"):
            continue
        dll = ctypes.CDLL(path)  # CDLL: calls release the GIL
        for pattern, wide in _SYMBOLS:
            try:
                found = {
                    dtype: getattr(dll, pattern.format(letter))
                    for dtype, letter in ((np.float32, "s"), (np.float64, "d"))
                }
            except AttributeError:
                continue
            integer = ctypes.c_int64 if wide else ctypes.c_int
            for dtype, fn in found.items():
                scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
                fn.restype = None
                fn.argtypes = [
                    ctypes.c_int,
                    ctypes.c_int,
                    ctypes.c_int,
                    integer,
                    integer,
                    integer,
                    scalar,
                    ctypes.c_void_p,
                    integer,
                    ctypes.c_void_p,
                    integer,
                    scalar,
                    ctypes.c_void_p,
                    integer,
                ]
            return found
    return {}


def _operand(m, itemsize):
    """``(transpose flag, leading dimension)`` of a 2-D array as BLAS reads it, or None if
    BLAS cannot read it in place (no unit stride, or rows overlapping)."""
    rows, cols = m.shape
    s0, s1 = m.strides
    if (s1 == itemsize or cols == 1) and s0 % itemsize == 0 and s0 // itemsize >= max(1, cols):
        return _NO_TRANS, s0 // itemsize
    if (s0 == itemsize or rows == 1) and s1 % itemsize == 0 and s1 // itemsize >= max(1, rows):
        return _TRANS, s1 // itemsize
    return None


def matmul_add(out, a, b):
    """``out += a @ b`` for 2-D arrays ``a (M, K)``, ``b (K, N)``, ``out (M, N)``; returns ``out``.

    One GEMM with ``beta = 1`` on NumPy arrays where NumPy's BLAS is reachable and on CuPy
    arrays through cuBLAS, else the plain expression (other dtypes, operands BLAS would need
    copied). The result is the same.
    """
    global _gemm
    # NumPy arrays told by their type at once: a convolution makes dozens of these calls per shard
    if type(out) is np.ndarray and type(a) is np.ndarray and type(b) is np.ndarray:
        if _gemm is None:
            _gemm = _numpy_blas_gemms()
        fn = _gemm.get(out.dtype.type)
        if fn is not None and a.dtype == b.dtype == out.dtype and out.flags.writeable and _gemm_add(fn, out, a, b):
            return out
    elif get_array_module(out, a, b) is not np and _cublas_matmul_add(out, a, b):
        return out
    out += a @ b
    return out


def _gemm_add(fn, out, a, b) -> bool:
    """``out += a @ b`` by the CBLAS GEMM ``fn`` with ``beta = 1``; False (nothing done) when an
    operand's layout is not one BLAS reads in place or the shapes do not match."""
    m, n = out.shape
    k = a.shape[1]
    size = out.itemsize
    ta, tb, tc = _operand(a, size), _operand(b, size), _operand(out, size)
    if a.shape != (m, k) or b.shape != (k, n) or ta is None or tb is None or tc is None or tc[0] != _NO_TRANS:
        return False
    if m and n and k:
        pointers = a.ctypes.data, b.ctypes.data, out.ctypes.data
        fn(_ROW_MAJOR, ta[0], tb[0], m, n, k, 1.0, pointers[0], ta[1], pointers[1], tb[1], 1.0, pointers[2], tc[1])
    return True


def _cublas_matmul_add(out, a, b) -> bool:
    """``out += a @ b`` on the GPU in one cuBLAS GEMM (``beta = 1``); False when it cannot be one.

    ``cupy.cublas.gemm`` reads C- and F-ordered operands in place (other layouts it copies) and
    writes ``out`` in place only when ``out`` is C- or F-contiguous; it asserts one float dtype.
    An empty product adds nothing (and cuBLAS refuses a leading dimension of 0).
    """
    if not (a.dtype == b.dtype == out.dtype and out.dtype.type in (np.float32, np.float64)):
        return False
    if a.ndim != 2 or b.ndim != 2 or out.shape != (a.shape[0], b.shape[1]) or a.shape[1] != b.shape[0]:
        return False
    if not (out.flags.c_contiguous or out.flags.f_contiguous):
        return False
    if out.size and a.shape[1]:
        cupy_cublas().gemm("N", "N", a, b, out=out, alpha=1.0, beta=1.0)
    return True
