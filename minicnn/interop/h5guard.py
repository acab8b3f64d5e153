"""Reading HDF5 in a helper process, so that a damaged file can neither hang nor crash the caller.

libhdf5 trusts a file's inner structure. A damaged file can send it into an endless loop (a
zeroed range under the variable-length string attribute ``model_config`` of a Keras ``.h5``
did) or crash it, deep in C code where no Python signal or thread can stop it. So minicnn
opens no HDF5 file in its own process: a helper process reads the file into plain arrays and
sends them back, under a time limit; past the limit the helper is killed and the file refused::

    caller                                    helper (h5guard_helper.py: NumPy and h5py only)
    read_hdf5(path or bytes) -- request -->   h5py.File: every attribute and dataset
    Group (plain, in memory) <-- arrays --   (members named in ``skip`` left out)

The helper starts on the first read (it pays the import of NumPy and h5py once) and serves the
later ones; it exits when the program does, or with :func:`stop`. The limit is ``READ_SECONDS``
plus a second per ``BYTES_PER_SECOND`` of file, counted from the moment the helper is ready.
The helper's side of the conversation is :mod:`minicnn.interop.h5guard_helper`.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading

import numpy as np

from .h5guard_helper import recv, send

READ_SECONDS = 5.0  # for any file; a good Keras file is read in milliseconds
BYTES_PER_SECOND = 20e6  # more time for big files: a slow disk reads at least this fast
EXPANSION = 16  # the arrays may hold at most this many times the file's bytes (plus 64 MiB): compressed
# datasets can claim any size, and a Keras file's weights hardly compress
STARTUP_SECONDS = 120.0  # starting Python and importing h5py, on a busy machine


class HDF5ReadError(ValueError):
    """An HDF5 file the helper could not read: damaged, not done within the limit, or it crashed the reader."""


class Group:
    """An HDF5 group read into memory, used as an h5py Group is: ``attrs`` (a dict), members by
    name or ``"a/b"`` path (groups, or datasets as NumPy arrays), iterated in the file's order."""

    def __init__(self, name: str):
        self.name = name
        self.attrs: dict = {}
        self.members: dict = {}

    def get(self, key, default=None):
        node = self
        for part in str(key).strip("/").split("/"):
            if not isinstance(node, Group) or part not in node.members:
                return default
            node = node.members[part]
        return node

    def __getitem__(self, key):
        node = self.get(key, _MISSING)
        if node is _MISSING:
            raise KeyError(f"{key!r} is not in HDF5 group {self.name!r}")
        return node

    def __contains__(self, key) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __enter__(self):  # so that ``with read_hdf5(...) as f:`` reads as ``with h5py.File(...) as f:``
        return self

    def __exit__(self, *exc):
        return False


_MISSING = object()


def read_hdf5(source: str | os.PathLike | bytes, skip: tuple[str, ...] = ()) -> Group:
    """Read a whole HDF5 file (a path, or the file's bytes) in the helper process: its root :class:`Group`.

    ``skip`` names top-level members not to read (e.g. optimizer state the caller ignores).

    Raises:
        HDF5ReadError: the file is damaged (the message is h5py's), its read did not end within
            the limit (the helper was killed), or it crashed the helper.
        OSError: ``source`` is a path that cannot be opened.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path, payload = None, bytes(source)
    else:
        path, payload = os.path.abspath(source), b""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
    size = len(payload) if path is None else os.path.getsize(path)
    limit = READ_SECONDS + size / BYTES_PER_SECOND
    budget = EXPANSION * size + 64 * 2**20
    request = {"path": path, "skip": list(skip), "alarm": int(limit) + 30, "max_bytes": budget}
    with _lock:
        kind, data = _helper().ask(json.dumps(request).encode(), payload, limit)
    if kind == b"E":
        raise HDF5ReadError(data.decode("utf8", "replace"))
    return _rebuild(data)


def stop() -> None:
    """End the helper process, if one runs (the next read starts a fresh one)."""
    global _reader
    with _lock:
        if _reader is not None and _reader.owner == os.getpid():
            _reader.stop(gently=True)
        _reader = None


# ==== the caller's side ===================================================================
_lock = threading.Lock()
_reader: _Helper | None = None

# The helper runs h5guard_helper.py by its path, not the package, with the caller's sys.path (h5py where it was).
_HELPER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h5guard_helper.py")
_BOOT = (
    "import importlib.util, json, sys\n"
    "sys.path[:] = json.loads(sys.argv[2])\n"
    "spec = importlib.util.spec_from_file_location('minicnn_h5guard_helper', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module.serve()\n"
)


def _helper() -> _Helper:
    """The running helper, or a fresh one (after a kill, a crash, or in a forked child process)."""
    global _reader
    if _reader is None or _reader.owner != os.getpid() or _reader.proc.poll() is not None:
        if _reader is not None and _reader.owner == os.getpid():
            _reader.stop()
        _reader = _Helper()
    return _reader


class _Helper:
    """The helper process, and a thread that collects its replies (so that waiting can time out)."""

    def __init__(self):
        self.owner = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _HELPER_FILE, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # h5py's and Python's complaints about a damaged file: the reply has them
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._collect, daemon=True).start()
        late, crashed = (
            "the HDF5 reader did not start within {limit:.3g} s",
            "the HDF5 reader failed to start ({status})",
        )
        kind, data = self._reply(STARTUP_SECONDS, late, crashed)
        if kind != b"R":
            self.stop()
            raise HDF5ReadError(f"the HDF5 reader process could not start: {data.decode('utf8', 'replace')}")

    def _collect(self):
        while True:
            try:
                frame = recv(self.proc.stdout)
            except (OSError, ValueError):  # the pipe closed under us: the helper was stopped
                frame = None
            self.replies.put(frame)
            if frame is None:
                return

    def ask(self, request: bytes, payload: bytes, limit: float) -> tuple[bytes, bytearray]:
        try:
            send(self.proc.stdin, b"Q", request)
            send(self.proc.stdin, b"D", payload)
            return self._reply(
                limit,
                "not read within {limit:.3g} s, so its reader was stopped: damaged inner structures "
                "can send libhdf5 into an endless loop",
                "the HDF5 library crashed reading it (exit status {status})",
            )
        except OSError:  # the helper died between two reads
            self.stop()
            raise HDF5ReadError("the HDF5 reader process ended unexpectedly; try again") from None
        except BaseException:  # Ctrl-C while it reads: a reply may still come, so this helper is done
            self.stop()
            raise

    def _reply(self, limit: float, late: str, crashed: str) -> tuple[bytes, bytearray]:
        try:
            frame = self.replies.get(timeout=limit)
        except queue.Empty:
            self.stop()
            raise HDF5ReadError(late.format(limit=limit)) from None
        if frame is None:
            raise HDF5ReadError(crashed.format(status=self.stop()))
        return frame

    def stop(self, gently: bool = False) -> int:
        """End the process and reap it (no zombie); the exit status."""
        if gently and self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the helper's loop ends at end of input
                return self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        status = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        return status


@atexit.register
def _at_exit():  # without the lock: a daemon thread may hold it, mid-read, as the program ends
    if _reader is not None and _reader.owner == os.getpid():
        _reader.stop(gently=True)


def _rebuild(data: bytearray) -> Group:
    """The helper's reply (an index of the nodes in JSON, then the arrays' bytes) -> the root Group."""
    try:
        size = int.from_bytes(data[:8], "little")
        nodes, specs = json.loads(bytes(data[8 : 8 + size]))
        start = 8 + size
        arrays = [
            np.frombuffer(data, np.dtype(descr), int(np.prod(shape)), start + offset).reshape(shape)
            for descr, shape, offset in specs
        ]
    except (TypeError, ValueError) as exc:
        raise HDF5ReadError(f"the HDF5 reader sent back an unreadable reply ({exc})") from None
    root = Group("/")
    for node in nodes:
        parent_path, _, name = node["path"].rpartition("/")
        parent = root.get(parent_path) if parent_path else root
        if node["kind"] == "dataset":
            parent.members[name] = _value(arrays[node["data"]])
            continue
        group = root if not node["path"] else Group("/" + node["path"])
        group.attrs = {attr: _value(arrays[i]) for attr, i in node["attrs"]}
        if node["path"]:
            parent.members[name] = group
    return root


def _value(array: np.ndarray):
    """As h5py hands it over: a 0-d array as its scalar (str, bytes or a number), others as arrays."""
    if array.ndim:
        return array
    return str(array[()]) if array.dtype.kind == "U" else array[()]
