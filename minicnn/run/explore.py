"""``--explore``: the explorer watching ``--out`` while the training runs.

It runs as a process of its own (``python -m minicnn.explore OUT --watch``), at a lower CPU priority:
its reloads and predictions never hold the training's interpreter lock, and a failure there never
stops the training. It starts before the first epoch and stops when the script ends, saying so and
how to look at the finished run again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ADDRESS_WAIT_S = 120  # the explorer loads the test set before it listens: seconds on a slow disk


def _lower_priority() -> None:
    """In the explorer's process, before it starts: yield the CPU to the training, and (Linux) be
    sent SIGTERM when the training process dies, even by SIGKILL, so no explorer is left behind."""
    with contextlib.suppress(OSError):
        os.nice(10)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def explorer_command(out, port: int, data_dir) -> list[str]:
    """``python -m minicnn.explore OUT --watch ...``: the command ``--explore`` runs."""
    from ..datasets.cifar10 import default_data_dir

    data = Path(data_dir).expanduser() if data_dir else default_data_dir()  # searched as the training searched it
    command = [sys.executable, "-m", "minicnn.explore", str(out), "--watch", "--port", str(port), "--quiet"]
    return command + ["--data-dir", str(data)]


def _drain(stream, lines: queue.Queue) -> None:
    """Read the explorer's output to its end (a full pipe would stall it); hand each line on."""
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def explorer_beside(out, port: int, data_dir=None, say=print):
    """The explorer watching ``out`` while the block runs; yields its address (None when it could not start)."""
    command = explorer_command(out, port, data_dir)
    posix = os.name == "posix"
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=_lower_priority if posix else None)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True).start()
    address = None
    with contextlib.suppress(queue.Empty):
        while (line := lines.get(timeout=ADDRESS_WAIT_S)) is not None:
            if line.startswith("open http"):
                address = line.split()[1]
                break
    if address is None:
        say(f"warning: the explorer did not start ({' '.join(command)}); training goes on without it")
    else:
        say(f"explorer: {address} follows this run (its page refreshes after every epoch); it stops with the script")
        sys.stdout.flush()  # the address is for now, even when the output goes to a pipe
    try:
        yield address
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the explorer stops as on Ctrl-C
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if address is not None:
            again = " ".join(["python -m minicnn.explore", str(out), *command[-2:]])
            say(f"explorer stopped with the training; to look at the run again: {again}")
