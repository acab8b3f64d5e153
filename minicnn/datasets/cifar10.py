"""CIFAR-10: find it, or download it, check it, extract it safely, and read it without running code.

This module finds and loads; the other steps have a module each: :mod:`.download`
(download and MD5), :mod:`.safe_tar` (safe extraction), :mod:`.safe_pickle` (reading the
batches), all re-exported here.

The official python release is a tar.gz of pickled batches: dicts with ``data``, a
``(N, 3072)`` uint8 array whose rows are an image's red, green and blue planes (CHW
order, 32x32 each), and ``labels``, N ints in 0..9. Pickle can run arbitrary code, so
the batches are read with an *allowlist* unpickler that can only rebuild NumPy arrays.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..run.outputs import new_folders, remove_empty
from .download import download_file, file_md5, verify_md5  # noqa: F401  (re-exported, as before)
from .errors import DatasetError
from .image_files import holds_images
from .safe_pickle import read_batch, safe_unpickle, write_batch  # noqa: F401
from .safe_tar import extract_tar_safely

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
BATCH_FILES = TRAIN_FILES + [TEST_FILE]
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# -- where the data is -------------------------------------------------------------------
def default_data_dir() -> Path:
    """``$MINICNN_DATA``, else ``~/.cache/minicnn``."""
    return Path(os.environ.get("MINICNN_DATA") or Path.home() / ".cache" / "minicnn").expanduser()


def usual_places(data_dir: Path) -> list[Path]:
    """Where a ready ``cifar-10-batches-py`` may already be, in the order they are searched:
    in ``data_dir`` (a torchvision root), ``data_dir`` itself (the folder, e.g. Keras's),
    then in ``$MINICNN_DATA``, ``~/.cache/minicnn``, where Keras 2 and 3 keep their download under
    ``~/.keras/datasets``, and ``./data`` (torchvision's tutorials' root)."""
    places = [data_dir / FOLDER_NAME, data_dir]
    if os.environ.get("MINICNN_DATA"):
        places.append(Path(os.environ["MINICNN_DATA"]).expanduser() / FOLDER_NAME)
    keras = Path.home() / ".keras" / "datasets"
    places += [
        Path.home() / ".cache" / "minicnn" / FOLDER_NAME,
        keras / FOLDER_NAME,  # Keras 2 and early Keras 3
        keras / f"{FOLDER_NAME}-target" / FOLDER_NAME,  # later Keras 3
        keras / f"{FOLDER_NAME}_extracted" / FOLDER_NAME,
        Path("data") / FOLDER_NAME,  # torchvision's tutorials: CIFAR10(root="./data")
    ]
    return list(dict.fromkeys(places))


def _offline_advice(data_dir: Path, url: str) -> str:
    return (
        f"CIFAR-10 is not on this machine yet. Without network: fetch {ARCHIVE_NAME} (163 MB, MD5 {OFFICIAL_MD5}) "
        f"from {url} elsewhere and put it in {data_dir} (it is checked, then extracted), or copy the extracted "
        f"folder {FOLDER_NAME} there. data_dir also takes Keras's folder "
        f"(~/.keras/datasets/{FOLDER_NAME}) and torchvision's root (the folder holding {FOLDER_NAME}); "
        f"searched: {', '.join(map(str, usual_places(data_dir)))}"
    )


def _missing(folder: Path) -> list[str] | None:
    """The batch files ``folder`` lacks ([] when it is whole); None when it holds none (not a CIFAR folder).

    Whole means ``test_batch`` and ``data_batch_1`` .. ``data_batch_k`` without a gap (the
    official release has k = 5; a smaller home-made set may stop earlier): a batch missing
    before a later one, or a missing ``test_batch`` or ``data_batch_1``, is what an
    extraction or a copy stopped half-way leaves.
    """
    present = {name for name in BATCH_FILES if (folder / name).is_file()}
    if not present:
        return None
    last = max([i + 1 for i, name in enumerate(TRAIN_FILES) if name in present] or [1])
    return [name for name in TRAIN_FILES[:last] + [TEST_FILE] if name not in present]


def _read_folder(folder: Path):
    train = [read_batch(folder / name) for name in TRAIN_FILES if (folder / name).is_file()]
    x_test, y_test = read_batch(folder / TEST_FILE)
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])), (x_test, y_test)


def _damaged(folder: Path, what: str, data_dir: Path) -> str:
    return (
        f"{folder} is damaged: {what} (an extraction or a copy stopped half-way?). To recover, delete {folder} "
        f"and run again, to download and extract CIFAR-10 afresh; or put the archive {ARCHIVE_NAME} in {data_dir}: "
        f"it is verified and extracted again in its place"
    )


def refuse_a_folder_of_pictures(data_dir: Path) -> None:
    """Raise :class:`DatasetError` when ``data_dir`` holds pictures (or class sub-folders of them) and
    none of CIFAR-10's files: one's own pictures given as ``--data-dir`` are named as such, rather
    than CIFAR-10 being searched elsewhere or downloaded into that folder."""
    if any((data_dir / name).exists() for name in (ARCHIVE_NAME, FOLDER_NAME, *BATCH_FILES)):
        return
    if holds_images(data_dir):
        raise DatasetError(
            f"{data_dir} is a folder of pictures, not CIFAR-10 (it holds neither {FOLDER_NAME} nor {ARCHIVE_NAME}). "
            f"To train on these pictures, read them with minicnn.datasets.images.image_dataset_from_directory"
            f"('{data_dir}', image_size=(32, 32)) (one sub-folder per class); to classify them with a trained model, "
            f"run python -m minicnn.predict MODEL PICTURE...; for CIFAR-10, give the folder that holds it, "
            f"or an empty one to download it into"
        )


def load_cifar10(data_dir=None, download=True, url=OFFICIAL_URL, md5=OFFICIAL_MD5):
    """``(x_train, y_train), (x_test, y_test)``: uint8 NHWC images and int64 labels ``(N,)``.

    Looks for the folder ``cifar-10-batches-py`` (as Keras and torchvision leave it) in
    ``data_dir`` (default :func:`default_data_dir`) and the other :func:`usual_places`
    (``$MINICNN_DATA``, ``~/.cache/minicnn``, ``~/.keras/datasets``), then for the archive
    ``cifar-10-python.tar.gz`` in ``data_dir`` (checked against ``md5`` first; ``md5=None``
    skips the check, for a rebuilt copy), and otherwise, with ``download=True``, fetches the
    archive from ``url`` into ``data_dir``; offline, the error says where to put the files.
    Batches may hold any number of rows.

    A damaged folder (a batch file missing or unreadable, as an extraction stopped
    half-way leaves it) is extracted again from the archive beside it, once verified;
    without the archive, :class:`DatasetError` names the file and says how to recover. A folder
    of pictures without CIFAR-10's files is refused at once (:func:`refuse_a_folder_of_pictures`).
    """
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    refuse_a_folder_of_pictures(data_dir)
    archive, own = data_dir / ARCHIVE_NAME, data_dir / FOLDER_NAME
    damaged = []  # (folder, what is wrong with it)
    for folder in usual_places(data_dir):
        missing = _missing(folder)
        if missing is None:
            continue
        if missing:
            damaged.append((folder, f"{', '.join(missing)} missing"))
            continue
        try:
            arrays = _read_folder(folder)
        except DatasetError as exc:
            damaged.append((folder, str(exc)))
            continue
        if folder not in (own, data_dir):
            print(f"using CIFAR-10 from {folder}", file=sys.stderr)
        return arrays
    # No usable folder: extract the archive (downloaded first if need be); it replaces a damaged `own`.
    mine = [(folder, what) for folder, what in damaged if folder in (own, data_dir)]
    if mine and (mine[0][0] != own or not archive.is_file()):
        raise DatasetError(_damaged(*mine[0], data_dir))
    if not archive.is_file():
        if not download:
            raise DatasetError(
                f"CIFAR-10 not found in {data_dir}: expected the folder {FOLDER_NAME} "
                f"or the archive {ARCHIVE_NAME} there (download=False). " + _offline_advice(data_dir, url)
            )
        made = new_folders(data_dir)  # e.g. ~/.cache/minicnn on a first run: removed again if the download fails
        print(f"downloading CIFAR-10 ({ARCHIVE_NAME}, 163 MB) into {data_dir}", file=sys.stderr)
        try:
            download_file(url, archive, md5)
        except DatasetError as exc:  # offline, a proxy, a cut: say where to put the files by hand
            remove_empty(made)
            notes = "".join(f"\n{_damaged(folder, what, data_dir)}" for folder, what in damaged)
            raise DatasetError(f"{exc}\n{_offline_advice(data_dir, url)}{notes}") from None
    elif md5 is not None:
        verify_md5(archive, md5)
    if mine:
        print(f"{own} is damaged ({mine[0][1]}); extracting it again from {archive}", file=sys.stderr)
    extract_tar_safely(archive, data_dir, refresh=(FOLDER_NAME,) if mine else ())  # only a damaged own folder
    if _missing(own) != []:
        raise DatasetError(f"{archive}: extracted, but it holds no {FOLDER_NAME}/{TEST_FILE} and data batches")
    return _read_folder(own)


def load_data(data_dir=None, **options):
    """Keras's ``cifar10.load_data()``: ``(x_train, y_train), (x_test, y_test)`` with Keras's shapes and
    dtypes: images ``(50000, 32, 32, 3)`` and ``(10000, 32, 32, 3)`` uint8, labels ``(N, 1)`` uint8.

    Found where :func:`load_cifar10` looks (Keras's and torchvision's caches included), or
    downloaded as it does; ``options`` are its (``download``, ``url``, ``md5``)."""
    (x, y), (xt, yt) = load_cifar10(data_dir, **options)
    return (x, y.astype(np.uint8).reshape(-1, 1)), (xt, yt.astype(np.uint8).reshape(-1, 1))
