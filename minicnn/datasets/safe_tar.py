"""Extracting a tar archive that may have been made to hurt: its headers are checked before tarfile reads them.

Two passes over the (decompressed) stream:

1. :func:`scan_headers` walks the raw 512-byte headers itself, in Python, and refuses what
   ``tarfile`` would follow into trouble: negative or huge sizes (a negative size loops
   ``getmembers()`` for ever on CPython 3.11-3.13), pax records beyond a few KiB (a 200,000-digit
   number takes seconds to parse), sparse members (115 bytes that write a GiB), links, devices,
   global headers, absolute paths and ``..``, and more bytes or members than a data set needs
   (a few hundred KB of gzip can expand to gigabytes). The decompressed stream is capped as it is
   read, and read to its end, where gzip checks its CRC-32 of everything.
2. Only then ``tarfile`` extracts, in one streaming pass, into a temporary folder beside the
   destination; its entries are moved into place at the end, never over a folder or file the
   destination already holds (unless the caller names it as one to refresh), so a refused or
   broken archive leaves ``dest_dir`` as it was and never empties a folder of the user's.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, cast

from .errors import DatasetError

BLOCK = 512
# CIFAR-10's python archive holds 8 files, 177.6 MiB in all (uncompressed tar stream: 177.7 MiB);
# these caps leave about 40% of margin.
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 1000
MAX_META_BYTES = 8 * 1024  # one pax header or GNU long name
MAX_PADDING = 1024 * 1024  # zeros after the last member (writers pad to a record of 10 KiB, some to more)
STREAM_SLACK = 16 * 1024 * 1024  # headers and padding of up to MAX_MEMBERS members, beyond their data
FILE_TYPES = {b"0", b"\0", b"7"}  # regular (ustar, old tar, contiguous)
DIR_TYPE = b"5"
META_TYPES = {b"x": "pax header", b"L": "GNU long name"}
REFUSED_TYPES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"6": "FIFO",
    b"g": "global pax header",
    b"K": "GNU long link name",
    b"S": "GNU sparse file",
    b"V": "volume header",
    b"M": "multi-volume continuation",
    b"N": "GNU old long name",
    b"D": "GNU dump directory",
}


class _Refused(Exception):
    """A reason to refuse the archive, named by member (wrapped into DatasetError with the path)."""


def _octal(field: bytes, what: str, member: str) -> int:
    """A numeric header field: octal digits (tarfile's reading), never the base-256 form."""
    if field[:1] in (b"\x80", b"\xff"):
        raise _Refused(f"member {member!r}: {what} in base-256 form (negative, or beyond {MAX_TOTAL_BYTES} bytes)")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if text and not all(48 <= c <= 55 for c in text):
        raise _Refused(f"member {member!r}: {what} field {field!r} is not an octal number")
    return int(text or b"0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def normalised(name: str) -> str:
    """A member's path as it lands: ``./a//b/`` -> ``a/b`` ("" for the archive's own ``./``)."""
    return "/".join(PurePosixPath(name).parts)


def _check_name(name: str, member_type: str) -> None:
    parts = PurePosixPath(name).parts
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise _Refused(f"unsafe path {name!r} (absolute, empty or with '..')")
    if "\\" in name or "\0" in name:
        raise _Refused(f"unsafe path {name!r} (a backslash or NUL in a {member_type}'s name)")


def _pax_records(data: bytes, member: str) -> dict[str, str]:
    """``"LEN key=value\\n"`` records, each LEN counting the whole record; anything else refused."""
    records, pos = {}, 0
    while pos < len(data):
        if not data[pos:].strip(b"\0"):
            break
        space = data.find(b" ", pos, pos + 8)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise _Refused(f"member {member!r}: malformed pax record at byte {pos}")
        length = int(digits)
        record = data[pos : pos + length]
        if length < len(digits) + 3 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise _Refused(f"member {member!r}: malformed pax record at byte {pos}")
        key, _, value = record[len(digits) + 1 : -1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def scan_headers(stream, max_bytes: int = MAX_TOTAL_BYTES, max_members: int = MAX_MEMBERS) -> list[tuple[str, int]]:
    """Walk a tar stream's raw headers; return ``[(name, size)]`` of its files and folders.

    Raises :class:`_Refused` for anything :func:`extract_tar_safely` will not extract. Reads the
    stream to its end (at most ``max_bytes`` beyond the last header).
    """
    members: list[tuple[str, int]] = []
    pending: dict[str, str] = {}  # from a pax header or GNU long name, for the next member
    total, offset = 0, 0

    def read(n: int) -> bytes:
        nonlocal offset
        data = stream.read(n)
        offset += len(data)
        return data

    def skip(n: int) -> None:
        while n > 0:
            chunk = read(min(n, 1 << 20))
            if not chunk:
                raise _Refused("the archive ends inside a member's data (truncated)")
            n -= len(chunk)

    while True:
        at = offset
        header = read(BLOCK)
        if len(header) == 0 or header == bytes(BLOCK):
            break  # end of archive (two zero blocks, or none at all in some writers)
        if len(header) < BLOCK:
            raise _Refused(f"the archive ends inside a header at byte {at} (truncated)")
        name = _text(header[0:100])
        stored = _octal(header[148:156], "checksum", name)
        unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
        signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b >= 128)
        if stored not in (unsigned, signed):
            raise _Refused(f"the header at byte {at} ({name!r}) fails its checksum: not a tar archive, or damaged")
        kind = header[156:157]
        prefix = _text(header[345:500])  # ustar's name prefix, read as tarfile reads it
        if prefix and kind not in (b"L", b"K", b"S"):
            name = prefix + "/" + name
        name = pending.pop("path", name)
        size = _octal(header[124:136], "size", name)
        if "size" in pending:
            value = pending.pop("size")
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise _Refused(f"member {name!r}: pax size {value[:40]!r} is not a size in bytes")
            size = int(value)
        pending.clear()
        if size > max_bytes:
            raise _Refused(f"member {name!r} says it holds {size} bytes, more than the {max_bytes} allowed")
        if kind in REFUSED_TYPES:
            raise _Refused(f"member {name!r} is a {REFUSED_TYPES[kind]}: only regular files and folders are extracted")
        if kind in META_TYPES:
            if size > MAX_META_BYTES:
                raise _Refused(f"{META_TYPES[kind]} {name!r} of {size} bytes (at most {MAX_META_BYTES} allowed)")
            data = read(size)
            if len(data) < size:
                raise _Refused(f"the archive ends inside the {META_TYPES[kind]} at byte {at} (truncated)")
            skip(-size % BLOCK)
            if kind == b"L":
                pending = {"path": _text(data)}
                continue
            pending = _pax_records(data, name)
            bad = [k for k in pending if k.startswith("GNU.sparse") or k in ("linkpath", "hdrcharset")]
            if bad:
                raise _Refused(f"member {name!r}: pax record {bad[0]!r} (sparse files and links are refused)")
            continue
        if kind not in FILE_TYPES and kind != DIR_TYPE:
            raise _Refused(f"member {name!r} has the unknown type {kind!r}: only files and folders are extracted")
        is_dir = kind == DIR_TYPE or (kind == b"\0" and name.endswith("/"))
        _check_name(name, "folder" if is_dir else "file")
        name = normalised(name)
        if not name and not is_dir:
            raise _Refused("a file without a name")
        if len(members) >= max_members:
            raise _Refused(f"more than {max_members} members")
        total += 0 if is_dir else size
        if total > max_bytes:
            raise _Refused(f"the files hold more than {max_bytes} bytes together (at {name!r})")
        if name:  # "./" itself is no entry
            members.append((name, -1 if is_dir else size))
        skip(size + (-size % BLOCK) if not is_dir else 0)
    end = offset
    while read(1 << 16):  # the padding, to the end: gzip checks its CRC-32 of everything there
        if offset - end > MAX_PADDING:
            raise _Refused(f"more than {MAX_PADDING} bytes after the end of the archive")
    return members


class _Capped:
    """A file object that refuses to give more than ``limit`` bytes (a decompression bomb stops here)."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit, self.given = raw, limit, 0

    def read(self, n: int = -1) -> bytes:
        want = self.limit + 1 - self.given if n is None or n < 0 else min(n, self.limit + 1 - self.given)
        data = self.raw.read(want)
        self.given += len(data)
        if self.given > self.limit:
            raise _Refused(f"it decompresses to more than {self.limit} bytes")
        return data


def _capped(raw, limit: int) -> IO[bytes]:
    return cast(IO[bytes], _Capped(raw, limit))  # tarfile reads it as it reads a file


def _open_decompressed(archive):
    """The archive's tar stream, decompressed by its magic bytes (gzip, bzip2, xz, or none)."""
    with open(archive, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(archive, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(archive, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(archive, "rb")
    return open(archive, "rb")


def _merge(source: Path, final: Path, archive) -> None:
    """Move ``source``'s files into the existing folder ``final`` (a damaged extraction the caller
    named), one by one, over files of the same name only: nothing else there is touched."""
    root = final.resolve()
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        target = final / path.relative_to(source)
        if target.is_dir() or not target.parent.resolve().is_relative_to(root):
            raise DatasetError(f"{archive}: refusing the archive: {target} is a folder, or outside {final} (a link?)")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)


def extract_tar_safely(archive, dest_dir, refresh=(), max_bytes: int = MAX_TOTAL_BYTES):
    """Extract a tar (plain, .gz, .bz2 or .xz) into ``dest_dir``, refusing whatever could hurt.

    Every header is checked first (:func:`scan_headers`); a refusal is :class:`DatasetError`
    naming the archive and the member. Files go to a temporary folder in ``dest_dir`` and are
    moved into place at the end. An entry that ``dest_dir`` already holds is never replaced or
    emptied: the archive is refused, naming it, unless it is in ``refresh`` (names of top-level
    folders the caller knows to be a damaged earlier extraction): those get the archive's files
    written over theirs, everything else in them kept.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    budget = max_bytes + STREAM_SLACK  # data, headers and padding
    try:
        with _open_decompressed(archive) as raw:
            members = scan_headers(_Capped(raw, budget), max_bytes=max_bytes)
    except _Refused as exc:
        raise DatasetError(f"{archive}: refusing the archive: {exc}") from None
    except _READ_ERRORS as exc:
        raise DatasetError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from None
    tops = sorted({PurePosixPath(name).parts[0] for name, _ in members})
    taken = [top for top in tops if (dest_dir / top).exists() or (dest_dir / top).is_symlink()]
    clash = [top for top in taken if top not in refresh or not (dest_dir / top).is_dir()]
    if clash:
        raise DatasetError(
            f"{archive}: refusing the archive: it would write over {dest_dir / clash[0]}, which is already there "
            f"(move it away first; an archive never replaces what it did not create)"
        )
    expected = dict(members)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        try:
            with _open_decompressed(archive) as raw, tarfile.open(fileobj=_capped(raw, budget), mode="r|") as tar:
                for member in tar:
                    name = normalised(member.name)
                    if not name and member.isdir():
                        continue
                    if expected.get(name) != (-1 if member.isdir() else member.size) or not (
                        member.isfile() or member.isdir()
                    ):
                        raise _Refused(f"member {member.name!r} reads differently the second time")
                    target = staging / name
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = tar.extractfile(member)
                    assert data is not None  # a regular file always has data
                    with data, open(target, "wb") as dst:
                        shutil.copyfileobj(data, dst)
        except _Refused as exc:
            raise DatasetError(f"{archive}: refusing the archive: {exc}") from None
        except _READ_ERRORS as exc:
            raise DatasetError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from None
        for top in tops:
            source, final = staging / top, dest_dir / top
            if not final.exists():
                os.replace(source, final)
                continue
            _merge(source, final, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
