"""CIFAR-10 loading: find, download (from a local server), verify, extract safely, unpickle safely."""

import functools
import http.server
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest
from cifar_fixture import make_cifar_archive, make_cifar_folder, make_images, tar_with
from conftest import mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.datasets import (
    DatasetError,
    augment,
    channel_stats,
    crop_flip,
    load_cifar10,
    minibatches,
    standardize,
)
from minicnn.datasets.cifar10 import extract_tar_safely, read_batch, safe_unpickle, write_batch


@pytest.fixture
def http_dir(tmp_path):
    """Serve a folder on 127.0.0.1; yields (folder, base_url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_checks_extracts_and_loads(tmp_path, http_dir):
    served, base = http_dir
    md5, ((x, y), (xt, yt)) = make_cifar_archive(served / "cifar-10-python.tar.gz")
    data_dir = tmp_path / "cache"
    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir, url=f"{base}/cifar-10-python.tar.gz", md5=md5)
    assert x_train.shape == (40, 32, 32, 3) and x_train.dtype == np.uint8  # 5 batches of 8, not 10,000
    assert y_train.shape == (40,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_train, x)  # NHWC pixels survive the CHW round trip
    np.testing.assert_array_equal(y_train, y)
    np.testing.assert_array_equal(x_test, xt)
    np.testing.assert_array_equal(y_test, yt)
    assert (data_dir / "cifar-10-python.tar.gz").is_file()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporaries left
    # Second call: uses the extracted folder, never the network.
    again = load_cifar10(data_dir, url="http://127.0.0.1:9/unreachable", md5=md5)
    np.testing.assert_array_equal(again[0][0], x)


def test_file_url_works_too(tmp_path):
    md5, ((x, _), _) = make_cifar_archive(tmp_path / "src" / "cifar-10-python.tar.gz")
    (x_train, _), _ = load_cifar10(
        tmp_path / "cache", url=(tmp_path / "src" / "cifar-10-python.tar.gz").as_uri(), md5=md5
    )
    np.testing.assert_array_equal(x_train, x)


def test_wrong_checksum_is_refused_and_nothing_is_kept(tmp_path, http_dir):
    served, base = http_dir
    md5, _ = make_cifar_archive(served / "cifar-10-python.tar.gz")
    data_dir = tmp_path / "cache"
    with pytest.raises(DatasetError) as info:
        load_cifar10(data_dir, url=f"{base}/cifar-10-python.tar.gz", md5="0" * 32)
    assert md5 in str(info.value) and "0" * 32 in str(info.value)  # names both sums
    assert not data_dir.exists()  # the folder made for the download is gone too


class TruncatingHandler(QuietHandler):
    """Announces the whole file but sends half of it, then hangs up."""

    def do_GET(self):
        data = (self.directory_path / "cifar-10-python.tar.gz").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])


def test_cut_off_download_is_never_taken_for_complete(tmp_path, http_dir):
    served, _ = http_dir
    md5, _ = make_cifar_archive(served / "cifar-10-python.tar.gz")
    handler = type("H", (TruncatingHandler,), {"directory_path": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DatasetError, match="cut off|failed"):
            load_cifar10(tmp_path / "cache", url=f"http://127.0.0.1:{server.server_address[1]}/x", md5=md5)
    finally:
        server.shutdown()
    assert not (tmp_path / "cache").exists()  # the folder made for the download is gone too


def test_existing_folder_is_used_as_is_with_any_batch_size(tmp_path):
    (x, y), (xt, yt) = make_cifar_folder(tmp_path, rows_per_batch=3, test_rows=4)
    for data_dir in (tmp_path, tmp_path / "cifar-10-batches-py"):  # torchvision root, or the folder itself
        (x_train, y_train), (x_test, _) = load_cifar10(data_dir, download=False)
        np.testing.assert_array_equal(x_train, x)
        assert x_test.shape == (4, 32, 32, 3)
    for k in (5, 4, 3):  # a home-made set may have fewer batches (without a gap)
        (tmp_path / "cifar-10-batches-py" / f"data_batch_{k}").unlink()
    np.testing.assert_array_equal(load_cifar10(tmp_path, download=False)[0][0], x[:6])


def test_default_dir_comes_from_env(tmp_path, monkeypatch):
    make_cifar_folder(tmp_path, rows_per_batch=2, test_rows=2)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    (x_train, _), _ = load_cifar10(download=False)
    assert len(x_train) == 10


def test_missing_data_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path, download=False)


def test_local_archive_is_checked_before_use(tmp_path):
    md5, ((x, _), _) = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="MD5"):
        load_cifar10(tmp_path, download=False, md5="f" * 32)
    (x_train, _), _ = load_cifar10(tmp_path, download=False, md5=md5)
    np.testing.assert_array_equal(x_train, x)


def damage(folder, how):
    """What an extraction stopped half-way leaves: a batch file missing, or cut short."""
    if how == "missing":
        (folder / "data_batch_3").unlink()
    elif how == "no test batch":
        (folder / "test_batch").unlink()
    else:
        raw = (folder / "data_batch_2").read_bytes()
        (folder / "data_batch_2").write_bytes(raw[: len(raw) // 2])


@pytest.mark.parametrize(
    "how, named",
    [
        ("missing", "data_batch_3 missing"),
        ("no test batch", "test_batch missing"),
        ("truncated", "data_batch_2: not a CIFAR-10 batch"),
    ],
)
def test_damaged_folder_names_the_file_and_how_to_recover(tmp_path, how, named):
    make_cifar_folder(tmp_path, rows_per_batch=3, test_rows=4)
    folder = tmp_path / "cifar-10-batches-py"
    damage(folder, how)
    for data_dir in (tmp_path, folder):  # the root holding the folder, or the folder itself
        with pytest.raises(DatasetError) as info:
            load_cifar10(data_dir, url="http://127.0.0.1:9/never-asked", md5=None)
        message = str(info.value)
        assert named in message and f"{folder} is damaged" in message, message
        assert f"delete {folder}" in message and "cifar-10-python.tar.gz" in message
        assert "Traceback" not in message and (how != "truncated" or "truncated" in message)


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_damaged_folder_is_extracted_again_from_the_verified_archive_beside_it(tmp_path, how, capsys):
    md5, ((x, y), (xt, _)) = make_cifar_archive(tmp_path / "src" / "cifar-10-python.tar.gz", rows_per_batch=3)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.replace(tmp_path / "src" / "cifar-10-python.tar.gz", data_dir / "cifar-10-python.tar.gz")
    load_cifar10(data_dir, download=False, md5=md5)  # extracts it once
    damage(data_dir / "cifar-10-batches-py", how)
    with pytest.raises(DatasetError, match="MD5"):  # an archive that fails its check is not used
        load_cifar10(data_dir, download=False, md5="0" * 32)
    (x_train, y_train), (x_test, _) = load_cifar10(data_dir, download=False, md5=md5)
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(y_train, y)
    np.testing.assert_array_equal(x_test, xt)
    err = capsys.readouterr().err
    assert "is damaged" in err and "extracting it again" in err
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]


def _info(name, kind=tarfile.REGTYPE, data=b"x", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    "member",
    [
        _info("/etc/evil"),
        _info("cifar-10-batches-py/../../evil"),
        _info("../evil"),
        _info("cifar-10-batches-py/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        _info("cifar-10-batches-py/hard", tarfile.LNKTYPE, linkname="cifar-10-batches-py/test_batch"),
        _info("cifar-10-batches-py/dev", tarfile.CHRTYPE),
        _info("cifar-10-batches-py/fifo", tarfile.FIFOTYPE),
    ],
    ids=["absolute", "dotdot-inside", "dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_unsafe_archives_are_refused_and_nothing_is_extracted(tmp_path, member):
    archive = tar_with(tmp_path / "bad.tar.gz", [_info("cifar-10-batches-py/test_batch", data=b"ok"), member])
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="refusing"):
        extract_tar_safely(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_corrupt_archive_is_refused(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    md5, _ = make_cifar_archive(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError):
        load_cifar10(tmp_path, download=False, md5=None)


class _RunsCode:
    """A pickle that would call os.system if it were trusted."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_imports_anything_else_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}, protocol=2)
    (tmp_path / "data_batch_1").write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing to load"):
        read_batch(tmp_path / "data_batch_1")
    assert not marker.exists()
    with pytest.raises(DatasetError, match="refusing"):
        safe_unpickle(pickle.dumps(np.random.default_rng))  # even an innocent-looking callable


def test_batch_with_wrong_contents_is_refused(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DatasetError, match=r"\(N, 3072\)"):
        read_batch(path)
    write_batch(path, np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    data = pickle.loads(path.read_bytes())
    data[b"labels"] = [0, 12]
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(DatasetError, match="0..9"):
        read_batch(path)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes_only_raise_dataset_error(tmp_path, data, loader):
    path = tmp_path / "batch"
    path.write_bytes(data)
    result = loader.call("crafted_files", "load_batch_checked", str(path))  # in a child: a crash fails here
    assert result.outcome == "returned" or result.is_refusal("DatasetError"), f"{result.outcome}: {result.message}"


def _valid_batch_bytes():
    x, y = make_images(2, 0)
    import io

    buf = io.BytesIO()
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(2, 3072)
    pickle.dump({b"labels": [int(v) for v in y], b"data": data}, buf, protocol=2)
    return buf.getvalue()


VALID = _valid_batch_bytes()


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(1, len(VALID)),
)
def test_fuzz_mutated_batches_only_raise_dataset_error(tmp_path, edits, cut, loader):
    path = tmp_path / "batch"
    path.write_bytes(mutated(VALID, edits, cut))
    result = loader.call("crafted_files", "load_batch_checked", str(path))  # in a child: a crash fails here
    assert result.outcome == "returned" or result.is_refusal("DatasetError"), f"{result.outcome}: {result.message}"


# -- preprocessing -------------------------------------------------------------------------
def test_channel_stats_and_standardize():
    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3)).astype(np.uint8)
    mean, std = channel_stats(x, batch_size=7)
    np.testing.assert_allclose(mean, x.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, x.reshape(-1, 3).std(0), rtol=1e-5)
    z = standardize(x, mean, std)
    assert z.dtype == np.float32 and x.dtype == np.uint8
    np.testing.assert_allclose(z.reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 3).std(0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        standardize(x, mean[:2], std)


def test_augment_crops_and_flips_each_image():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 8, 2)).astype(np.float32)
    out = augment(x, np.random.default_rng(1), pad=0)  # no padding: only flips can happen
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
    same = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same)) and 10 < sum(flipped) < 54
    out = augment(x, np.random.default_rng(2), pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    # Every crop is a window of the zero-padded image (possibly mirrored).
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for o, p in zip(out[:8], padded[:8]):
        found = any(
            np.array_equal(o, c[:, ::f])
            for dy in range(5)
            for dx in range(5)
            for c in [p[dy : dy + 8, dx : dx + 8]]
            for f in (1, -1)
        )
        assert found


def test_crop_flip_draws_what_augment_draws_with_its_padding_and_refuses_a_bad_one():
    x = np.random.default_rng(0).standard_normal((32, 8, 8, 2)).astype(np.float32)
    for padding in (0, 2, 4):
        fn = crop_flip(padding)
        got = fn(x, np.random.default_rng(5))
        np.testing.assert_array_equal(got, augment(x, np.random.default_rng(5), pad=padding))
        assert fn.accepts_device_arrays and fn.padding == padding  # fit may hand it device batches
    moved_by_two = crop_flip(2)(x, np.random.default_rng(5))
    assert not np.array_equal(moved_by_two, crop_flip(4)(x, np.random.default_rng(5)))
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"padding must be a whole number of pixels >= 0, got {bad!r}"):
            crop_flip(bad)


def test_minibatches_cover_every_example_once():
    batches = list(minibatches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches)) == list(range(10))
    with pytest.raises(ValueError):
        list(minibatches(10, 0))
