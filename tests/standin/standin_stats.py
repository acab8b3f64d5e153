"""Counters for the CuPy stand-in (tests/standin/cupy): host syncs and host-to-device copies.

Kept outside the ``cupy`` package so that ``cupy`` exposes only names real CuPy has.

A *sync* is anything that makes the host wait for the device and read its memory:
``.get()``, ``cupy.asnumpy``, ``float()``, ``int()``, ``complex()``, ``bool()``, ``.item()``,
``.tolist()``, ``.tobytes()``, ``repr``/``str``/``format``, pickling, and explicit
``Stream.synchronize()`` / ``Device.synchronize()`` / ``runtime.deviceSynchronize()``.
Iterating over a device array is *not* one: CuPy yields device views (``self[i]``), as the
stand-in does; converting those views is counted when it happens.

A *transfer* is a host-to-device copy: ``cupy.asarray``/``cupy.array`` of host data,
``.set(host)``, or indexing/assigning with host index arrays.

Usage in a test::

    from standin_stats import count_syncs
    with count_syncs() as c:
        model.train_step(x, y)
    assert c.total == 0, c.report()
"""

from __future__ import annotations

import collections
import contextlib
import traceback

_active: list[SyncCount] = []
_syncs: collections.Counter = collections.Counter()
_transfers: collections.Counter = collections.Counter()


class SyncCount:
    """What happened inside one ``count_syncs()`` block (live while the block runs)."""

    def __init__(self, trace: bool):
        self.by_kind: collections.Counter = collections.Counter()
        self.transfer_kinds: collections.Counter = collections.Counter()
        self.trace = trace
        self.tracebacks: list[tuple[str, str]] = []  # (kind, formatted stack), if trace

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def transfers(self) -> int:
        return sum(self.transfer_kinds.values())

    def report(self) -> str:
        lines = [
            f"{self.total} host sync(s) {dict(self.by_kind)}, "
            f"{self.transfers} host->device transfer(s) {dict(self.transfer_kinds)}"
        ]
        for kind, stack in self.tracebacks:
            lines.append(f"--- {kind} at:\n{stack}")
        return "\n".join(lines)

    def __repr__(self):
        return f"SyncCount(total={self.total}, by_kind={dict(self.by_kind)}, transfers={self.transfers})"


def _stack() -> str:
    frames = [f for f in traceback.extract_stack()[:-3] if "/tests/standin/" not in f.filename.replace("\\", "/")]
    return "".join(traceback.format_list(frames[-8:]))


def record_sync(kind: str):
    _syncs[kind] += 1
    if _active:
        stack = _stack() if any(c.trace for c in _active) else None
        for c in _active:
            c.by_kind[kind] += 1
            if c.trace:
                c.tracebacks.append((kind, stack))


def record_transfer(kind: str):
    _transfers[kind] += 1
    for c in _active:
        c.transfer_kinds[kind] += 1


@contextlib.contextmanager
def count_syncs(trace: bool = False):
    """Count the syncs and transfers made inside the block; ``trace=True`` keeps a stack for each sync."""
    c = SyncCount(trace)
    _active.append(c)
    try:
        yield c
    finally:
        _active.remove(c)


@contextlib.contextmanager
def sync_budget(max_syncs: int, what: str = "this block"):
    """Fail (AssertionError with the stack of every sync) if the block makes more than ``max_syncs`` syncs."""
    with count_syncs(trace=True) as c:
        yield c
    if c.total > max_syncs:
        raise AssertionError(f"{what} made {c.total} host syncs, budget {max_syncs}: {c.report()}")


def syncs() -> int:
    """Syncs since the last ``reset_syncs()`` (whole process)."""
    return sum(_syncs.values())


def sync_kinds() -> dict:
    return dict(_syncs)


def transfers() -> int:
    return sum(_transfers.values())


def reset_syncs():
    _syncs.clear()
    _transfers.clear()
