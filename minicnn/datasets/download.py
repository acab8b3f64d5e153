"""Downloading a file with a progress bar, atomically, and checking its MD5."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ..training import effective_verbose
from .errors import DatasetError


def file_md5(path, chunk=1 << 20) -> str:
    """The MD5 of the file at ``path`` as 32 hex digits, read ``chunk`` bytes at a time."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_md5(path, expected: str):
    """Raise :class:`DatasetError` naming both sums unless the file's MD5 is ``expected``."""
    got = file_md5(path)
    if got != expected.lower():
        raise DatasetError(
            f"{path}: MD5 is {got}, expected {expected.lower()} — the file is corrupt, "
            f"incomplete or not the official release (delete it to download again)"
        )


def download_file(url: str, dest, md5: str | None, progress=True):
    """Fetch ``url`` to ``dest`` through a temporary file, renamed only once complete and verified.

    A cut-off transfer (fewer bytes than the server announced) or a wrong MD5 raises
    :class:`DatasetError` and leaves no ``dest`` behind. (Its own temporary file, not
    :func:`minicnn.run.outputs.write_atomic`: a download's failures are :class:`DatasetError`, not a
    run's :class:`~minicnn.run.outputs.OutputError`, and the MD5 is checked before the rename.)
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.md5()
    received = 0
    try:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except Exception as exc:
            raise DatasetError(f"cannot download {url}: {exc}") from None
        with response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"Downloading {dest.name}",
                disable=not progress or effective_verbose(1) != 1,
                leave=False,
            ) as bar:  # no bar in a log
                while True:
                    try:
                        block = response.read(1 << 16)
                    except Exception as exc:  # connection dropped mid-way
                        raise DatasetError(f"download of {url} failed after {received} bytes: {exc}") from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    received += len(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise DatasetError(f"download of {url} was cut off: got {received} of {total} bytes")
        if md5 is not None and h.hexdigest() != md5.lower():
            raise DatasetError(f"download of {url}: MD5 is {h.hexdigest()}, expected {md5.lower()}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
