"""The module names of minicnn 0.2, kept working after 0.3.0 moved the tools into rooms of their own
(``minicnn.checkpoint`` is now ``minicnn.run.checkpoint``): importing an old name gives the very
module of the new one, so classes and state are never duplicated."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "minicnn.callbacks": "minicnn.run.callbacks",
    "minicnn.checkpoint": "minicnn.run.checkpoint",
    "minicnn.outputs": "minicnn.run.outputs",
    "minicnn.interrupts": "minicnn.run.interrupts",
    "minicnn.recipes": "minicnn.run.recipes",
    "minicnn.schedules": "minicnn.run.schedules",
    "minicnn.tta": "minicnn.run.tta",
    "minicnn.whitening": "minicnn.run.whitening",
    "minicnn.parallel": "minicnn.distributed.threads",
    "minicnn.gpu_transports": "minicnn.distributed.transports",
    "minicnn.devices": "minicnn.distributed.devices",
    "minicnn.h5guard": "minicnn.interop.h5guard",
    "minicnn.h5guard_helper": "minicnn.interop.h5guard_helper",
    "minicnn.model_files": "minicnn.interop.model_files",
}


def new_name(name: str) -> str | None:
    """Where the module once called ``name`` (or a submodule of it) lives now; None if it never moved."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder first in ``sys.meta_path``: an old name is answered with the new module itself."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if new_name(name) else None

    def create_module(self, spec):
        return importlib.import_module(new_name(spec.name) or spec.name)

    def exec_module(self, module) -> None:
        pass  # the new module already ran


def names_from(package: str, where: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that finds each name of ``where`` in its module on first
    use (``{"save_onnx": ".onnx_export"}``, relative to ``package``, or absolute), so that importing the
    package loads none of them."""

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def install() -> None:
    if not any(isinstance(f, OldNames) for f in sys.meta_path):
        sys.meta_path.insert(0, OldNames())
