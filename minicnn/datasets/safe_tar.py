"""Extracting a tar archive without letting it write outside its folder (no links, no ``..``, no devices)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from .errors import DatasetError


def _check_member(member: tarfile.TarInfo, archive) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DatasetError(f"{archive}: refusing unsafe path {name!r} (absolute or with '..')")
    if not (member.isfile() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        raise DatasetError(f"{archive}: refusing {kind} {name!r}: only regular files and folders are extracted")


def extract_tar_safely(archive, dest_dir):
    """Extract a tar(.gz) into ``dest_dir``, refusing absolute paths, ``..``, links and devices.

    Every member is checked before anything is written; files go to a temporary folder
    first and are moved into place at the end, so a refused or broken archive leaves
    ``dest_dir`` as it was. The archive is read to its end before that: gzip checks its
    CRC-32 of the whole content there, so damaged bytes are refused, never extracted.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, archive)
                for member in members:
                    target = staging / member.name
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                while tar.fileobj.read(1 << 20):  # to the end, where gzip checks its CRC-32 of everything
                    pass
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from None
        for top in staging.iterdir():
            final = dest_dir / top.name
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            os.replace(top, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
