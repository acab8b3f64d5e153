"""Writing a run's files so that a full disk or a read-only folder stops it cleanly.

Every file is written whole or not at all (:func:`write_atomic`: a temporary file in the
same folder, flushed to disk, then renamed over the target), so a failure at any moment
leaves the previous version in place and no temporary behind. A failed write raises
:class:`OutputError`, which names the file and the cause (``ENOSPC``, ``EACCES``, ``EROFS``,
...) and says what to do. :func:`check_writable` finds out before a run starts, not an hour
into it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

_ADVICE = {
    errno.ENOSPC: "the file system is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "no permission to write there: choose a folder you can write to",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file of that name is in the way of the folder: choose another path",
}


class OutputError(OSError):
    """A file could not be written. ``path``, ``errno``, ``strerror`` and the message name the cause."""

    def __init__(self, path, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = Path(path)

    def __str__(self):
        code = f" ({errno.errorcode[self.errno]})" if self.errno is not None and self.errno in errno.errorcode else ""
        advice = _ADVICE.get(self.errno) if self.errno is not None else None
        return f"cannot write {self.path}: {self.strerror}{code}" + (f"; {advice}" if advice else "")


@contextlib.contextmanager
def writing(path):
    """Turn an ``OSError`` raised inside the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(path, exc) from exc


def write_atomic(path, write, mode="wb"):
    """Write ``path`` through ``write(file)`` so that it is always whole.

    The data goes to a temporary file in the same folder, is flushed to disk, and only then
    renamed over ``path``: a rename within one file system is atomic, so a crash, a signal or
    a full disk at any moment leaves the old file or the new one, never half of one, and the
    temporary file is removed. An ``OSError`` becomes :class:`OutputError`.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
            with os.fdopen(fd, mode, newline=None if "b" in mode else "") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            # Covers KeyboardInterrupt too: never leave a stray temporary behind.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_text(path, text: str):
    """:func:`write_atomic` for a text file (``summary.txt``, ``metrics.json``)."""
    write_atomic(path, lambda f: f.write(text), mode="w")


def check_writable(folder) -> Path:
    """Create ``folder`` if needed and prove it takes a file (written, flushed, deleted).

    Raises :class:`OutputError` naming the folder and the cause, before any work is done.
    """
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder))
        fd, probe = tempfile.mkstemp(prefix=".minicnn-probe-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return folder


RUN_FILES = ("model.npz", "history.csv")  # what a training run leaves in its folder


def run_files(folder) -> list[str]:
    """The files of a training run that ``folder`` already holds (``[]``: none, a fresh folder)."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def new_folders(path) -> list[Path]:
    """The folders of ``path`` (itself included) that do not exist yet, deepest first: what a run
    that creates ``path`` would leave behind, for :func:`remove_empty` if it stops before writing."""
    path, missing = Path(path).absolute(), []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(folders) -> None:
    """Remove each of ``folders`` (deepest first) that exists and is empty; keep any that holds a file."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
