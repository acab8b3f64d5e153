"""The helper process of :mod:`minicnn.h5guard`: it reads HDF5 files into plain arrays for its caller.

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
            kind, data = b"T", _snapshot(h5py, source, set(request["skip"]))
        except Exception as exc:  # every failure of a damaged file goes back as a message
            kind, data = b"E", f"{type(exc).__name__}: {exc}".encode("utf8", "replace")
        if hasattr(signal, "alarm"):
            signal.alarm(0)
        send(stdout, kind, data)


def _snapshot(h5py, source, skip: set) -> bytes:
    """Every group's attributes and every dataset of the file, as a reply the caller rebuilds.

    Only hard links are followed: a soft or external link (another file) is left out.
    """
    arrays: list[np.ndarray] = []
    nodes: list[dict] = []

    def keep(value) -> int:
        arrays.append(_plain(value))
        return len(arrays) - 1

    def walk(group, path: str, depth: int):
        if depth > MAX_DEPTH:
            raise ValueError(f"groups nested more than {MAX_DEPTH} deep at {path!r}")
        nodes.append({"path": path, "kind": "group", "attrs": [(n, keep(v)) for n, v in group.attrs.items()]})
        for name in group:
            if (depth == 0 and name in skip) or not isinstance(group.get(name, getlink=True), h5py.HardLink):
                continue
            member, member_path = group[name], f"{path}/{name}" if path else name
            if isinstance(member, h5py.Group):
                walk(member, member_path, depth + 1)
            elif isinstance(member, h5py.Dataset):
                nodes.append({"path": member_path, "kind": "dataset", "data": keep(member[()])})

    with h5py.File(source, "r") as f:
        walk(f, "", 0)
    index = json.dumps([nodes, len(arrays)]).encode()
    buffer = io.BytesIO()
    buffer.write(len(index).to_bytes(8, "little") + index)
    for array in arrays:
        np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _plain(value) -> np.ndarray:
    """An attribute's or dataset's value as an array that needs no pickle (strings as str or bytes arrays)."""
    array = np.asarray(value)
    if array.dtype.kind == "O":
        items = array.ravel().tolist()
        for kind in (bytes, str):
            if all(isinstance(v, kind) for v in items):
                return np.array(items, dtype=kind).reshape(array.shape)
        raise TypeError(f"a value of {type(items[0]).__name__} objects, neither numbers nor strings")
    if array.dtype.hasobject:
        raise TypeError(f"a value of type {array.dtype} holds objects")
    return array


def send(stream, kind: bytes, data: bytes) -> None:
    stream.write(kind + len(data).to_bytes(8, "little"))
    stream.write(data)
    stream.flush()


def recv(stream) -> tuple[bytes, bytes] | None:
    """The next frame ``(kind, bytes)``, or None at the end of the stream."""
    head = stream.read(9)
    if len(head) < 9:
        return None
    size = int.from_bytes(head[1:], "little")
    data = stream.read(size)
    return None if len(data) < size else (head[:1], data)
