"""CIFAR-10: find it, or download it, check it, extract it safely, and read it without running code.

The official python release is a tar.gz of pickled batches: dicts with ``data``, a
``(N, 3072)`` uint8 array whose rows are an image's red, green and blue planes (CHW
order, 32x32 each), and ``labels``, N ints in 0..9. Pickle can run arbitrary code, so
the batches are read with an *allowlist* unpickler that can only rebuild NumPy arrays.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..outputs import new_folders, remove_empty
from ..training import effective_verbose

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
BATCH_FILES = TRAIN_FILES + [TEST_FILE]
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetError(ValueError):
    """A dataset file that is missing, corrupt, unsafe or fails its checksum."""


# -- where the data is -------------------------------------------------------------------
def default_data_dir() -> Path:
    """``$MINICNN_DATA``, else ``~/.cache/minicnn``."""
    return Path(os.environ.get("MINICNN_DATA") or Path.home() / ".cache" / "minicnn").expanduser()


def usual_places(data_dir: Path) -> list[Path]:
    """Where a ready ``cifar-10-batches-py`` may already be, in the order they are searched:
    in ``data_dir`` (a torchvision root), ``data_dir`` itself (the folder, e.g. Keras's),
    then in ``$MINICNN_DATA``, ``~/.cache/minicnn`` and ``~/.keras/datasets`` (Keras's download)."""
    places = [data_dir / FOLDER_NAME, data_dir]
    if os.environ.get("MINICNN_DATA"):
        places.append(Path(os.environ["MINICNN_DATA"]).expanduser() / FOLDER_NAME)
    places += [Path.home() / ".cache" / "minicnn" / FOLDER_NAME, Path.home() / ".keras" / "datasets" / FOLDER_NAME]
    return list(dict.fromkeys(places))


def _offline_advice(data_dir: Path, url: str) -> str:
    return (
        f"CIFAR-10 is not on this machine yet. Without network: fetch {ARCHIVE_NAME} (163 MB, MD5 {OFFICIAL_MD5}) "
        f"from {url} elsewhere and put it in {data_dir} (it is checked, then extracted), or copy the extracted "
        f"folder {FOLDER_NAME} there. data_dir (--data-dir) also takes Keras's folder "
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
    without the archive, :class:`DatasetError` names the file and says how to recover.
    """
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
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
    extract_tar_safely(archive, data_dir)
    if _missing(own) != []:
        raise DatasetError(f"{archive}: extracted, but it holds no {FOLDER_NAME}/{TEST_FILE} and data batches")
    return _read_folder(own)


# -- download and checksum --------------------------------------------------------------------
def file_md5(path, chunk=1 << 20) -> str:
    """The MD5 of the file at ``path`` as 32 hex digits, read ``chunk`` bytes at a time."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_md5(path, expected: str):
    """Raise :class:`DatasetError` naming both sums unless the file's MD5 is ``expected``."""
    got = file_md5(path)
    if got != expected.lower():
        raise DatasetError(
            f"{path}: MD5 is {got}, expected {expected.lower()} — the file is corrupt, "
            f"incomplete or not the official release (delete it to download again)"
        )


def download_file(url: str, dest, md5: str | None, progress=True):
    """Fetch ``url`` to ``dest`` through a temporary file, renamed only once complete and verified.

    A cut-off transfer (fewer bytes than the server announced) or a wrong MD5 raises
    :class:`DatasetError` and leaves no ``dest`` behind. (Its own temporary file, not
    :func:`minicnn.outputs.write_atomic`: a download's failures are :class:`DatasetError`, not a
    run's :class:`~minicnn.outputs.OutputError`, and the MD5 is checked before the rename.)
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.md5()
    received = 0
    try:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except Exception as exc:
            raise DatasetError(f"cannot download {url}: {exc}") from None
        with response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"Downloading {dest.name}",
                disable=not progress or effective_verbose(1) != 1,
                leave=False,
            ) as bar:  # no bar in a log
                while True:
                    try:
                        block = response.read(1 << 16)
                    except Exception as exc:  # connection dropped mid-way
                        raise DatasetError(f"download of {url} failed after {received} bytes: {exc}") from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    received += len(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise DatasetError(f"download of {url} was cut off: got {received} of {total} bytes")
        if md5 is not None and h.hexdigest() != md5.lower():
            raise DatasetError(f"download of {url}: MD5 is {h.hexdigest()}, expected {md5.lower()}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- safe extraction ----------------------------------------------------------------------
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


# -- reading the batches without running code ---------------------------------------------------
def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class _ArrayOnlyUnpickler(pickle._Unpickler):
    """Rebuilds only what a CIFAR batch holds: dicts, lists, strings, ints and NumPy arrays.

    ``find_class`` is the one door through which a pickle can reach code; it opens only
    to the four callables NumPy arrays are rebuilt from. Anything else is refused before
    it is imported, let alone called.

    It is pickle's pure-Python unpickler, as fast here (a batch is one big string): the C one
    grows its memo to the largest index a file names, so one damaged byte (``BINPUT`` turned
    ``LONG_BINPUT``) had it allocate and zero gigabytes; this one keeps the memo in a dict.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch only needs NumPy arrays")
        if name == "_reconstruct":
            return _reconstruct()
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def safe_unpickle(data: bytes):
    """Unpickle ``data`` (Python 2 or 3 pickles) allowing only NumPy arrays; DatasetError otherwise."""
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RecursionError:
        raise DatasetError("pickle nests too deeply") from None
    except EOFError:
        raise DatasetError("the pickle ends early: the file is truncated") from None
    except KeyError as exc:  # the pure-Python unpickler's word for a byte that is no opcode
        raise DatasetError(f"invalid pickle opcode {exc}") from None
    except Exception as exc:  # UnpicklingError, EOFError, struct/Type/Value errors from garbage
        raise DatasetError(f"{type(exc).__name__}: {exc}") from None


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> ``(x (N, 32, 32, 3) uint8, y (N,) int64)``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    try:
        batch = safe_unpickle(raw)
    except DatasetError as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype}{data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{path}: 'labels' must be a list of ints") from None
    if y.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {data.shape[0]} images but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9, got {y.min()}..{y.max()}")
    # Rows are CHW planes; NHWC is (N, 3, 32, 32) with the channel axis moved last.
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y


def write_batch(path, x, y, protocol=2):
    """Write images ``(N, 32, 32, 3)`` uint8 and labels as a batch in the official layout.

    Used by tests (and handy for making small CIFAR-format datasets).
    """
    data = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)).reshape(len(x), 3072)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"minicnn", b"labels": [int(v) for v in y], b"data": data}, f, protocol=protocol)
