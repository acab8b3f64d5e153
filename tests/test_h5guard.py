"""minicnn.h5guard: HDF5 read in a helper process, so a damaged file neither hangs nor crashes the caller."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn import h5guard

try:
    import h5py
except ImportError:
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason='needs h5py: pip install -e ".[keras]"')
DATA = Path(__file__).parent / "data" / "keras"
HANGS = DATA / "damaged" / "hangs_load_keras.h5"  # stack_keras2.h5 with ~4 KB zeroed near offset 6,670


@pytest.fixture
def stand_in(monkeypatch):
    """``stand_in(body)``: the next helper is a stand-in that says it is ready, then runs ``body`` (Python)."""

    def install(body):
        ready = "import sys; sys.stdout.buffer.write(b'R' + bytes(8)); sys.stdout.buffer.flush()\n"
        monkeypatch.setattr(h5guard, "_BOOT", ready + body)

    h5guard.stop()
    yield install
    h5guard.stop()  # the stand-in goes; the next read starts a real helper


@needs_h5py
def test_the_file_that_hung_load_keras_is_refused_within_seconds():
    from minicnn.interop import KerasFormatError, load_keras

    load_keras(DATA / "stack_keras2.h5")  # the helper is up: time the damaged read alone
    helper = h5guard._reader
    start = time.monotonic()
    with pytest.raises(KerasFormatError, match=r"hangs_load_keras\.h5: damaged HDF5 file \(not read within 5 s"):
        load_keras(HANGS)
    assert time.monotonic() - start < h5guard.READ_SECONDS + 5
    assert helper.proc.returncode is not None, "the stuck helper was killed and reaped (no zombie)"
    assert load_keras(DATA / "stack_keras2.h5").input_shape == (9, 9, 3)  # a fresh helper serves the next file


@needs_h5py
@pytest.mark.parametrize("name", ["stack_keras2.h5", "stack_keras3.h5"])
def test_a_good_file_reads_as_h5py_reads_it(name):
    got = h5guard.read_hdf5(DATA / name)
    from_bytes = h5guard.read_hdf5((DATA / name).read_bytes())
    seen = []

    def same(path, item):
        for mine in (got[path], from_bytes[path]):
            if isinstance(item, h5py.Dataset):
                value = item[()]
                assert mine.dtype == value.dtype and np.array_equal(mine, value), path
            else:
                assert list(mine) == list(item), path
                assert mine.attrs.keys() == item.attrs.keys(), path
                for key, value in item.attrs.items():
                    assert isinstance(mine.attrs[key], type(value)), (path, key)
                    assert np.array_equal(np.asarray(mine.attrs[key], dtype=object), np.asarray(value, dtype=object))
        seen.append(path)

    with h5py.File(DATA / name, "r") as f:
        f.visititems(same)
        assert got.attrs == dict(f.attrs)
    assert len(seen) > 25 and got.name == "/" and got["model_weights"].name == "/model_weights"
    assert "model_weights/conv2d" in got and "model_weights/nothing" not in got and got.get("x/y") is None
    with pytest.raises(KeyError, match="'nothing' is not in HDF5 group '/model_weights'"):
        got["model_weights"]["nothing"]


@needs_h5py
def test_skip_leaves_top_level_members_unread(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["keep/a"] = np.arange(3)
        f["optimizer_weights/b"] = np.arange(4)
        f["soft"] = h5py.SoftLink("/keep/a")
        f["elsewhere"] = h5py.ExternalLink("other.h5", "/x")
    got = h5guard.read_hdf5(tmp_path / "f.h5", skip=("optimizer_weights",))
    assert list(got) == ["keep"], "skipped, and links are not followed"
    assert np.array_equal(got["keep/a"], np.arange(3))


@needs_h5py
def test_damaged_bytes_give_hdf5_read_error_with_h5pys_reason():
    with pytest.raises(h5guard.HDF5ReadError, match=r"^OSError: .*file signature not found"):
        h5guard.read_hdf5(b"not an HDF5 file" * 8)
    with pytest.raises(FileNotFoundError):
        h5guard.read_hdf5(DATA / "no_such_file.h5")


def test_a_reader_that_never_answers_is_stopped_at_the_limit(stand_in, monkeypatch):
    stand_in("import time; time.sleep(600)\n")
    monkeypatch.setattr(h5guard, "READ_SECONDS", 0.5)
    start = time.monotonic()
    with pytest.raises(h5guard.HDF5ReadError, match=r"not read within 0.5 s, so its reader was stopped"):
        h5guard.read_hdf5(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert time.monotonic() - start < 10
    assert h5guard._reader.proc.returncode is not None, "killed and reaped"


def test_a_reader_that_crashes_is_reported(stand_in):
    read_request = "r = sys.stdin.buffer; [r.read(int.from_bytes(r.read(9)[1:], 'little')) for _ in range(2)]\n"
    stand_in("import os, sys\n" + read_request + "os._exit(3)\n")
    with pytest.raises(h5guard.HDF5ReadError, match=r"the HDF5 library crashed reading it \(exit status 3\)"):
        h5guard.read_hdf5(b"\x89HDF\r\n\x1a\n" + bytes(100))


def test_a_reader_that_cannot_start_is_reported(stand_in, monkeypatch):
    monkeypatch.setattr(h5guard, "_BOOT", "raise SystemExit(4)")
    with pytest.raises(h5guard.HDF5ReadError, match=r"the HDF5 reader failed to start \(4\)"):
        h5guard.read_hdf5(b"x")


@needs_h5py
def test_a_killed_helper_is_replaced():
    h5guard.read_hdf5(DATA / "stack_keras3.h5")
    first = h5guard._reader
    first.proc.kill()
    first.proc.wait()
    assert "model_weights" in h5guard.read_hdf5(DATA / "stack_keras3.h5")
    assert h5guard._reader is not first


@needs_h5py
@pytest.mark.skipif(sys.platform == "win32", reason="checks a process id with os.kill(pid, 0), POSIX only")
def test_the_helper_ends_with_the_program():
    code = (
        "import sys; from minicnn import h5guard; "
        f"h5guard.read_hdf5({str(DATA / 'stack_keras3.h5')!r}); print(h5guard._reader.proc.pid)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    pid = int(out.stdout)
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
