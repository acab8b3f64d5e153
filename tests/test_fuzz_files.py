"""Damaged copies of good files, of every format minicnn reads: refused with the library's own error
naming the file, or loaded with exactly the original values. Never another exception, never a hang,
and never changed values from a format that carries a checksum (the zip of a checkpoint or a
``.keras`` file: CRC-32 per member; the tar.gz: gzip's CRC-32 of the whole archive).

A case is one damage of one kind: bits flipped, the file cut short, a range of up to 4 KB zeroed,
bytes inserted, or a range of the file copied over another place. Each load runs in a child process
(:mod:`loader_child`) under a time and memory limit, so a crash or a hang fails one case, not pytest.
The suite runs ``MINICNN_FUZZ_CASES`` cases per format (default 15);
``MINICNN_FUZZ_REPORT=path`` writes the count of each outcome per format there, as a Markdown table::

    MINICNN_FUZZ_CASES=500 MINICNN_FUZZ_REPORT=fuzz.md python -m pytest tests/test_fuzz_files.py
"""

import collections
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import host
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from minicnn import CheckpointError, Sequential, h5guard, load_model  # noqa: F401  (h5guard: the child's)
from minicnn.datasets.cifar10 import DatasetError, load_cifar10, read_batch, write_batch
from minicnn.layers import Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import Adam

try:
    import h5py
except ImportError:  # the `keras` extra is missing: the Keras formats are skipped
    h5py = None

CASES = int(os.environ.get("MINICNN_FUZZ_CASES", "15"))
CASE_SECONDS = 60  # far above a good load (milliseconds) and h5guard's own limit (2 s here, plus a restart)
DATA = Path(__file__).parent / "data" / "keras"
KINDS = ("bit flips", "truncation", "zeroed range", "inserted bytes", "copied bytes")


# ---- the formats: a good file, how it is loaded, its error, whether it carries a checksum ------------
def _arrays(prefix, named):
    return {f"{prefix}/{k}": np.array(host(v)) for k, v in named}


def _model_values(model: Sequential) -> dict:
    params = ((key, layer.params[name]) for key, layer, name in model.named_parameters())
    return {"config": json.dumps(model.get_config(), sort_keys=True), **_arrays("param", params)}


def _checkpoint():
    model = Sequential(
        [Conv2D(3, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Flatten(), Dense(4)], input_shape=(6, 6, 2), seed=3
    )
    optimizer = Adam(model, lr=0.01)
    rng = np.random.default_rng(0)
    model.fit(
        rng.standard_normal((8, 6, 6, 2)).astype(np.float32),
        rng.integers(0, 4, 8),
        optimizer=optimizer,
        epochs=1,
        verbose=0,
    )
    path = Path(tempfile.mkdtemp()) / "model.npz"
    model.save(path, optimizer=optimizer, extra={"epoch": 1, "mean": np.arange(2.0)})
    return path.read_bytes()


def _load_checkpoint(path):
    model, extra = load_model(path)
    optimizer = Adam(model)
    model.load_weights(path, optimizer=optimizer)
    state = optimizer.state_dict()
    scalars = {k: v for k, v in state.items() if "/" not in k}
    values = {k: v for k, v in extra.items() if not isinstance(v, np.ndarray)}
    return {
        **_model_values(model),
        **_arrays("optimizer", ((k, v) for k, v in state.items() if "/" in k)),
        **_arrays("extra", ((k, v) for k, v in extra.items() if isinstance(v, np.ndarray))),
        "scalars": json.dumps([scalars, values], sort_keys=True, default=str),
    }


def _load_keras(path):
    from minicnn.interop import load_keras

    h5guard.READ_SECONDS = 2.0  # (in the child) a stuck read costs 2 s, not 5
    return _model_values(load_keras(path))


def _batch():
    from cifar_fixture import make_images

    path = Path(tempfile.mkdtemp()) / "data_batch_1"
    write_batch(path, *make_images(6, seed=1))
    return path.read_bytes()


def _load_batch(path):
    x, y = read_batch(path)
    return {"x": x, "y": y}


def _archive():
    from cifar_fixture import make_cifar_archive

    path = Path(tempfile.mkdtemp()) / "cifar-10-python.tar.gz"
    make_cifar_archive(path, rows_per_batch=3, test_rows=3)
    return path.read_bytes()


def _load_archive(path):
    """The archive alone in its folder, checked by no MD5 (as for a rebuilt copy): what the tar and
    gzip layers catch by themselves."""
    path = Path(path)
    (x, y), (xt, yt) = load_cifar10(path.parent, download=False, md5=None)
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"extraction left {leftovers} behind"
    return {"x": x, "y": y, "x_test": xt, "y_test": yt}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _keras_file(name):
    return lambda: (DATA / name).read_bytes()


Format = collections.namedtuple("Format", "make load error checksum needs_h5py")
FORMATS = {
    "checkpoint.npz": Format(_checkpoint, _load_checkpoint, CheckpointError, True, False),
    "stack_keras3.keras": Format(_keras_file("stack_keras3.keras"), _load_keras, ValueError, True, True),
    "stack_keras2.keras": Format(_keras_file("stack_keras2.keras"), _load_keras, ValueError, True, True),
    "stack_keras3.h5": Format(_keras_file("stack_keras3.h5"), _load_keras, ValueError, False, True),
    "stack_keras2.h5": Format(_keras_file("stack_keras2.h5"), _load_keras, ValueError, False, True),
    "data_batch_1": Format(_batch, _load_batch, DatasetError, False, False),
    "cifar-10-python.tar.gz": Format(_archive, _load_archive, DatasetError, True, False),
}


def error_class(fmt):
    if fmt.error is ValueError:  # the Keras formats: imported late, so that this file loads without h5py
        from minicnn.interop import KerasFormatError

        return KerasFormatError
    return fmt.error


ORIGINALS: dict = {}


def original(child, name):
    """The good file's bytes and the digest of the values it loads to (loaded in the child)."""
    if name not in ORIGINALS:
        fmt = FORMATS[name]
        valid = fmt.make()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(valid)
            result = child.call("test_fuzz_files", fmt.load.__name__, str(path))
        assert result.outcome == "returned", f"the good {name} does not load: {result.message}"
        ORIGINALS[name] = valid, result.digest
    return ORIGINALS[name]


def same_values(a: dict, b: dict) -> bool:
    """Bit for bit: the same keys, dtypes, shapes and bytes (NaN equal to NaN, -0.0 unlike 0.0)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape):
                return False
            if x.tobytes() != y.tobytes():
                return False
        elif x != y:
            return False
    return True


# ---- damage and the time limit --------------------------------------------------------------------
def damage(data, valid: bytes) -> tuple[str, bytes]:
    """One damage of a kind drawn from KINDS, described for the failure report."""
    n, out = len(valid), bytearray(valid)
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    if kind == "bit flips":
        flips = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=8))
        for at, bit in flips:
            out[at] ^= 1 << bit
        return f"{kind} {flips}", bytes(out)
    at = data.draw(st.integers(0, n - 1), label="at")
    if kind == "truncation":
        return f"cut to {at} bytes", bytes(out[:at])
    if kind == "inserted bytes":
        extra = data.draw(st.binary(min_size=1, max_size=64), label="inserted")
        return f"{len(extra)} bytes inserted at {at}", bytes(out[:at] + extra + out[at:])
    length = data.draw(st.integers(1, 4096), label="length")
    if kind == "zeroed range":
        out[at : at + length] = bytes(len(out[at : at + length]))
        return f"{length} bytes zeroed at {at}", bytes(out)
    source = data.draw(st.integers(0, n - 1), label="from")
    chunk = valid[source : source + length][: n - at]
    out[at : at + len(chunk)] = chunk
    return f"{len(chunk)} bytes from {source} copied to {at}", bytes(out)


# ---- the tests -------------------------------------------------------------------------------------
COUNTS: collections.Counter = collections.Counter()  # (format, outcome) -> cases, for the report


@pytest.fixture(scope="module", autouse=True)
def outcome_report():
    yield
    report = os.environ.get("MINICNN_FUZZ_REPORT")
    if not report or not COUNTS:
        return
    outcomes = sorted({outcome for _, outcome in COUNTS})
    lines = [
        f"| format | its error | cases | {' | '.join(outcomes)} |",
        "|---" * (len(outcomes) + 3) + "|",
    ]
    for name, fmt in FORMATS.items():
        row = [COUNTS[name, o] for o in outcomes]
        if sum(row):
            lines.append(f"| {name} | `{error_class(fmt).__name__}` | {sum(row)} | {' | '.join(map(str, row))} |")
    Path(report).write_text("\n".join(lines) + "\n")


def outcome_of_refusal(message: str) -> str:
    if "not read within" in message:
        return "refused: read stopped at the time limit"
    if "crashed" in message:
        return "refused: the HDF5 reader crashed"
    return "refused"


@pytest.fixture
def child(loader):
    return loader


@pytest.mark.parametrize("name", list(FORMATS))
@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_file_is_refused_or_loads_unchanged(name, data, tmp_path, child):
    fmt = FORMATS[name]
    if fmt.needs_h5py and h5py is None:
        pytest.skip('needs h5py: pip install -e ".[keras]"')
    valid, expected = original(child, name)
    how, damaged = damage(data, valid)
    assume(damaged != valid)  # a damage that changed nothing (zeros over zeros) is no case
    note(f"{name}: {how}")
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / name
        path.write_bytes(damaged)
        result = child.call("test_fuzz_files", fmt.load.__name__, str(path))
    if result.outcome in ("crashed", "hung"):
        (tmp_path / f"last-{name}").write_bytes(damaged)
        pytest.fail(f"{name}, {how}: the load {result.outcome} ({result.message}); a copy is in {tmp_path}")
    if result.outcome == "refused":
        error = error_class(fmt).__name__
        assert result.is_refusal(error), f"{name}, {how}: {result.error} instead of {error}: {result.message}"
        assert str(path) in result.message, f"the message does not name the file: {result.message}"
        COUNTS[name, outcome_of_refusal(result.message)] += 1
        return
    if result.digest == expected:
        COUNTS[name, "loaded identical"] += 1
    else:
        assert not fmt.checksum, f"{name} carries a checksum, yet loaded changed values ({how})"
        COUNTS[name, "loaded changed (no checksum)"] += 1


# ---- what the fuzzer found, pinned ------------------------------------------------------------------
def _tar_bytes(tmp_path):
    import gzip

    from cifar_fixture import make_cifar_archive

    make_cifar_archive(tmp_path / "good.tar.gz", rows_per_batch=3, test_rows=3)
    return gzip.decompress((tmp_path / "good.tar.gz").read_bytes())


def test_archive_whose_content_fails_gzips_crc_is_refused_not_extracted(tmp_path):
    """Changed bytes inside the compressed stream once decompressed into a tar that extracted
    and loaded changed pixels: gzip's CRC-32 sits at the end, which tarfile never read."""
    import gzip

    from minicnn.datasets.cifar10 import extract_tar_safely

    tar = _tar_bytes(tmp_path)
    changed = bytearray(tar)
    changed[tar.index(b"cifar-10-batches-py/data_batch_2") + 512 + 200] ^= 0x01  # a byte of the pickled batch
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(bytes(changed))[:-8] + gzip.compress(tar)[-8:])  # the good file's CRC
    (tmp_path / "out").mkdir()
    with pytest.raises(DatasetError, match=re.escape(f"{archive}: not a readable tar archive (BadGzipFile: CRC")):
        extract_tar_safely(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_archive_with_a_broken_deflate_block_gives_dataset_error(tmp_path):
    """A damaged block after good ones made tarfile raise zlib.error, which nothing caught."""
    import zlib

    from minicnn.datasets.cifar10 import extract_tar_safely

    tar = _tar_bytes(tmp_path)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    good_part = deflate.compress(tar[:20_000]) + deflate.flush(zlib.Z_FULL_FLUSH)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + good_part + b"\x07" * 64)  # block type 3: invalid
    with pytest.raises(DatasetError, match=re.escape(f"{archive}: not a readable tar archive (error: ")):
        extract_tar_safely(archive, tmp_path / "out")


def test_batch_naming_a_huge_memo_index_loads_without_allocating_for_it(tmp_path):
    """A damaged BINPUT turned LONG_BINPUT with a large index made the C unpickler allocate and
    zero a memo of that many entries (8 s and 1 GB at 2**26, the machine's memory at 2**31). The
    index only names a memo slot, so the batch loads as it was."""
    import tracemalloc

    valid = _batch()
    expected = _load_batch(_write(tmp_path / "good", valid))
    at = valid.index(b"q\x00")  # the first BINPUT (memo index 0, never fetched again)
    path = tmp_path / "data_batch_1"
    path.write_bytes(valid[:at] + b"r" + (2**26).to_bytes(4, "little") + valid[at + 2 :])
    tracemalloc.start()
    try:
        got = _load_batch(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated for one damaged index"
    assert same_values(got, expected)
