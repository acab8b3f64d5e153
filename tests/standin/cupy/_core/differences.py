"""CuPy's documented differences from NumPy that a CPU can show honestly (CuPy 14's user guide,
"Differences between CuPy and NumPy", and the sources named below). ``core.ndarray`` applies them.

* **Out-of-bounds integer-array indices wrap** (``_prepare_array_indexing`` and the scatter
  kernels of ``_routines_indexing.pyx`` take ``index % size``): ``a[cupy.array([3])]`` on an
  axis of 3 reads element 0 instead of raising IndexError. A plain int index still raises.
* **Duplicate indices in an assignment store an undefined one of the values.** NumPy keeps the
  last; the stand-in writes in reverse order, so the *first* wins: code that relied on
  NumPy's order gets a visibly different answer.
* **Float to integer casts saturate** (the GPU's conversion): ``-1.0 -> uint32`` is 0, ``inf ->
  int32`` is 2147483647, NaN is 0; NumPy's result depends on the CPU.

Not emulated: the layout of results (CuPy does not promise NumPy's contiguity), NaN order in
complex reductions, hashed array seeds.
"""

from __future__ import annotations

import numpy


def _is_int_array(p) -> bool:
    return isinstance(p, numpy.ndarray) and p.dtype.kind in "iu"


def _axes_taken(p) -> int:
    if p is None:
        return 0
    if isinstance(p, numpy.ndarray) and p.dtype == numpy.bool_:
        return p.ndim
    return 1


def wrap_out_of_bounds(key, shape):
    """``key`` (a NumPy index) with every integer *array* index taken modulo its axis's length."""
    parts = key if isinstance(key, tuple) else (key,)
    if not any(_is_int_array(p) for p in parts):
        return key
    fixed_axes = sum(_axes_taken(p) for p in parts if p is not Ellipsis)
    out, axis = [], 0
    for p in parts:
        if p is Ellipsis:
            axis += len(shape) - fixed_axes
        elif _is_int_array(p):
            if axis < len(shape) and shape[axis] > 0:
                p = numpy.mod(p, shape[axis])
            axis += 1
        else:
            axis += _axes_taken(p)
        out.append(p)
    return tuple(out) if isinstance(key, tuple) else out[0]


def scatter(a, key, value) -> bool:
    """``a[key] = value`` in reverse order when ``key`` is integer arrays alone (the case where
    duplicates can occur); False, nothing written, for any other key."""
    parts = key if isinstance(key, tuple) else (key,)
    if not all(_is_int_array(p) for p in parts) or len(parts) > a.ndim:
        return False
    index = numpy.broadcast_arrays(*parts)
    target = index[0].shape + a.shape[len(parts) :]
    values = numpy.broadcast_to(numpy.asarray(value, dtype=a.dtype), target)
    flat = tuple(i.reshape(-1)[::-1] for i in index)
    a[flat] = values.reshape((-1,) + a.shape[len(parts) :])[::-1]
    return True


def cast(a, dtype):
    """``a.astype(dtype)`` with the GPU's saturating float-to-integer conversion; None when the
    cast is not from floats to integers (NumPy's then holds)."""
    dtype = numpy.dtype(dtype)
    if a.dtype.kind != "f" or dtype.kind not in "iu":
        return None
    info = numpy.iinfo(dtype)
    t = numpy.trunc(numpy.nan_to_num(a, nan=0.0, posinf=numpy.inf, neginf=-numpy.inf))
    out = numpy.empty(a.shape, dtype)
    high = t >= float(info.max)
    low = t <= float(info.min)
    out[...] = numpy.where(high | low, 0, t).astype(dtype)
    out[high] = info.max
    out[low] = info.min
    return out
