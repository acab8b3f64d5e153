"""Out of memory: recognising a failed allocation on NumPy or CuPy, and what to tell the user."""

from __future__ import annotations

import re


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` is a failed allocation: NumPy's ``MemoryError``, CuPy's
    ``cupy.cuda.memory.OutOfMemoryError``, or a CUDA/cuBLAS allocation error. CuPy's
    classes are recognised by name and module, so asking never imports CuPy."""
    if isinstance(exc, MemoryError):
        return True
    if not _raised_by_cupy(exc):
        return False
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return any(s in str(exc) for s in ("ALLOC_FAILED", "cudaErrorMemoryAllocation", "out of memory"))


def _raised_by_cupy(exc: BaseException) -> bool:
    """True when ``exc``'s class comes from CuPy (by module name: asking never imports CuPy)."""
    return any(cls.__module__.split(".", 1)[0] in ("cupy", "cupy_backends") for cls in type(exc).__mro__)


def requested_bytes(exc: BaseException) -> int | None:
    """The size of the allocation that failed, when the error says it: CuPy's "Out of memory
    allocating 1,234 bytes", NumPy's "Unable to allocate 3.00 GiB"; else None."""
    text = str(exc)
    m = re.search(r"allocating ([\d,]+) bytes", text)
    if m:
        return int(m.group(1).replace(",", ""))
    m = re.search(r"Unable to allocate ([\d.]+) (B|KiB|MiB|GiB|TiB|PiB|EiB)", text)
    if m:
        return int(float(m.group(1)) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(m.group(2)))
    return None


def describe_out_of_memory(exc: BaseException, batch_size: int) -> str:
    """What to tell the user when a batch did not fit: the batch size, the memory asked for, advice."""
    asked = requested_bytes(exc)
    where = "GPU memory" if _raised_by_cupy(exc) else "memory"
    return (
        f"out of {where} with batches of {batch_size}"
        + (f" (asked for {asked / 2**20:,.1f} MiB more)" if asked else "")
        + f": {exc}; try a smaller batch size, e.g. {max(1, batch_size // 2)}, in a new run "
        "(a resumed run keeps its batch size)"
    )
