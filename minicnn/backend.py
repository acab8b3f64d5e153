"""One array backend for the whole library: NumPy on the CPU, CuPy on a GPU.

The rule, everywhere in minicnn:

* **create** arrays with the current backend (``get_backend().xp.zeros(...)``,
  ``get_backend().asarray(host_array)``): parameters, optimizer slots, batches;
* **compute** with the module that owns the operand (``xp = get_array_module(x)``, as
  Chainer does), so one expression runs on NumPy and CuPy arrays alike;
* **cross** between device and host only through this module: :func:`to_numpy` for a
  host copy (printing, plotting, saving), :func:`is_device_array` to ask where an array
  lives. Each such copy of a device array waits for the GPU, so the training step
  makes none except where a number is shown.

This is the only module that imports CuPy, and only when it is asked for, so
``import minicnn`` works on a machine without it. The GPU-only corners of other
modules (NCCL, device selection, CUDA streams) ask :func:`cupy_module` for it.
"""

from __future__ import annotations

import os

import numpy as np

from . import _moved

_GPU_INSTALL_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install -e .[gpu]` (cupy-cuda12x) or `pip install cupy-cuda13x`"
)


class BackendError(RuntimeError):
    """The requested backend cannot be used on this machine."""


class Backend:
    """An array module and the few helpers that differ between NumPy and CuPy.

    Attributes:
        name: ``"numpy"`` or ``"cupy"``.
        xp:   the array module (``numpy`` or ``cupy``).
    """

    def __init__(self, name: str, xp):
        self.name = name
        self.xp = xp

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def asarray(self, a, dtype=None):
        """Move ``a`` to this backend's device (a no-op when it is there already)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        """:func:`to_numpy` (kept as a method: the contract names ``get_backend().to_numpy``)."""
        return to_numpy(a)

    def rng(self, seed):
        """A random generator living on this device, for dropout masks.

        ``seed`` is an int; the same seed gives the same stream of masks.
        """
        if self.name == "numpy":
            return np.random.default_rng(seed)
        return self.xp.random.RandomState(seed)

    def uniform(self, rng, shape, dtype):
        """Uniform samples in [0, 1) of ``shape`` and ``dtype``, drawn from ``rng``."""
        if self.name == "numpy":
            return rng.random(shape, dtype=dtype)
        return rng.random_sample(shape, dtype=dtype)

    def device_name(self) -> str:
        """The GPU's name on CuPy (e.g. ``"NVIDIA H100 80GB HBM3"``), the CPU's on NumPy."""
        if self.name == "cupy":
            props = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
            name = props["name"]
            return name.decode() if isinstance(name, bytes) else str(name)
        return cpu_model()

    def versions(self) -> dict:
        """The versions a run's record should name: minicnn, Python, NumPy (and CuPy and the GPU)."""
        import platform

        from ._version import __version__

        info = {"minicnn": __version__, "numpy": np.__version__, "python": platform.python_version()}
        if self.name == "cupy":
            info.update(cupy=self.xp.__version__, gpu=self.device_name())
        return info

    def synchronize(self):
        """Wait for queued device work (used only by timers and benchmarks)."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def cpu_model() -> str:
    """The CPU's model name: from /proc/cpuinfo on Linux, else what ``platform`` says."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def is_device_array(a) -> bool:
    """True when ``a`` is a CuPy (GPU) array; asked without importing CuPy."""
    return type(a).__module__.split(".", 1)[0] == "cupy"


def to_numpy(a, out=None):
    """``a`` (NumPy, CuPy, scalar or list) as a NumPy array on the host, for printing,
    plotting and saving. A device array is copied (into ``out`` when given), which
    waits for the GPU to finish the work that writes it."""
    if is_device_array(a):
        return a.get(out=out)
    if out is not None:
        out[...] = a
        return out
    return np.asarray(a)


def cupy_module():
    """The ``cupy`` module itself, for GPU-only code paths (streams, devices, NCCL).

    Raises :class:`BackendError` with the install hint where CuPy is missing.
    """
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(f"backend 'cupy' needs CuPy, which is not installed: {_GPU_INSTALL_HINT}") from exc
    return cupy


def cupy_nccl():
    """``cupy.cuda.nccl`` when CuPy was built with NCCL and finds it, else None."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def cupy_cublas():
    """``cupy.cublas``, CuPy's wrappers of cuBLAS (a submodule ``import cupy`` does not load)."""
    cupy_module()  # the install hint where CuPy is missing
    import cupy.cublas

    return cupy.cublas


_NUMPY = Backend("numpy", np)
_CUPY: Backend | None = None  # made once, like _NUMPY: Dropout compares backends by identity
_current: Backend | None = None
_on_cupy_selected: list = []  # calls f(cupy) each time CuPy is selected (the distributed room pins a GPU)


def _cupy_backend() -> Backend:
    global _CUPY
    cupy = cupy_module()
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device, broken CUDA install
        raise BackendError(
            f"backend 'cupy': CuPy is installed but no usable GPU was found ({exc}); "
            f"use the NumPy backend (set_backend('numpy')), or {_GPU_INSTALL_HINT}"
        ) from exc
    if n < 1:
        raise BackendError("backend 'cupy': CuPy is installed but no GPU was found; use the numpy backend")
    if _CUPY is None or _CUPY.xp is not cupy:
        _CUPY = Backend("cupy", cupy)
    for hook in _on_cupy_selected:
        hook(cupy)
    return _CUPY


def set_backend(name: str) -> Backend:
    """Select the array backend: ``"numpy"``, ``"cupy"`` or ``"auto"``.

    ``"auto"`` picks CuPy when it is installed and a GPU is usable, else NumPy.
    Returns the selected :class:`Backend`. Models keep their arrays where they were
    built, so choose the backend before building a model.
    """
    global _current
    if not isinstance(name, str) or name.lower() not in ("numpy", "cupy", "auto"):
        raise ValueError(f"backend must be 'numpy', 'cupy' or 'auto', got {name!r}")
    name = name.lower()
    if name == "numpy":
        _current = _NUMPY
    elif name == "cupy":
        _current = _cupy_backend()
    else:
        try:
            _current = _cupy_backend()
        except BackendError:
            _current = _NUMPY
    return _current


def get_backend() -> Backend:
    """The current backend; the first call honours ``$MINICNN_BACKEND`` (default ``numpy``)."""
    if _current is None:
        return set_backend(os.environ.get("MINICNN_BACKEND", "numpy"))
    return _current


def get_array_module(*arrays):
    """The array module (numpy or cupy) that owns ``arrays``, without importing CuPy."""
    for a in arrays:
        if type(a) is not np.ndarray and is_device_array(a):  # a NumPy array, told at once: called per kernel
            return cupy_module()
    return np


def cupy_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    try:
        _cupy_backend()
        return True
    except BackendError:
        return False


def clear_session() -> None:
    """Keras's ``clear_session()``: forget what earlier models left behind. minicnn keeps no global
    graph or layer-name counter (names are numbered per model), so this frees memory: Python's
    garbage, and on CuPy its memory pools (a GPU keeps freed blocks for reuse otherwise)."""
    import gc

    gc.collect()
    if _current is not None and _current.name == "cupy":
        cupy = cupy_module()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


# Moved in 0.3.0 to the rooms of the tools that use them; the old names still work.
_MOVED = {
    "is_out_of_memory": "minicnn.run.memory",
    "requested_bytes": "minicnn.run.memory",
    "describe_out_of_memory": "minicnn.run.memory",
    "pin_local_gpu": "minicnn.distributed.devices",
}


__getattr__ = _moved.names_from(__name__, _MOVED)
