"""Files made to hurt (tests/crafted_files.py): each load runs in a child process with a time and memory limit
(tests/loader_child.py), so a crash or a hang fails one test instead of killing pytest.

Every case must end in the loader's own error (DatasetError, CheckpointError, KerasFormatError),
within seconds, within a few hundred MB, with the user's files and the model's weights as they were.
"""

import json
import shutil
import zipfile
from pathlib import Path

import crafted_files as crafted
import pytest
from loader_child import LoaderChild

SECONDS = 20.0  # every case ends in well under a second; a loop or a bomb would not
MEMORY_MB = 400  # beyond the child's own imports: "a few hundred MB"
KERAS = Path(__file__).parent / "data" / "keras" / "stack_keras3.keras"


@pytest.fixture
def child(loader):
    return loader


def assert_refused(result, error: str, path=None):
    assert result.outcome == "refused", f"expected {error}, got {result.outcome}: {result.message or result.value}"
    assert result.is_refusal(error), f"expected {error}, got {result.error}: {result.message}"
    assert result.error != "AssertionError", result.message
    if path is not None:
        assert str(path) in result.message, f"the message does not name the file: {result.message}"
    assert result.seconds < SECONDS and result.grew_mb < MEMORY_MB


# ---- CIFAR batches ---------------------------------------------------------------------------------------
def test_the_assembled_batch_is_valid(child, tmp_path):
    """The cases below change one thing of this batch: it must load, or they would prove nothing."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(crafted.valid_batch())
    result = child.call("crafted_files", "load_batch", str(path))
    assert result.outcome == "returned", result.message


@pytest.mark.parametrize("name", list(crafted.PICKLES))
def test_crafted_batch_is_refused(child, tmp_path, name):
    path = tmp_path / "data_batch_1"
    path.write_bytes(crafted.PICKLES[name])
    assert_refused(child.call("crafted_files", "load_batch", str(path)), "DatasetError", path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_of_every_pickle_protocol_load_as_before(child, tmp_path, protocol):
    """Python 3 writes bytes as _codecs.encode at protocol 2 and as BINBYTES from 3 on; protocol 5
    pickles arrays through numpy's _frombuffer, which the loader does not allow (nor did it before)."""
    path = tmp_path / "data_batch_1"
    crafted.with_pickle_protocol(str(path), protocol)
    result = child.call("crafted_files", "load_batch", str(path))
    if protocol == 5:
        assert_refused(result, "DatasetError", path)
        assert "_frombuffer" in result.message
    else:
        assert result.outcome == "returned", result.message


def test_every_one_byte_change_of_a_batch_header_loads_or_is_refused(tmp_path):
    """All 255 other values of every byte outside the pixels of a one-image batch as write_batch
    writes it, in one child: a crash of any fails this test."""
    path = tmp_path / "data_batch_1"
    crafted.write_scan_batch(str(path))
    with LoaderChild(memory_mb=MEMORY_MB, seconds=600) as child:
        result = child.call("crafted_files", "scan_batch_header", str(path))
    assert result.outcome == "returned", f"{result.outcome}: {result.message}"
    counts = result.value
    assert counts["loaded"] + counts["refused"] == counts["positions"] * 255
    assert counts["refused"] > counts["loaded"] > 0  # both happen: most bytes matter, a few (labels) do not


# ---- tar archives ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(crafted.ARCHIVES))
def test_crafted_archive_is_refused_and_writes_nothing(child, tmp_path, name):
    archive, dest = tmp_path / "cifar-10-python.tar.gz", tmp_path / "data"
    archive.write_bytes(crafted.ARCHIVES[name])
    dest.mkdir()
    (dest / "notes.txt").write_text("the user's")
    assert_refused(child.call("crafted_files", "extract", str(archive), str(dest)), "DatasetError", archive)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]


def test_files_beyond_the_size_cap_are_refused(child, tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(crafted.two_members_over(1 << 20))
    result = child.call("crafted_files", "extract", str(archive), str(tmp_path / "out"), 1 << 20)
    assert_refused(result, "DatasetError", archive)
    assert "more than 1048576 bytes" in result.message


def test_an_archive_never_empties_or_replaces_a_folder_it_did_not_create(child, tmp_path):
    """The archive's top-level folder has the name of one the user keeps in --data-dir: refused, the
    folder untouched (the old extraction deleted its contents)."""
    made = tmp_path / "made" / "photos"
    made.mkdir(parents=True)
    (made / "holiday.jpg").write_bytes(b"not CIFAR")
    archive = tmp_path / "photos.tar.gz"
    crafted.tar_of(str(archive), str(made))
    dest = tmp_path / "data"
    (dest / "photos").mkdir(parents=True)
    (dest / "photos" / "mine.txt").write_text("keep me")
    result = child.call("crafted_files", "extract", str(archive), str(dest))
    assert_refused(result, "DatasetError", archive)
    assert "already there" in result.message
    assert [p.name for p in (dest / "photos").iterdir()] == ["mine.txt"]


def test_load_cifar10_refreshes_its_own_damaged_folder_without_deleting_other_files(tmp_path):
    """A damaged cifar-10-batches-py beside a good archive is extracted again over it, file by file:
    the batches come back, a file the user put there stays."""
    from cifar_fixture import make_cifar_archive

    from minicnn.datasets.cifar10 import load_cifar10

    md5, ((x, _), _) = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", rows_per_batch=3, test_rows=3)
    shutil.rmtree(tmp_path / "staging")
    load_cifar10(tmp_path, download=False, md5=md5)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    (folder / "my_notes.txt").write_text("keep me")
    (x2, _), _ = load_cifar10(tmp_path, download=False, md5=md5)
    assert (x2 == x).all() and (folder / "my_notes.txt").read_text() == "keep me"


# ---- checkpoints -----------------------------------------------------------------------------------------
MUST_REFUSE_IN_LOAD_WEIGHTS = {  # the rest change only the stored config, which load_weights does not build
    name
    for name in crafted.CHECKPOINT_META
    if not any(word in name for word in ("units", "filters", "layer option", "layer name", "input shape", "dtype"))
}


@pytest.mark.parametrize("name", list(crafted.CHECKPOINT_META))
def test_crafted_checkpoint_meta_is_refused_with_the_weights_unchanged(child, tmp_path, name):
    path = tmp_path / "model.npz"
    crafted.good_checkpoint(str(path))
    crafted.rewrite_meta(str(path), crafted.CHECKPOINT_META[name])
    result = child.call("crafted_files", "load_model_from", str(path))
    if name == "optimizer beta1 true":  # Adam's own setting: load_model builds no optimizer to check it
        assert result.outcome == "returned" or result.is_refusal("CheckpointError"), result.message
    else:
        assert_refused(result, "CheckpointError", path)
    result = child.call("crafted_files", "load_weights_keeping", str(path))  # raises AssertionError if weights moved
    if name in MUST_REFUSE_IN_LOAD_WEIGHTS:
        assert_refused(result, "CheckpointError", path)
    else:
        assert result.outcome == "returned" or result.is_refusal("CheckpointError"), result.message


@pytest.mark.parametrize("name", list(crafted.RESUME_META))
def test_crafted_run_state_is_refused_before_the_weights_change(child, tmp_path, name):
    path = tmp_path / "model.npz"
    crafted.good_checkpoint(str(path))
    crafted.rewrite_meta(str(path), crafted.RESUME_META[name])
    result = child.call("crafted_files", "resume_keeping", str(path))
    if name == "settings differ":
        assert result.is_refusal("SettingsChanged"), result.message
    else:
        assert_refused(result, "CheckpointError", path)


def test_the_good_checkpoint_loads_and_resumes(child, tmp_path):
    path = tmp_path / "model.npz"
    crafted.good_checkpoint(str(path))
    for function in ("load_model_from", "load_weights_keeping", "resume_keeping"):
        result = child.call("crafted_files", function, str(path))
        assert result.outcome == "returned", f"{function}: {result.message}"


def test_a_deflated_member_claiming_512_mib_is_refused_before_it_is_inflated(child, tmp_path):
    path = tmp_path / "model.npz"
    crafted.good_checkpoint(str(path))
    crafted.npz_member_bomb(str(path))
    assert path.stat().st_size < 4 << 20
    result = child.call("crafted_files", "load_model_from", str(path))
    assert_refused(result, "CheckpointError", path)
    assert "declare more than" in result.message


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,), }",
        "{'descr': '<f4', 'fortran_order': 'no', 'shape': (1,), }",
        "__import__('os').system('true')",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'evil': 1}",
    ],
    ids=["object", "record", "negative", "huge", "order", "code", "extra key"],
)
def test_crafted_npy_headers_are_refused_in_python(child, tmp_path, header):
    path = tmp_path / "model.npz"
    crafted.good_checkpoint(str(path))
    text = header.ljust(117) + "\n"
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("extra/x.npy", b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + bytes(4))
    assert_refused(child.call("crafted_files", "load_model_from", str(path)), "CheckpointError", path)


# ---- Keras files -----------------------------------------------------------------------------------------
def _dense_units(units):
    def change(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = units

    return change


@pytest.mark.parametrize("units", [131_072, 10**30, "4", -1])
def test_keras_config_asking_for_more_than_the_file_holds_is_refused_before_allocating(child, tmp_path, units):
    pytest.importorskip("h5py", reason='reading Keras files needs h5py: pip install -e ".[keras]"')
    path = tmp_path / "model.keras"
    crafted.keras_with_config(str(KERAS), str(path), _dense_units(units))
    assert_refused(child.call("crafted_files", "load_keras_file", str(path)), "KerasFormatError", path)


def test_keras_config_json_bomb_is_refused_before_it_is_inflated(child, tmp_path):
    pytest.importorskip("h5py", reason='reading Keras files needs h5py: pip install -e ".[keras]"')
    path = tmp_path / "model.keras"
    crafted.keras_config_bomb(str(KERAS), str(path))
    result = child.call("crafted_files", "load_keras_file", str(path))
    assert_refused(result, "KerasFormatError", path)
    assert "config.json declares" in result.message


def test_the_unchanged_keras_copy_loads(child, tmp_path):
    pytest.importorskip("h5py", reason='reading Keras files needs h5py: pip install -e ".[keras]"')
    path = tmp_path / "model.keras"
    crafted.keras_with_config(str(KERAS), str(path), lambda config: None)
    result = child.call("crafted_files", "load_keras_file", str(path))
    assert result.outcome == "returned", result.message
    assert json.dumps(result.value)


@pytest.mark.parametrize("size", [(10_000, 10_000), (9_000, 8_000), (70_000_000, 1)])
def test_a_picture_claiming_too_many_pixels_is_refused_before_decoding(child, tmp_path, size):
    """Between 64 and 179 million pixels Pillow would decode (it only warns): hundreds of MB for a tiny file."""
    path = tmp_path / "photo.png"
    path.write_bytes(crafted.png_claiming(*size))
    result = child.call("crafted_files", "load_picture", str(path))
    assert_refused(result, "DatasetError", path)
    assert "pixels, more than the" in result.message
