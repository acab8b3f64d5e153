"""``cupy.cuda`` stand-in: one pretend device, streams whose ``synchronize`` is a counted sync,
and a memory pool that only keeps the API (it does not limit or track memory)."""

import standin_names as _names

from . import device, memory, runtime, stream  # noqa: F401
from .device import Device, get_device_id  # noqa: F401
from .memory import MemoryPool, PinnedMemoryPool  # noqa: F401
from .stream import Stream, get_current_stream  # noqa: F401


def is_available():
    return True


def __getattr__(name):
    if name in _names.MODULES["cupy.cuda"] or name in ("nccl", "cudnn", "cutensor", "nvtx"):
        # AttributeError also makes `from cupy.cuda import nccl` an ImportError, as on a CuPy without NCCL.
        raise AttributeError(f"cupy stand-in: cupy.cuda.{name} exists in real CuPy but is not implemented")
    raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")
