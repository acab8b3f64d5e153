"""Files made to hurt, one per known attack on each loader, written by the tests themselves; and the loads
that the child process (:mod:`loader_child`) runs on them.

Every builder returns bytes (or writes a folder); ``CASES`` maps a case's name to ``(builder, loader)``.
The loaders return plain values and raise the library's own error when they refuse; they also check
what must survive a refusal (the model's weights, the user's files) and raise ``AssertionError`` if
it did not.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROW = 3072


# ---- CIFAR batch pickles, assembled opcode by opcode --------------------------------------------------
def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _bytes(data: bytes) -> bytes:  # SHORT_BINBYTES / BINBYTES
    return (b"C" + bytes([len(data)]) if len(data) < 256 else b"B" + struct.pack("<I", len(data))) + data


def _str(text: str) -> bytes:  # BINUNICODE
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


NONE, TRUE, FALSE = b"N", b"\x88", b"\x89"


def _dtype(code: str = "u1", state: bytes | None = None) -> bytes:
    """``numpy.dtype(code, False, True)`` followed by ``BUILD state`` (uint8's standard one by default)."""
    if state is None:
        state = _tuple(_int(3), _str("|"), NONE, NONE, NONE, b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", _int(0))
    return _global("numpy", "dtype") + _tuple(_str(code), FALSE, TRUE) + b"R" + state + b"b"


def _array(shape=(1, ROW), dtype: bytes | None = None, raw: bytes | None = None, fortran: bytes = FALSE) -> bytes:
    """``_reconstruct(ndarray, (0,), b"b")`` then ``BUILD (1, shape, dtype, fortran, raw)``."""
    dtype = _dtype() if dtype is None else dtype
    raw = bytes(range(256)) * (shape[0] * ROW // 256) if raw is None else raw
    head = (
        _global("numpy._core.multiarray", "_reconstruct")
        + _tuple(_global("numpy", "ndarray"), _tuple(_int(0)), _bytes(b"b"))
        + b"R"
    )
    return head + _tuple(_int(1), _tuple(*map(_int, shape)), dtype, fortran, _bytes(raw)) + b"b"


def _batch(data: bytes, labels: bytes | None = None) -> bytes:
    """A pickled dict ``{b"data": data, b"labels": labels}`` (protocol 2)."""
    labels = b"]" + b"(" + _int(3) + b"e" if labels is None else labels
    return b"\x80\x02}" + b"(" + _bytes(b"data") + data + _bytes(b"labels") + labels + b"u."


def valid_batch() -> bytes:
    """The assembler's own good batch: one image, label 3 (it loads; the cases change one thing)."""
    return _batch(_array())


PICKLES = {
    # NumPy's dtype.__setstate__ dereferences NULL for a 6-item state with a fields entry.
    "dtype state of 6 items with fields": _batch(
        _array(dtype=_dtype(state=_tuple(_int(3), _str("|"), NONE, _tuple(_str("a")), b"}", _int(1))))
    ),
    # An object dtype makes the array's bytes be read as PyObject pointers.
    "object dtype": _batch(_array(raw=b"\x41" * 8 * ROW, dtype=_dtype("O8"))),
    "uint8 with the object flags": _batch(
        _array(dtype=_dtype(state=_tuple(_int(3), _str("|"), NONE, NONE, NONE, _int(1), _int(1), _int(63))))
    ),
    # Field offsets far beyond the array's buffer: reads out of bounds.
    "field offset out of bounds": _batch(
        _array(
            dtype=_dtype(
                "V1",
                _tuple(
                    _int(3),
                    _str("|"),
                    NONE,
                    _tuple(_str("a")),
                    b"}" + _str("a") + _tuple(_dtype(), _int(2**40)) + b"s",
                    _int(1),
                    _int(1),
                    _int(0),
                ),
            )
        )
    ),
    # The dtype's itemsize enlarged after the array exists (a second BUILD on a memoised dtype).
    "itemsize enlarged after the array": _batch(
        _array(dtype=_dtype() + b"q\x07"),  # BINPUT: the dtype kept in the memo...
        b"h\x07" + _tuple(_int(3), _str("|"), NONE, NONE, NONE, _int(2**20), _int(1), _int(0)) + b"b",  # ...built again
    ),
    "uint8 with a huge element size": _batch(
        _array(dtype=_dtype(state=_tuple(_int(3), _str("|"), NONE, NONE, NONE, _int(2**20), _int(1), _int(0))))
    ),
    # A second BUILD on an array whose buffer another array uses: the first buffer is freed.
    "second state for an array": _batch(
        _array() + b"q\x08",
        b"h\x08" + _tuple(_int(1), _tuple(_int(1), _int(ROW)), _dtype(), FALSE, _bytes(b"\0" * ROW)) + b"b",
    ),
    "shape larger than the bytes": _batch(_array(shape=(10**6, ROW), raw=b"\0" * ROW)),
    "shape of 2**62 rows": _batch(_array(shape=(2**62, ROW), raw=b"\0" * ROW)),
    "negative shape": _batch(_array(shape=(-1, ROW), raw=b"\0" * ROW)),
    "three axes": _batch(_array(shape=(1, 3, 1024), raw=b"\0" * ROW)),
    "float64 dtype": _batch(_array(shape=(1, ROW), raw=b"\0" * ROW * 8, dtype=_dtype("f8"))),
    "order flag 7": _batch(_array(fortran=_int(7))),
    "data as a list": _batch(
        _global("numpy._core.multiarray", "_reconstruct")
        + _tuple(_global("numpy", "ndarray"), _tuple(_int(0)), _bytes(b"b"))
        + b"R"
        + _tuple(_int(1), _tuple(_int(1), _int(ROW)), _dtype(), FALSE, b"]")
        + b"b"
    ),
    "labels out of range": _batch(_array(), b"](" + _int(10) + b"e"),
    "labels negative": _batch(_array(), b"](" + _int(-1) + b"e"),
    "labels as bools": _batch(_array(), b"](" + TRUE + b"e"),
    "labels as floats": _batch(_array(), b"](G" + struct.pack(">d", 1.5) + b"e"),
    "labels beyond int64": _batch(_array(), b"](" + _int(2**70) + b"e"),
    "labels as an array": _batch(_array(), _array(shape=(1, ROW))),
    "codecs with another encoding": _batch(
        _array(), _global("_codecs", "encode") + _tuple(_str("x"), _str("rot13")) + b"R"
    ),
    "a forbidden global": _batch(_global("os", "system") + _tuple(_str("true")) + b"R"),
    "ndarray through NEWOBJ": _batch(_global("numpy", "ndarray") + _tuple(_tuple(_int(1), _int(ROW))) + b"\x81"),
    "dtype through NEWOBJ": _batch(_global("numpy", "dtype") + _tuple(_str("u1")) + b"\x81"),
    "reconstruct of a dtype": _batch(
        _global("numpy._core.multiarray", "_reconstruct")
        + _tuple(_global("numpy", "dtype"), _tuple(_int(0)), _bytes(b"b"))
        + b"R"
    ),
    "state set on a dict": _batch(b"}" + b"}" + _str("x") + _int(1) + b"s" + b"b"),
}


def load_batch(path: str):
    from minicnn.datasets.cifar10 import read_batch

    x, y = read_batch(path)
    return {"x": x, "y": y}


PIXELS = bytes(range(128)) * (ROW // 128)  # one image whose bytes pickle as themselves (ASCII: UTF-8 = latin-1)


def write_scan_batch(path: str) -> None:
    """The batch the header scan changes: ``write_batch``'s layout (protocol 2), one image, label 7."""
    from minicnn.datasets.cifar10 import write_batch

    x = np.frombuffer(PIXELS, np.uint8).reshape(1, 3, 32, 32).transpose(0, 2, 3, 1)
    write_batch(path, x, [7])


def load_batch_checked(path: str) -> int:
    """read_batch; if it loads, it must be a real batch (the fuzzers' invariant). Returns its rows."""
    from minicnn.datasets.cifar10 import read_batch

    x, y = read_batch(path)
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and y.shape == (len(x),) and y.dtype == np.int64
    assert ((0 <= y) & (y <= 9)).all()
    return len(x)


def scan_batch_header(path: str) -> dict:
    """Every one-byte change of every byte outside the pixel data of the batch at ``path``: each
    loads or ends in DatasetError. Returns the count of each outcome (anything else raises)."""
    from minicnn.datasets.cifar10 import DatasetError, read_batch

    valid = Path(path).read_bytes()
    start = valid.index(PIXELS[:512])  # where the pixel bytes begin
    end = start + ROW
    positions = [i for i in range(len(valid)) if not start <= i < end]
    counts = {"loaded": 0, "refused": 0, "positions": len(positions)}
    target = Path(path).with_name("mutated")
    for i in positions:
        for value in range(256):
            if value == valid[i]:
                continue
            target.write_bytes(valid[:i] + bytes([value]) + valid[i + 1 :])
            try:
                x, y = read_batch(target)
            except DatasetError:
                counts["refused"] += 1
                continue
            assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
            assert ((0 <= y) & (y <= 9)).all()
            counts["loaded"] += 1
    return counts


# ---- tar archives, header by header ------------------------------------------------------------------
def _header(name: str, size: int = 0, kind: bytes = b"0", size_field: bytes | None = None, prefix: str = "") -> bytes:
    """One 512-byte ustar header with a correct checksum (``size_field`` overrides the octal size)."""
    h = bytearray(512)
    h[0:100] = name.encode().ljust(100, b"\0")[:100]
    h[100:108] = b"0000644\0"
    h[108:116] = h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else f"{size:011o}\0".encode()
    h[136:148] = b"00000000000\0"
    h[156:157] = kind
    h[257:265] = b"ustar\x0000"
    h[345:500] = prefix.encode().ljust(155, b"\0")[:155]
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _member(name: str, data: bytes, kind: bytes = b"0") -> bytes:
    return _header(name, len(data), kind) + _pad(data)


def _pax(records: dict[str, str]) -> bytes:
    """pax records ``"LEN key=value\\n"``, LEN counting the whole record, its own digits included."""
    body = b""
    for key, value in records.items():
        text = f" {key}={value}\n"
        length = len(text) + len(str(len(text)))
        length = len(text) + len(str(length))
        body += f"{length}{text}".encode()
    return body


def _tar(*members: bytes) -> bytes:
    return b"".join(members) + b"\0" * 1024


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)


def _gz_of_zeros(head: bytes, zeros: int) -> bytes:
    """gzip of ``head`` followed by ``zeros`` zero bytes, compressed in blocks (a few hundred KB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(head)]
    block = bytes(1 << 20)
    for _ in range(zeros >> 20):
        out.append(comp.compress(block))
    out.append(comp.flush())
    return b"".join(out)


GOOD = _member("cifar-10-batches-py/test_batch", b"ok")
ARCHIVES = {
    "negative size (base-256)": _gz(_tar(GOOD, _header("cifar-10-batches-py/x", size_field=b"\xff" * 12))),
    "pax size negative": _gz(
        _tar(_member("pax", _pax({"size": "-1536"}), b"x"), _member("cifar-10-batches-py/a", b""))
    ),
    "pax size beyond the cap": _gz(_tar(_member("pax", _pax({"size": str(10**30)}), b"x"), _member("a", b""))),
    "pax header of 200,000 digits": _gz(_tar(_member("pax", _pax({"mtime": "1" * 200_000}), b"x"), GOOD)),
    "pax GNU sparse records": _gz(_tar(_member("pax", _pax({"GNU.sparse.major": "1"}), b"x"), GOOD)),
    "pax link path": _gz(_tar(_member("pax", _pax({"linkpath": "/etc/passwd"}), b"x"), GOOD)),
    "pax path with ..": _gz(_tar(_member("pax", _pax({"path": "../evil"}), b"x"), GOOD)),
    "GNU sparse member of 1 GiB": _gz(_tar(_header("cifar-10-batches-py/s", 2**30, b"S"), GOOD)),
    "global pax header": _gz(_tar(_member("g", _pax({"path": "x"}), b"g"), GOOD)),
    "GNU long link name": _gz(_tar(_member("././@LongLink", b"/etc/passwd\0", b"K"), GOOD)),
    "GNU long name of 1 MiB": _gz(_tar(_member("././@LongLink", b"a" * (1 << 20), b"L"), GOOD)),
    "unknown member type": _gz(_tar(GOOD, _member("cifar-10-batches-py/z", b"zz", b"Z"))),
    "member of 300 MiB (gzip bomb)": _gz_of_zeros(_header("cifar-10-batches-py/big", 300 << 20), 2 << 20),
    "64 MiB of padding (gzip bomb)": _gz_of_zeros(_tar(GOOD), 64 << 20),
    "header failing its checksum": _gz(_tar(GOOD, _header("b", 2)[:148] + b"0000000\0" + _header("b", 2)[156:])),
    "size field not octal": _gz(_tar(GOOD, _header("cifar-10-batches-py/n", size_field=b"99999999999\0"))),
    "absolute path through the ustar prefix": _gz(_tar(_header("evil", 0, prefix="/etc") + b"", GOOD)),
    "2,000 members": _gz(_tar(*(_header(f"d{i}/", 0, b"5") for i in range(2000)))),
    "truncated inside a member": _gz(_header("cifar-10-batches-py/t", 4096) + b"x" * 600),
}


def extract(archive: str, dest: str, max_bytes: int | None = None) -> list:
    """extract_tar_safely, then the sorted names it left in ``dest`` (the folders' contents too)."""
    from minicnn.datasets.cifar10 import extract_tar_safely

    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    before = _tree(dest)
    try:
        extract_tar_safely(archive, dest, **kwargs)
    except Exception:
        assert _tree(dest) == before, f"a refused archive changed {dest}: {before} -> {_tree(dest)}"
        raise
    return sorted(_tree(dest))


def _tree(folder: str) -> dict:
    root = Path(folder)
    return (
        {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}
        if root.exists()
        else {}
    )


def two_members_over(limit: int) -> bytes:
    return _gz(_tar(_member("a/1", b"x" * (limit // 2 + 1)), _member("a/2", b"y" * (limit // 2 + 1))))


# ---- checkpoints and Keras files ---------------------------------------------------------------------
def small_model():
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D

    return Sequential(
        [Conv2D(3, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Flatten(), Dense(4)], input_shape=(6, 6, 2), seed=3
    )


def good_checkpoint(path: str, ema: bool = False) -> None:
    from minicnn.optim import Adam

    model = small_model()
    optimizer = Adam(model, lr=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6, 6, 2)).astype(np.float32), rng.integers(0, 4, 8)
    model.fit(x, y, optimizer=optimizer, epochs=1, verbose=0)
    model.save(path, optimizer=optimizer, extra={"epoch": 1, "config": {"lr": 0.01}, "mean": np.arange(2.0)})


DEEP = "__deep__"  # a value rewrite_meta replaces by JSON nested 100,000 lists deep (json.dumps would recurse)


def rewrite_meta(path: str, change) -> None:
    """Rewrite the checkpoint at ``path`` with ``change(meta)`` applied to its ``__meta__`` (a valid zip)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__meta__"]))
    change(meta)
    text = json.dumps(meta).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    arrays["__meta__"] = np.array(text)
    np.savez(path, **arrays)


def npz_member_bomb(path: str) -> None:
    """The good checkpoint at ``path`` plus an optimizer slot of 2**27 float32 zeros (512 MiB), deflated to 0.5 MB."""
    good = Path(path).read_bytes()
    header = (f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({1 << 27},), }}").ljust(117) + "\n"
    info = zipfile.ZipInfo("optimizer/m/bomb.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(io.BytesIO(good)) as z, zipfile.ZipFile(path, "w") as out:
        for member in z.infolist():
            out.writestr(member, z.read(member))
        with out.open(info, "w", force_zip64=True) as f:
            f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
            block = bytes(1 << 20)
            for _ in range(512):
                f.write(block)


def _weights(model) -> list:
    return [np.array(layer.params[name]) for _, layer, name in model.named_parameters()]


def load_weights_keeping(path: str) -> dict:
    """load_weights (with an Adam) into a fresh model; on a refusal, the model's weights must be as they were."""
    from minicnn.optim import Adam

    model = small_model()
    before = _weights(model)
    try:
        extra = model.load_weights(path, optimizer=Adam(model))
    except Exception:
        assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model))), "weights changed, then refused"
        raise
    return {"extra": sorted(extra)}


def load_model_from(path: str) -> dict:
    from minicnn import load_model

    model, extra = load_model(path)
    return {"params": model.count_params(), "extra": sorted(extra)}


def read_timeline(path: str) -> dict:
    """``read_filter_timeline`` on a possibly hostile ``filters.npz`` (the explorer's reader)."""
    from minicnn.callbacks import read_filter_timeline

    return read_filter_timeline(path)


def resume_keeping(path: str) -> int:
    """ModelCheckpoint.resume into a fresh model; on a refusal, the weights must be as they were."""
    from minicnn.callbacks import ModelCheckpoint
    from minicnn.optim import Adam

    model = small_model()
    before = _weights(model)
    try:
        return ModelCheckpoint.resume(path, model, Adam(model), {"lr": 0.01})
    except Exception:
        assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model))), "weights changed, then refused"
        raise


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta):
        node = meta
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


CHECKPOINT_META = {
    "extra is 0": _set("extra", 0),
    "model is 7": _set("model", 7),
    "layers is a string": _set("model", "layers", "Conv2D"),
    "layer without a class": _set("model", "layers", 0, {"config": {}}),
    "unknown layer class": _set("model", "layers", 0, "class", "Evil"),
    "input shape negative": _set("model", "input_shape", [-6, 6, 2]),
    "input shape of floats": _set("model", "input_shape", [6.0, 6, 2]),
    "dtype object": _set("model", "dtype", "object"),
    "Dense of 131,072 units": _set("model", "layers", 4, "config", "units", 131_072),
    "Dense of 10**30 units": _set("model", "layers", 4, "config", "units", 10**30),
    "Conv2D of 10**9 filters": _set("model", "layers", 0, "config", "filters", 10**9),
    "units as a string": _set("model", "layers", 4, "config", "units", "4"),
    "unexpected layer option": _set("model", "layers", 4, "config", "evil", 1),
    "layer name as a list": _set("model", "layers", 4, "config", "name", ["x"]),
    "optimizer lr a string": _set("optimizer", "lr", "fast"),
    "optimizer lr infinite": _set("optimizer", "lr", float("inf")),
    "optimizer iterations negative": _set("optimizer", "iterations", -1),
    "optimizer beta1 a list": _set("optimizer", "beta1", [0.9]),
    "optimizer beta1 true": _set("optimizer", "beta1", True),
    "optimizer as a list": _set("optimizer", [1]),
    "JSON nested 100,000 deep": _set("extra", "deep", DEEP),
    "format a list": _set("format", ["minicnn-checkpoint-1"]),
    "version a number": _set("minicnn_version", 3),
}

RESUME_META = {
    "epoch a string": _set("extra", "epoch", "3"),
    "epoch negative": _set("extra", "epoch", -1),
    "config a list": _set("extra", "config", [1]),
    "settings differ": _set("extra", "config", {"lr": 0.5}),
}


def keras_with_config(source: str, path: str, change) -> None:
    """A copy of the ``.keras`` file ``source`` whose config.json is ``change(config)``'s."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(path, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            out.writestr(info.filename, data)


def keras_config_bomb(source: str, path: str) -> None:
    """A copy whose config.json inflates to 256 MiB of spaces (deflated: about 0.3 MB)."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            if info.filename == "config.json":
                with out.open("config.json", "w", force_zip64=True) as member:
                    block = b" " * (1 << 20)
                    for _ in range(256):
                        member.write(block)
                    member.write(z.read(info))
            else:
                out.writestr(info.filename, z.read(info))


def load_keras_input_shape(path: str) -> list:
    from minicnn.interop import load_keras

    return list(load_keras(path).input_shape)


def load_keras_file(path: str) -> dict:
    from minicnn.interop import load_keras

    return {"params": load_keras(path).count_params()}


def write_bytes(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def with_pickle_protocol(path: str, protocol: int) -> None:
    from cifar_fixture import make_images

    x, y = make_images(3, seed=5)
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(3, ROW)
    Path(path).write_bytes(pickle.dumps({"labels": [int(v) for v in y], "data": data}, protocol=protocol))


def tar_of(path: str, folder: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=Path(folder).name)


# ---- pictures ------------------------------------------------------------------------------------------
def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb's
    first step: the decoder would allocate for the claim)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def load_picture(path: str) -> list:
    from minicnn.datasets.image_files import read_image

    return list(read_image(path, (8, 8))[0].shape)
