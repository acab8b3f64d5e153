"""Module-level ``__getattr__`` for the stand-in's modules: real CuPy's names only."""

from __future__ import annotations

import inspect

import numpy
import standin_names

from .core import delegate, get_ufunc


def make_getattr(modname, namespace, numpy_module):
    """A module ``__getattr__`` that builds NumPy-backed versions of real CuPy names on first use."""
    allowed = frozenset(standin_names.MODULES.get(modname, ()))
    aliases = frozenset(standin_names.NUMPY_ALIASES) if modname == "cupy" else frozenset()

    def __getattr__(name):
        if name not in allowed:
            raise AttributeError(f"module {modname!r} has no attribute {name!r}")
        if name in aliases:
            obj = getattr(numpy, name)  # e.g. cupy.float32 is numpy.float32
        elif isinstance(getattr(numpy_module, name, None), numpy.ufunc):  # real: cupy.ufunc (matmul: a gufunc)
            obj = get_ufunc(name)
        else:
            npobj = getattr(numpy_module, name, None)
            if npobj is not None and (
                inspect.isfunction(npobj)
                or inspect.isbuiltin(npobj)
                or type(npobj).__name__ == "_ArrayFunctionDispatcher"
            ):
                obj = delegate(f"{modname}.{name}", npobj)
            else:
                raise AttributeError(
                    f"cupy stand-in: {modname}.{name} exists in real CuPy "
                    f"{standin_names.CUPY_VERSION} but the stand-in does not implement it"
                )
        namespace[name] = obj
        return obj

    def __dir__():
        return sorted(allowed | {n for n in namespace if not n.startswith("_")})

    return __getattr__, __dir__
