"""The stand-in's device array: a NumPy array behind CuPy's rules.

``ndarray`` wraps a NumPy array (``_a``). Indexing, reshaping and the like return wrappers
around NumPy *views*, so writes through a view reach the original as on a GPU. What CuPy
refuses, this refuses in the same way (see cupy/_core/core.pyx, _kernel.pyx and
_routines_indexing.pyx in CuPy 14):

* implicit conversion to NumPy (``__array__``) raises TypeError;
* a ufunc or operator mixing a device array with a ``numpy.ndarray`` raises TypeError
  ("Unsupported type"); Python and NumPy scalars are fine;
* ``dev[basic index] = numpy_array`` raises ValueError (CuPy refuses assignment from CPU
  arrays there, gh-2079); with an advanced (array) index the host value is copied over;
* reductions and scalar indexing return 0-d device arrays, never Python numbers;
* out-of-bounds integer-array indices wrap, duplicate indices in an assignment keep another
  value than NumPy's, float-to-int casts saturate (``differences.py``: CuPy's documented
  differences from NumPy).

Everything that reads device memory from the host is counted in ``standin_stats``.
"""

from __future__ import annotations

import inspect
import numbers
import re
import warnings

import numpy
import standin_names
import standin_stats

from . import differences

_SCALAR_TYPES = (int, float, bool, complex, numpy.generic)


def _sync(kind):
    standin_stats.record_sync(kind)


def _transfer(kind):
    standin_stats.record_transfer(kind)


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _root(a):
    """The NumPy array that owns ``a``'s memory."""
    while True:
        b = a.base
        if isinstance(b, numpy.ndarray):
            a = b
        elif b is not None and isinstance(getattr(b, "base", None), numpy.ndarray):  # as_strided's DummyArray
            a = b.base
        else:
            return a


def _wrap(r, parents=()):
    """Wrap a NumPy result as device data. NumPy scalars become 0-d device arrays."""
    if isinstance(r, numpy.ndarray):
        for p in parents:
            if r is p._a:
                return p
        out = ndarray.__new__(ndarray)
        out._a = r
        out._base = None
        if r.base is not None and parents:
            root = _root(r)
            for p in parents:
                if _root(p._a) is root:
                    out._base = p._base if p._base is not None else p
                    break
        return out
    if isinstance(r, numpy.generic):
        return _wrap(numpy.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(x, parents) for x in r)
    if isinstance(r, list):
        return [_wrap(x, parents) for x in r]
    return r


def _unwrap(x):
    """Device arrays -> their NumPy array, recursively through lists/tuples/dicts.
    A ``numpy.ndarray`` anywhere is an error: CuPy never converts one implicitly."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _unwrap_host_ok(x):
    """Like ``_unwrap`` but host data is allowed (it is copied to the device: a transfer)."""
    found = [False]

    def go(v):
        if isinstance(v, ndarray):
            return v._a
        if isinstance(v, (list, tuple)):
            return type(v)(go(e) for e in v)
        found[0] = True
        return v

    return go(x), found[0]


def _parents(args, kwargs):
    out = []

    def go(v):
        if isinstance(v, ndarray):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            for e in v:
                go(e)

    for a in args:
        go(a)
    for a in kwargs.values():
        go(a)
    return out


# --- signatures: bind calls against real CuPy's signature -----------------------------------------------


def _signature_from_text(text):
    """An ``inspect.Signature`` with real CuPy's parameter names and kinds (defaults replaced by None)."""
    text = re.sub(r"<[^<>]*>", "None", text)
    text = re.sub(r"\)\s*->.*$", ")", text)
    import ast

    tree = ast.parse(f"def f{text}: pass")
    a = tree.body[0].args
    P = inspect.Parameter
    params = []
    positional = a.posonlyargs + a.args
    n_def = len(a.defaults)
    for i, arg in enumerate(positional):
        kind = P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        has_default = i >= len(positional) - n_def
        params.append(P(arg.arg, kind, default=None if has_default else P.empty))
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=P.empty if d is None else None))
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


_sig_cache: dict = {}


def check_signature(qualname, args, kwargs):
    """Raise TypeError as real CuPy would for arguments its signature does not take."""
    text = standin_names.SIGNATURES.get(qualname)
    if text is None:
        return
    sig = _sig_cache.get(qualname)
    if sig is None:
        sig = _sig_cache[qualname] = _signature_from_text(text)
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{qualname}{text}: {exc}") from None


def _numpy_kwargs(func, kwargs):
    """Drop CuPy-only keywords (``blocking``, ``stream``) that NumPy's twin does not take."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


# CuPy functions that write device data to the host (they call .get() / asnumpy inside).
_HOST_OUTPUT = {
    "save": "save",
    "savez": "save",
    "savez_compressed": "save",
    "savetxt": "save",
    "array_repr": "repr",
    "array_str": "str",
    "array2string": "str",
}
# ... that read host data onto the device.
_HOST_INPUT = {"load", "loadtxt", "genfromtxt", "fromfile", "frombuffer", "fromstring", "fromiter", "fromfunction"}
# ... whose output size depends on the data: CuPy reads a count back from the device first.
_DATA_DEPENDENT_SIZE = {"nonzero", "flatnonzero", "argwhere", "unique", "extract", "compress", "trim_zeros"}
# ... that return a 0-d device array where NumPy returns a Python scalar.
_DEVICE_SCALAR = {"allclose", "array_equal", "array_equiv", "count_nonzero"}


def delegate(qualname, npfunc):
    """A CuPy function implemented by NumPy's ``npfunc`` under the device rules."""
    name = qualname.rsplit(".", 1)[1]

    def f(*args, **kwargs):
        check_signature(qualname, args, kwargs)
        parents = _parents(args, kwargs)
        if parents and name in _HOST_OUTPUT:
            _sync(_HOST_OUTPUT[name])
        if name in _DATA_DEPENDENT_SIZE or (name == "where" and len(args) + len(kwargs) == 1):
            _sync("data_dependent_size")
        r = npfunc(*_unwrap(args), **_numpy_kwargs(npfunc, _unwrap(kwargs)))
        if name in _HOST_INPUT:
            _transfer(name)
        if name in _DEVICE_SCALAR and isinstance(r, (bool, int, float, numpy.generic)):
            return _wrap(numpy.asarray(r))
        return _wrap(r, parents)

    f.__name__ = qualname.rsplit(".", 1)[1]
    f.__qualname__ = f.__name__
    f.__module__ = qualname.rsplit(".", 1)[0]
    f.__doc__ = f"CPU stand-in for {qualname} (NumPy's {npfunc.__name__} under CuPy's device rules)."
    return f


# --- ufuncs ----------------------------------------------------------------------------------------------


def _ufunc_operand(x):
    if isinstance(x, ndarray):
        return x._a
    if type(x) in (int, float, bool, complex) or isinstance(x, numpy.generic):
        return x
    raise _unsupported(x)


def _ufunc_out(out):
    if out is None:
        return None, None
    if isinstance(out, tuple):
        if len(out) != 1:
            raise ValueError("The 'out' parameter must have exactly one array value")
        out = out[0]
    if not isinstance(out, ndarray):
        raise TypeError("Output arguments must be cupy.ndarray")
    return out, out._a


class ufunc:
    """``cupy.ufunc``: NumPy's ufunc of the same name, on device arrays only."""

    def __init__(self, npufunc):
        self._f = npufunc
        self.name = self.__name__ = npufunc.__name__
        self.nin, self.nout, self.nargs = npufunc.nin, npufunc.nout, npufunc.nargs
        self.types = npufunc.types

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if len(args) > self.nin:  # outputs given positionally
            if out is not None:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            args, out = args[: self.nin], args[self.nin :]
            out = out[0] if len(out) == 1 else out
        if len(args) != self.nin:
            raise TypeError(
                f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                f"{self.nargs} (with outputs), but given {len(args)}."
            )
        ins = [_ufunc_operand(a) for a in args]
        out_w, out_a = _ufunc_out(out)
        kw = {"casting": casting}
        if dtype is not None:
            kw["dtype"] = dtype
        if out_a is not None:
            kw["out"] = out_a
        r = self._f(*ins, **kw)
        if out_w is not None:
            return out_w
        return _wrap(r)

    def _method(self, method, a, *rest, **kwargs):
        out = kwargs.pop("out", None)
        out_w, out_a = _ufunc_out(out)
        if out_a is not None:
            kwargs["out"] = out_a
        r = getattr(self._f, method)(_ufunc_operand(a), *[_ufunc_operand(x) for x in rest], **kwargs)
        return out_w if out_w is not None else _wrap(r)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        return self._method("reduce", array, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        return self._method("accumulate", array, axis=axis, dtype=dtype, out=out)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        return self._method("reduceat", array, indices, axis=axis, dtype=dtype, out=out)

    def outer(self, A, B, **kwargs):
        return self._method("outer", A, B, **kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError("a must be cupy.ndarray")
        idx = _index_key(indices)
        if b is None:
            self._f.at(a._a, idx)
        else:
            self._f.at(a._a, idx, _ufunc_operand(b))


_ufuncs: dict = {}


def get_ufunc(name):
    u = _ufuncs.get(name)
    if u is None:
        u = _ufuncs[name] = ufunc(getattr(numpy, name))
    return u


# --- indexing --------------------------------------------------------------------------------------------


def _index_part(s):
    if isinstance(s, ndarray):
        return s._a, True
    if isinstance(s, numpy.ndarray) or isinstance(s, list):
        _transfer("index")  # CuPy copies a host index array to the device
        return numpy.asarray(s), True
    if isinstance(s, (bool, numpy.bool_)):
        return s, True
    return s, False


def _index_key(key):
    """The NumPy key, and whether it is advanced (uses arrays)."""
    return _index_key_adv(key)[0]


def _index_key_adv(key):
    if isinstance(key, tuple):
        parts = [_index_part(s) for s in key]
        return tuple(p for p, _ in parts), any(adv for _, adv in parts)
    return _index_part(key)


def _only_integers(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(p, numbers.Integral) and not isinstance(p, (bool, numpy.bool_)) for p in parts)


# --- the array -------------------------------------------------------------------------------------------


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[name]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class _MemoryPointer:
    """``ndarray.data``: the address of the (host) buffer standing in for device memory."""

    def __init__(self, arr):
        self._arr = arr
        self.ptr = arr._a.__array_interface__["data"][0]
        from cupy import cuda

        self.device = cuda.Device(0)
        self.device_id = 0


class ndarray:
    """``cupy.ndarray`` on the CPU: a NumPy array that refuses to be treated as one."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None:
            raise NotImplementedError("cupy stand-in: ndarray(memptr=...) is not supported")
        self._a = numpy.empty(shape, dtype=dtype, order=order)
        if strides is not None:
            self._a = numpy.lib.stride_tricks.as_strided(self._a, self._a.shape, strides)
        self._base = None

    # -- attributes --
    shape = property(lambda self: self._a.shape)

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    strides = property(lambda self: self._a.strides)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: _wrap(self._a.T, (self,)))
    mT = property(lambda self: _wrap(self._a.mT, (self,)))
    real = property(lambda self: _wrap(self._a.real, (self,)))
    imag = property(lambda self: _wrap(self._a.imag, (self,)))
    base = property(lambda self: self._base)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self))

    @property
    def device(self):
        from cupy import cuda

        return cuda.Device(0)

    def __getattr__(self, name):
        if name in _NDARRAY_NAMES:
            raise AttributeError(
                f"cupy stand-in: cupy.ndarray.{name} exists in real CuPy but the stand-in "
                f"does not implement it (add it to tests/standin/cupy/_core/core.py)"
            )
        raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")

    # -- host <-> device: the only explicit routes --
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync("get")
        return self._get(order, out)

    def _get(self, order="C", out=None):
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if self.dtype != out.dtype:
                raise TypeError(f"{self.dtype} array cannot be obtained from {out.dtype} array")
            if self.shape != out.shape:
                raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {out.shape}")
            numpy.copyto(out, self._a)
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _transfer("set")
        self._a[...] = arr

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync("item")
        return self._a.item()

    def tolist(self):
        _sync("tolist")
        return self._a.tolist()

    def tobytes(self, order="C"):
        _sync("tobytes")
        return self._a.tobytes(order)

    def tofile(self, fid, sep="", format="%s"):
        _sync("tofile")
        self._a.tofile(fid, sep, format)

    def dumps(self):
        _sync("pickle")
        import pickle

        return pickle.dumps(self)

    def dump(self, file):
        _sync("pickle")
        import pickle

        with open(file, "wb") if isinstance(file, str) else _nullcontext(file) as f:
            pickle.dump(self, f)

    def __reduce__(self):
        _sync("pickle")
        import cupy

        return cupy.array, (numpy.array(self._a, copy=True),)

    def __int__(self):
        _sync("int")
        return int(self._a)

    def __float__(self):
        _sync("float")
        return float(self._a)

    def __complex__(self):
        _sync("complex")
        return complex(self._a)

    def __bool__(self):
        if self.size == 0:
            warnings.warn(
                "The truth value of an empty array is ambiguous. Returning False, but in future this "
                "will result in an error. Use `array.size > 0` to check that an array is not empty.",
                DeprecationWarning,
                stacklevel=2,
            )
            return False
        if self.size != 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()"
            )
        _sync("bool")
        return bool(self._a)

    def __repr__(self):
        _sync("repr")
        return repr(self._a)

    def __str__(self):
        _sync("str")
        return str(self._a)

    def __format__(self, spec):
        _sync("format")
        return format(self._a if self.ndim else self._a[()], spec)

    # -- container --
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))  # device views, as CuPy: no sync

    def __getitem__(self, key):
        k, adv = _index_key_adv(key)
        if adv and any(
            getattr(p, "dtype", None) == numpy.bool_ or isinstance(p, (bool, numpy.bool_))
            for p in (k if isinstance(k, tuple) else (k,))
        ):
            _sync("data_dependent_size")  # a boolean mask: CuPy reads the count of True back first
        if not adv and _only_integers(k):
            k = (k if isinstance(k, tuple) else (k,)) + (Ellipsis,)  # a 0-d view, not a NumPy scalar
        if adv:
            k = differences.wrap_out_of_bounds(k, self.shape)
        return _wrap(self._a[k], (self,))

    def __setitem__(self, key, value):
        k, adv = _index_key_adv(key)
        if isinstance(value, ndarray):
            v = value._a
        elif isinstance(value, (numpy.ndarray, list, tuple)):
            if adv:
                _transfer("setitem")  # CuPy copies the host value over with an array index
                v = numpy.asarray(value)
            else:
                v = numpy.asarray(value)
                if v.shape != ():  # CuPy refuses assignment from CPU arrays (gh-2079)
                    raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif isinstance(value, _SCALAR_TYPES):
            v = value
        else:
            raise _unsupported(value)
        if adv:
            k = differences.wrap_out_of_bounds(k, self.shape)
            if differences.scatter(self._a, k, v):
                return
        self._a[k] = v

    def fill(self, value):
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a[()]
        else:
            v = numpy.asarray(value, dtype=self.dtype)
            if v.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)

    # -- NumPy protocol: dispatch to the stand-in, as CuPy does --
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        import cupy

        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        name = uf.__name__
        if name not in standin_names.UFUNCS and name not in _CUPY_FUNCS:
            return NotImplemented
        inout = inputs + tuple(kwargs.get("out", ()))
        for x in inout:
            if not isinstance(x, (_SCALAR_TYPES, ndarray, numpy.ndarray)):
                return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        if name in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        func = getattr(cupy, name)
        if method != "__call__":
            func = getattr(func, method)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import functools

        import cupy

        try:
            module = functools.reduce(getattr, func.__module__.split(".")[1:], cupy)
            cupy_func = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        if cupy_func is func:
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, numpy.ndarray)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    # -- copies --
    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def copy(self, order="C"):
        return _wrap(self._a.copy(order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        r = differences.cast(self._a, dtype)
        if r is None:
            r = self._a.astype(dtype, order=order, copy=copy, **({"casting": casting} if casting else {}))
        return _wrap(r, (self,))

    def view(self, dtype=None, array_class=None):
        return _wrap(self._a.view() if dtype is None else self._a.view(dtype), (self,))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _wrap(self._a.reshape(shape, order=order), (self,))

    def dot(self, b, out=None):
        import cupy

        return cupy.dot(self, b, out=out)

    def reduced_view(self, dtype=None):
        return self


def _nullcontext(f):
    import contextlib

    return contextlib.nullcontext(f)


def _operator(ufunc_name, reflected=False, inplace=False):
    def op(self, other):
        if not isinstance(other, (ndarray, numpy.ndarray, _SCALAR_TYPES)):
            return NotImplemented
        u = get_ufunc(ufunc_name)
        if inplace:
            return u(self, other, out=self)
        return u(other, self) if reflected else u(self, other)

    return op


for _name, _uf in [
    ("add", "add"),
    ("sub", "subtract"),
    ("mul", "multiply"),
    ("truediv", "true_divide"),
    ("floordiv", "floor_divide"),
    ("mod", "remainder"),
    ("matmul", "matmul"),
    ("and", "bitwise_and"),
    ("or", "bitwise_or"),
    ("xor", "bitwise_xor"),
    ("lshift", "left_shift"),
    ("rshift", "right_shift"),
]:
    setattr(ndarray, f"__{_name}__", _operator(_uf))
    setattr(ndarray, f"__r{_name}__", _operator(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _operator(_uf, inplace=True))


def _pow(self, other, modulo=None):
    if modulo is not None:
        return NotImplemented
    return _operator("power")(self, other)


def _rpow(self, other, modulo=None):
    return _operator("power", reflected=True)(self, other)


def _ipow(self, other):
    return _operator("power", inplace=True)(self, other)


def _divmod(self, other):
    return get_ufunc("floor_divide")(self, other), get_ufunc("remainder")(self, other)


def _rdivmod(self, other):
    return get_ufunc("floor_divide")(other, self), get_ufunc("remainder")(other, self)


ndarray.__pow__, ndarray.__rpow__, ndarray.__ipow__ = _pow, _rpow, _ipow
ndarray.__divmod__, ndarray.__rdivmod__ = _divmod, _rdivmod
ndarray.__neg__ = lambda self: get_ufunc("negative")(self)
ndarray.__pos__ = lambda self: get_ufunc("positive")(self)
ndarray.__abs__ = lambda self: get_ufunc("absolute")(self)
ndarray.__invert__ = lambda self: get_ufunc("invert")(self)


def _compare(ufunc_name):
    def op(self, other):
        if isinstance(other, numpy.ndarray) and other.ndim == 0:
            other = other.item()
        if other is None or not isinstance(other, (ndarray, numpy.ndarray, _SCALAR_TYPES)):
            if ufunc_name == "equal":
                return _wrap(numpy.zeros(self.shape, dtype=bool))
            if ufunc_name == "not_equal":
                return _wrap(numpy.ones(self.shape, dtype=bool))
            return NotImplemented
        return get_ufunc(ufunc_name)(self, other)

    return op


for _name, _uf in [
    ("lt", "less"),
    ("le", "less_equal"),
    ("eq", "equal"),
    ("ne", "not_equal"),
    ("gt", "greater"),
    ("ge", "greater_equal"),
]:
    setattr(ndarray, f"__{_name}__", _compare(_uf))


def _method(name):
    def m(self, *args, **kwargs):
        if name in _DATA_DEPENDENT_SIZE:
            _sync("data_dependent_size")
        parents = [self] + _parents(args, kwargs)
        out = kwargs.get("out")
        r = getattr(self._a, name)(*_unwrap(args), **_unwrap(kwargs))
        if isinstance(out, ndarray):
            return out
        return _wrap(r, parents)

    m.__name__ = name
    return m


# Methods real cupy.ndarray has that behave as NumPy's (modulo the device rules).
for _name in [
    "all",
    "any",
    "argmax",
    "argmin",
    "argpartition",
    "argsort",
    "choose",
    "clip",
    "compress",
    "conj",
    "conjugate",
    "cumprod",
    "cumsum",
    "diagonal",
    "flatten",
    "max",
    "mean",
    "min",
    "nonzero",
    "partition",
    "prod",
    "ptp",
    "put",
    "ravel",
    "repeat",
    "round",
    "searchsorted",
    "sort",
    "squeeze",
    "std",
    "sum",
    "swapaxes",
    "take",
    "trace",
    "transpose",
    "var",
]:
    if _name == "ptp":

        def _ptp(self, axis=None, out=None, keepdims=False):
            return _wrap(numpy.ptp(self._a, axis=axis, keepdims=keepdims))

        ndarray.ptp = _ptp
        continue
    setattr(ndarray, _name, _method(_name))

_NDARRAY_NAMES = frozenset(standin_names.CLASSES["cupy.ndarray"])
_CUPY_FUNCS = frozenset(standin_names.MODULES["cupy"])

ndarray.__module__ = "cupy"
ndarray.__qualname__ = ndarray.__name__ = "ndarray"
ufunc.__module__ = "cupy._core._kernel"

_extra = set(n for n in vars(ndarray) if not n.startswith("_")) - _NDARRAY_NAMES
assert not _extra, f"stand-in ndarray has names real CuPy lacks: {_extra}"
