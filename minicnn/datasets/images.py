"""Keras's ``image_dataset_from_directory``: a folder of pictures, one sub-folder per class, as a data set.

Keras returns a ``tf.data.Dataset``; this returns an :class:`ImageDataset`, which iterates over the
same ``(images, labels)`` batches, has Keras's ``class_names`` and ``file_paths``, and gives the
whole set as arrays with :meth:`ImageDataset.to_arrays`. Pictures are decoded only when a batch is
asked for (:func:`~minicnn.datasets.image_files.read_image`), so a big folder never sits in memory.

The files are found, ordered, shuffled and split as Keras 3 does (``keras.utils.image_dataset_utils``):
classes are the sub-folders in alphanumeric order; files are walked in sorted order and shuffled once
by ``np.random.RandomState(seed)``; the validation subset is the last ``int(validation_split * N)``
of them. So ``file_paths`` lists the same files in the same order as Keras's, for the same seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .image_files import CHANNELS, IMAGE_SUFFIXES, INTERPOLATIONS, is_image_file, read_image

LABEL_MODES = ("int", "categorical", "binary", None)
SUBSETS = ("training", "validation", "both", None)
_SUFFIXES = ", ".join(IMAGE_SUFFIXES)


class ImageDataset:
    """Pictures read lazily from files, in batches: what :func:`image_dataset_from_directory` returns.

    Iterating yields ``(images, labels)`` per batch (images only when there are no labels): images
    float32 ``(batch, height, width, channels)`` with values 0..255, labels int32 ``(batch,)``
    (``label_mode="int"``), float32 one-hot ``(batch, classes)`` ("categorical") or float32
    ``(batch, 1)`` ("binary"). With ``batch_size=None``, single pictures instead. A shuffled set
    comes in a new order on each pass (drawn from ``seed`` and the pass's number, so repeatable);
    ``file_paths`` and :meth:`to_arrays` keep the set's own order.
    """

    def __init__(
        self,
        file_paths,
        labels,
        class_names,
        *,
        label_mode,
        batch_size,
        image_size,
        color_mode,
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        shuffle=False,
        seed=0,
    ):
        self.file_paths = list(file_paths)
        self.class_names = None if class_names is None else list(class_names)
        self.label_mode = label_mode
        self.batch_size = batch_size
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.color_mode = color_mode
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.shuffle, self.seed = shuffle, seed
        self._ids = None if labels is None or label_mode is None else np.asarray(labels, np.int32)
        # one-hot rows as wide as the classes (a list of labels may skip some, as class_names then does)
        self._classes = max(len(self.class_names or ()), 0 if self._ids is None else int(self._ids.max(initial=-1)) + 1)
        self._passes = 0

    def __len__(self) -> int:
        """The number of batches (of pictures, with ``batch_size=None``), as Keras's ``len(dataset)``."""
        n = len(self.file_paths)
        return n if self.batch_size is None else -(-n // self.batch_size)

    def __repr__(self) -> str:
        classes = "no labels" if self._ids is None else f"{len(self.class_names or ())} classes"
        return f"<ImageDataset: {len(self.file_paths)} pictures of {self.image_size}, {classes}, {len(self)} batches>"

    @property
    def shape(self) -> tuple[int, int, int]:
        """One picture's shape ``(height, width, channels)``."""
        return (*self.image_size, CHANNELS[self.color_mode])

    @property
    def labels(self) -> np.ndarray | None:
        """Every label in ``file_paths`` order, encoded as ``label_mode`` says (None without labels)."""
        return None if self._ids is None else self._encode(self._ids)

    def _encode(self, ids: np.ndarray) -> np.ndarray:
        if self.label_mode == "categorical":
            return np.eye(self._classes, dtype=np.float32)[ids]
        if self.label_mode == "binary":
            return ids.astype(np.float32).reshape(-1, 1)
        return ids

    def read(self, indices) -> np.ndarray:
        """The pictures at ``indices`` (positions in ``file_paths``), decoded now: float32 NHWC."""
        out = np.empty((len(indices), *self.shape), np.float32)
        for j, i in enumerate(indices):
            out[j], _ = read_image(
                self.file_paths[i], self.image_size, self.color_mode, self.interpolation, self.crop_to_aspect_ratio
            )
        return out

    def __iter__(self):
        n = len(self.file_paths)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self._passes]).permutation(n)
            self._passes += 1
        step = self.batch_size or 1
        for start in range(0, n, step):
            indices = order[start : start + step]
            x = self.read(indices)
            y = None if self._ids is None else self._encode(self._ids[indices])
            if self.batch_size is None:
                x, y = x[0], None if y is None else y[0]
            yield x if y is None else (x, y)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The whole set as ``(x, y)`` in ``file_paths`` order (``y`` None without labels): what
        ``fit``, ``evaluate`` and ``predict`` take. Decoded a batch at a time into one array."""
        n, step = len(self.file_paths), self.batch_size or 32
        x = np.empty((n, *self.shape), np.float32)
        for start in range(0, n, step):
            x[start : start + step] = self.read(range(start, min(start + step, n)))
        return x, self.labels


def image_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    color_mode="rgb",
    batch_size=32,
    image_size=(256, 256),
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    interpolation="bilinear",
    follow_links=False,
    crop_to_aspect_ratio=False,
    verbose=True,
):
    """Keras 3's ``keras.utils.image_dataset_from_directory``, for a folder laid out as
    ``directory/<class>/<picture>`` (pictures may sit deeper; ``.bmp .gif .jpeg .jpg .png``).

    Args are Keras's: ``labels`` "inferred" (from the sub-folders), None, or a list of int labels
    for the files in sorted order; ``label_mode`` "int", "categorical", "binary" or None (no
    labels); ``class_names`` to choose and order the sub-folders; ``color_mode`` "rgb", "rgba" or
    "grayscale"; ``image_size`` ``(height, width)`` every picture is resized to; ``validation_split``
    with ``subset`` "training", "validation" or "both" (then ``[training, validation]``) and a
    ``seed`` when shuffling; ``interpolation`` "bilinear", "nearest", "bicubic", "area" or
    "lanczos3" (Pillow's filters, so values differ slightly from TensorFlow's);
    ``crop_to_aspect_ratio`` to cut the centre instead of stretching.

    Returns an :class:`ImageDataset` (or two). Raises :class:`~minicnn.datasets.DatasetError` naming
    the folder when it is missing, has no class sub-folders or no pictures, and ``ValueError`` naming
    an argument that is not allowed; a picture that cannot be decoded is named when its batch is read.
    """
    interpolation = interpolation.lower() if isinstance(interpolation, str) else interpolation
    labels = labels.tolist() if isinstance(labels, np.ndarray) else labels
    image_size = (image_size, image_size) if _is_int(image_size) else image_size  # Keras takes one int too
    _check_arguments(locals())  # every argument by its name, as given
    folder = _check_folder(directory)
    if labels is None or label_mode is None:
        labels = label_mode = None
    if seed is None:
        seed = np.random.randint(1e6)  # Keras's draw: set_random_seed makes it repeatable
    paths, ids, names = index_directory(folder, labels, class_names, shuffle, seed, follow_links)
    if verbose:
        found = f" belonging to {len(names)} classes" if names is not None else ""
        print(f"Found {len(paths)} files{found}.")
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f'label_mode="binary" needs exactly 2 classes, got {len(names)}: {names}')
    options = dict(
        label_mode=label_mode,
        batch_size=batch_size,
        image_size=image_size,
        color_mode=color_mode,
        interpolation=interpolation,
        crop_to_aspect_ratio=crop_to_aspect_ratio,
        seed=seed,
    )
    if subset == "both":
        train = split(paths, ids, validation_split, "training", folder, verbose)
        val = split(paths, ids, validation_split, "validation", folder, verbose)
        return [ImageDataset(*train, names, shuffle=shuffle, **options), ImageDataset(*val, names, **options)]
    paths, ids = split(paths, ids, validation_split, subset, folder, verbose)
    return ImageDataset(paths, ids, names, shuffle=shuffle, **options)


def index_directory(folder: str, labels, class_names, shuffle: bool, seed: int, follow_links: bool = False):
    """``(file_paths, ids, class_names)`` as Keras's ``index_directory`` finds and orders them
    (``ids`` None without labels; ``class_names`` None with ``labels=None``)."""
    if labels == "inferred":
        subdirs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and d[:1] != ".")
        if not subdirs:
            loose = sum(map(is_image_file, os.listdir(folder)))
            hint = f"; its {loose} pictures lie in it directly: labels=None reads them without labels" if loose else ""
            raise DatasetError(
                f"{folder} has no class sub-folders: labels='inferred' takes one sub-folder of pictures per class "
                f"(e.g. {os.path.join(folder, 'cat', '1.jpg')}){hint}"
            )
        if class_names is not None:
            if not set(class_names) <= set(subdirs):
                raise ValueError(f"class_names={list(class_names)} must name sub-folders of {folder}: {subdirs}")
            subdirs = list(class_names)  # the order given
    else:
        subdirs = [""]
    paths, ids = [], []
    for k, subdir in enumerate(subdirs):
        top = os.path.join(folder, subdir)
        for root, _, files in sorted(os.walk(top, followlinks=follow_links), key=lambda walked: walked[0]):
            for name in sorted(f for f in files if is_image_file(f)):
                paths.append(os.path.join(folder, subdir, os.path.relpath(os.path.join(root, name), top)))
                ids.append(k)
    if not paths:
        where = f"the class sub-folders {subdirs} of {folder}" if subdirs != [""] else f"{folder} or its sub-folders"
        raise DatasetError(f"no pictures ({_SUFFIXES}) in {where}")
    names: list[str] | None = subdirs
    if labels is None:
        ids_array, names = None, None
    elif labels != "inferred":
        if len(labels) != len(paths):
            raise ValueError(f"labels has {len(labels)} entries, but {folder} holds {len(paths)} pictures")
        ids_array, names = np.asarray(labels, np.int32), [str(label) for label in sorted(set(labels))]
    else:
        ids_array = np.asarray(ids, np.int32)
    if shuffle:  # Keras: once, globally, the paths and the labels by the same draws
        order = np.arange(len(paths))
        np.random.RandomState(seed).shuffle(order)
        paths = [paths[i] for i in order]
        ids_array = None if ids_array is None else ids_array[order]
    return paths, ids_array, names


def split(paths, ids, validation_split, subset, folder="", verbose=False):
    """Keras's split: the validation subset is the last ``int(validation_split * N)`` files, the
    training subset the others. A split that leaves either empty is refused (Keras would hand out
    an empty training set, or every file as validation)."""
    if not validation_split:
        return paths, ids
    held = int(validation_split * len(paths))
    if held == 0:
        raise ValueError(
            f"validation_split={validation_split} of the {len(paths)} pictures in {folder} holds out none: "
            f"use a larger split (at least {1 / len(paths):.3g}) or more pictures"
        )
    keep = slice(-held, None) if subset == "validation" else slice(None, -held)
    if verbose:
        print(f"Using {len(paths[keep])} files for {subset}.")
    return paths[keep], None if ids is None else ids[keep]


def _check_folder(directory) -> str:
    path = Path(directory).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{directory} {what}: give a folder of pictures with one sub-folder per class")
    return os.fspath(directory)


def _check_arguments(given: dict) -> None:
    """A ValueError naming the first argument that is not allowed, its value and what is."""

    def refuse(name, allowed):
        raise ValueError(f"image_dataset_from_directory: {name}={given[name]!r} is not allowed; expected {allowed}")

    labels, split, subset = given["labels"], given["validation_split"], given["subset"]
    if not (labels is None or labels == "inferred") and not (
        isinstance(labels, (list, tuple)) and all(_is_int(v) and v >= 0 for v in labels)
    ):
        refuse("labels", '"inferred", None or a list of int labels >= 0, one per file in sorted order')
    if given["label_mode"] not in LABEL_MODES:
        refuse("label_mode", '"int", "categorical", "binary" or None')
    names = given["class_names"]
    if names is not None and (
        labels != "inferred"
        or given["label_mode"] is None
        or not isinstance(names, (list, tuple))
        or not all(isinstance(c, str) for c in names)
    ):
        refuse("class_names", 'None, or a list of sub-folder names with labels="inferred" and a label_mode')
    if given["color_mode"] not in CHANNELS:
        refuse("color_mode", '"rgb", "rgba" or "grayscale"')
    if given["batch_size"] is not None and not (_is_int(given["batch_size"]) and given["batch_size"] >= 1):
        refuse("batch_size", "an int >= 1, or None for single pictures")
    size = given["image_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(s) and s >= 1 for s in size)):
        refuse("image_size", "(height, width), two ints >= 1, or one int for both")
    if given["interpolation"] not in INTERPOLATIONS:
        refuse("interpolation", f"one of {INTERPOLATIONS} (Keras's others have no Pillow filter)")
    if given["seed"] is not None and not _is_int(given["seed"]):
        refuse("seed", "an int or None")
    if split is not None and not (isinstance(split, (int, float)) and 0 < split < 1):
        refuse("validation_split", "None or a fraction between 0 and 1")
    if subset not in SUBSETS:
        refuse("subset", '"training", "validation", "both" or None')
    if bool(split) != (subset is not None):
        raise ValueError(
            f"image_dataset_from_directory: validation_split={split!r} and subset={subset!r}: give both or neither"
        )
    if split and given["shuffle"] and given["seed"] is None:
        refuse("seed", "an int with validation_split and shuffle, so the two subsets never overlap")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
