"""Loads in a child process, so that a loader that crashes, hangs or eats memory fails one test, not pytest.

A file made to hurt can take the interpreter down with it (a segfault in C code cannot be caught)
or spin in C where no signal reaches Python. So the tests that feed loaders hostile bytes ask a
child process to do the load::

    child = LoaderChild(env={"HOME": str(tmp_path)})
    result = child.call("crafted_files", "load_batch", str(path))   # module and function in tests/
    assert result.outcome == "refused" and result.error == "DatasetError"

The child imports the module, calls the function with the arguments and answers with what
happened: ``returned`` (the value's digest: keys, dtypes, shapes and bytes, so values can be
compared across processes), ``refused`` (the exception's class, its bases and message), or, seen
from the parent, ``crashed`` (the child died; its signal) or ``hung`` (no answer within the time
limit; the child is killed). A crashed or hung child is replaced by a fresh one for the next call.

Memory: the child caps its own address space at what it uses once started plus ``memory_mb``
(``RLIMIT_AS``), so a load that tries to allocate more gets ``MemoryError`` (reported as
``refused`` with that class, which no test accepts) instead of swapping the machine.

Run as a script, this file is the child's side: one JSON request a line on stdin, one reply a
line on stdout.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent


@dataclass
class Result:
    outcome: str  # "returned", "refused", "crashed" or "hung"
    error: str = ""  # the exception's class (refused), e.g. "DatasetError"
    bases: list = field(default_factory=list)  # its classes, most derived first
    message: str = ""
    digest: str = ""  # of the returned value (returned)
    value: object = None  # the returned value, when it is JSON-able
    seconds: float = 0.0
    grew_mb: float = 0.0  # the child's peak resident memory, beyond what it held before the call

    def is_refusal(self, error: str) -> bool:
        return self.outcome == "refused" and error in self.bases


def digest(value) -> str:
    """A digest of a load's result: arrays by dtype, shape and bytes; everything else by its JSON."""
    import numpy as np

    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(f"[{len(v)}".encode())
            for item in v:
                feed(item)
        elif isinstance(v, np.ndarray):
            h.update(f"{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()


class LoaderChild:
    """A worker process that runs loads on request (see the module's docstring)."""

    def __init__(self, env: dict | None = None, memory_mb: int = 400, seconds: float = 60.0):
        self.env, self.memory_mb, self.seconds = env or {}, memory_mb, seconds
        self.proc: subprocess.Popen | None = None

    def _start(self):
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(TESTS),
        )

    def call(self, module: str, function: str, *args, seconds: float | None = None) -> Result:
        """Run ``module.function(*args)`` in the child (args and a JSON-able return travel as JSON)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        limit = self.seconds if seconds is None else seconds
        self.proc.stdin.write((json.dumps({"module": module, "function": function, "args": args}) + "\n").encode())
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=limit + 30)  # + the child's start (imports), paid once
        if not ready:
            self.close()
            return Result("hung", message=f"no answer within {limit + 30:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
            return Result("crashed", message=f"the child died ({name})")
        reply = json.loads(line)
        if reply["seconds"] > limit:
            return Result("hung", message=f"answered after {reply['seconds']:.1f} s, over the {limit} s limit")
        return Result(**reply)

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the child's side ---------------------------------------------------------------------------------
def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cap_memory(extra_mb: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + extra_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):  # not Linux: no cap, the time limit still holds
        pass


def serve(memory_mb: int) -> None:
    import faulthandler

    import numpy  # noqa: F401  (imported before the cap: what every load needs anyway)

    import minicnn  # noqa: F401

    faulthandler.enable()  # a crash prints where it happened (to stderr: pytest shows it)
    _cap_memory(memory_mb)
    out = sys.stdout
    sys.stdout = sys.stderr  # a loader's print must not garble the replies
    for line in sys.stdin:
        request = json.loads(line)
        before, start = _peak_mb(), time.perf_counter()
        try:
            value = getattr(importlib.import_module(request["module"]), request["function"])(*request["args"])
            try:
                plain = json.loads(json.dumps(value))
            except (TypeError, ValueError):
                plain = None
            reply = {"outcome": "returned", "digest": digest(value), "value": plain}
        except BaseException as exc:  # noqa: BLE001  (every failure is the answer, MemoryError included)
            bases = [c.__name__ for c in type(exc).__mro__]
            reply = {"outcome": "refused", "error": type(exc).__name__, "bases": bases, "message": str(exc)[:2000]}
        reply["seconds"] = time.perf_counter() - start
        reply["grew_mb"] = max(0.0, _peak_mb() - before)
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
