"""The helper process of :mod:`minicnn.interop.h5guard`: it reads HDF5 files into plain arrays for its caller.

Run as ``python -c`` loading this file by its path (see ``h5guard._BOOT``), not the package: it
imports only NumPy and h5py. It answers each request (a file's path or bytes) with every group's
attributes and every dataset, or with the error h5py raised. Messages on both pipes are frames:
one byte of kind, eight of length (little-endian), then the bytes. Kinds: ``R`` ready, ``Q`` a
request (JSON) followed by ``D`` (the file's bytes, or none), ``T`` the file's tree, ``E`` an error.
"""

from __future__ import annotations

import io
import json
import signal
import sys

import numpy as np

MAX_DEPTH = 32  # Keras nests four deep; a damaged file may claim anything


def serve() -> None:
    """The helper's loop: answer each request with the file's contents, until its input closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not garble the replies
    try:
        import h5py
    except ImportError as exc:
        send(stdout, b"E", f"ImportError: {exc}".encode())
        return
    send(stdout, b"R", b"")
    while (frame := recv(stdin)) is not None:
        request, payload = json.loads(frame[1]), recv(stdin)
        if payload is None:
            return
        if hasattr(signal, "alarm"):  # should the caller be gone, the helper still ends (SIGALRM kills)
            signal.alarm(request["alarm"])
        try:
            source = request["path"] if request["path"] is not None else io.BytesIO(payload[1])
            kind, parts = b"T", _snapshot(h5py, source, set(request["skip"]), request.get("max_bytes"))
        except Exception as exc:  # every failure of a damaged file goes back as a message
            kind, parts = b"E", [f"{type(exc).__name__}: {exc}".encode("utf8", "replace")]
        if hasattr(signal, "alarm"):
            signal.alarm(0)
        send(stdout, kind, *parts)


def _snapshot(h5py, source, skip: set, max_bytes: int | None = None) -> list:
    """Every group's attributes and every dataset of the file, as the parts of a reply: an index
    (JSON: the nodes, each array's dtype, shape and offset), then the arrays' bytes, 64-byte aligned.

    Only hard links are followed: a soft or external link (another file) is left out. A dataset
    is read only if the sizes declared so far stay within ``max_bytes`` (a compressed dataset can
    claim gigabytes in a small file).
    """
    arrays: list[np.ndarray] = []
    nodes: list[dict] = []
    declared = 0

    def within_budget(dataset, path: str) -> None:
        nonlocal declared
        declared += int(dataset.size or 0) * int(dataset.dtype.itemsize)
        if max_bytes is not None and declared > max_bytes:
            raise ValueError(f"dataset {path!r}: the datasets so far declare {declared} bytes, over {max_bytes}")

    def keep(value) -> int:
        array = _plain(value)
        arrays.append(array if array.flags.c_contiguous else array.copy())  # (ascontiguousarray makes 0-d 1-d)
        return len(arrays) - 1

    def walk(group, path: str, depth: int):
        if depth > MAX_DEPTH:
            raise ValueError(f"groups nested more than {MAX_DEPTH} deep at {path!r}")
        nodes.append({"path": path, "kind": "group", "attrs": [(n, keep(v)) for n, v in group.attrs.items()]})
        for name in group:
            if (depth == 0 and name in skip) or group.id.links.get_info(name.encode()).type != h5py.h5l.TYPE_HARD:
                continue
            member, member_path = group[name], f"{path}/{name}" if path else name
            if isinstance(member, h5py.Group):
                walk(member, member_path, depth + 1)
            elif isinstance(member, h5py.Dataset):
                within_budget(member, member_path)
                nodes.append({"path": member_path, "kind": "dataset", "data": keep(member[()])})

    with h5py.File(source, "r") as f:
        walk(f, "", 0)
    specs, parts, offset = [], [], 0
    for array in arrays:
        padding = b"\0" * (-offset % 64)
        offset += len(padding)
        specs.append((array.dtype.str, array.shape, offset))
        parts += [padding, array]
        offset += array.nbytes
    index = json.dumps([nodes, specs]).encode()
    return [len(index).to_bytes(8, "little"), index, *parts]


def _plain(value) -> np.ndarray:
    """An attribute's or dataset's value as a plain array: numbers, or strings as str or bytes arrays."""
    array = np.asarray(value)
    if array.dtype.kind == "O":
        items = array.ravel().tolist()
        for kind in (bytes, str):
            if all(isinstance(v, kind) for v in items):
                return np.array(items, dtype=kind).reshape(array.shape)
        raise TypeError(f"a value of {type(items[0]).__name__} objects, neither numbers nor strings")
    if array.dtype.fields is not None or array.dtype.hasobject:
        raise TypeError(f"a value of compound type {array.dtype}, not numbers or strings")
    return array


def send(stream, kind: bytes, *parts) -> None:
    """One frame: its kind, the parts' total length, then the parts (bytes, or arrays written as they lie)."""
    size = sum(part.nbytes if isinstance(part, np.ndarray) else len(part) for part in parts)
    stream.write(kind + size.to_bytes(8, "little"))
    for part in parts:
        stream.write(part)
    stream.flush()


def recv(stream) -> tuple[bytes, bytearray] | None:
    """The next frame ``(kind, bytes)``, or None at the end of the stream (the bytes writable, for arrays)."""
    head = stream.read(9)
    if len(head) < 9:
        return None
    data = bytearray(int.from_bytes(head[1:], "little"))
    view, got = memoryview(data), 0
    while got < len(data):
        n = stream.readinto(view[got:])
        if not n:
            return None
        got += n
    return head[:1], data
