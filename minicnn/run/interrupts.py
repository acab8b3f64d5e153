"""Signals that end a long run, handled like Ctrl-C.

Ctrl-C raises ``KeyboardInterrupt`` in Python; SIGTERM (``kill``, a cluster scheduler, a
laptop shutting down) and SIGHUP (the terminal closed) kill the process on the spot. Inside
:func:`signals_as_interrupts` all three raise :class:`Interrupted`, a ``KeyboardInterrupt``
that carries the signal, so one ``except KeyboardInterrupt`` keeps the last checkpoint and
says how to resume, whatever stopped the run; ``exit_code(exc)`` is 128 + the signal number
(130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), as a shell reports a process killed by it.

A checkpoint write interrupted this way removes its temporary file and leaves the previous
checkpoint whole (:func:`minicnn.run.checkpoint.write_checkpoint`).

Data-parallel runs (``defer=True``): an exception raised at an arbitrary moment on one rank
would leave the others waiting in a collective, so the handler only records the signal, and
:meth:`minicnn.distributed.Communicator.stop_if_interrupted` (called by every rank at each
training step and each sum) makes all ranks raise :class:`Interrupted` at the same step.
MPICH's ``mpiexec`` forwards SIGINT and SIGTERM to every rank; it does not forward SIGHUP
(it dies of it, and the ranks with it). A second signal while one is pending raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

# The signals handled by default (SIGHUP does not exist on Windows).
DEFAULT_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A signal asked the run to stop: ``signum``, ``name`` (``"SIGTERM"``), ``exit_code`` (128 + signum)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"stopped by {self.name}")

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``"SIGTERM"``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended (143 for SIGTERM)."""
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """The exit status for an interrupted run: 128 + the signal (a plain KeyboardInterrupt is SIGINT, 130)."""
    return getattr(exc, "exit_code", 128 + int(signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    """``"SIGTERM"`` for an :class:`Interrupted`, ``"SIGINT"`` (Ctrl-C) for a plain KeyboardInterrupt."""
    return getattr(exc, "name", "SIGINT")


_deferred: dict[str, Any] = {"active": False, "pending": None}


def pending_signal() -> int | None:
    """The signal recorded by a deferring :func:`signals_as_interrupts` and not acted on yet."""
    return _deferred["pending"]


def deferring() -> bool:
    """True inside ``signals_as_interrupts(defer=True)``."""
    return bool(_deferred["active"])


@contextlib.contextmanager
def signals_as_interrupts(signals=DEFAULT_SIGNALS, *, defer=False):
    """Inside the block, ``signals`` raise :class:`Interrupted` (a ``KeyboardInterrupt``).

    With ``defer=True`` a signal is only recorded (:func:`pending_signal`), for code that
    must stop at an agreed point (data-parallel training); a second one raises at once.
    A signal that is ignored when the block starts (``nohup`` ignores SIGHUP) stays ignored,
    and the previous handlers come back when the block ends. Outside the main thread, where
    Python cannot install handlers, the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if defer and _deferred["pending"] is None:
            _deferred["pending"] = signum
            return
        raise Interrupted(signum)

    previous = {}
    _deferred.update(active=defer, pending=None)  # before the handlers: a signal that comes
    try:  # while they are installed is kept
        for s in signals:
            old = signal.getsignal(s)
            if old is signal.SIG_IGN:
                continue
            previous[s] = old
            signal.signal(s, handler)
        yield
    finally:
        _deferred.update(active=False, pending=None)
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
