"""Keras's ``keras.utils`` that a CNN course uses: one-hot labels, one seed for everything, a folder of pictures."""

from __future__ import annotations

import numpy as np

from .input_checks import whole_numbers_as_ints
from .seeds import set_global_seed


def to_categorical(y, num_classes=None) -> np.ndarray:
    """Class ids -> one-hot rows, as Keras 3: ``(N,)`` or ``(N, 1)`` ints -> ``(N, num_classes)`` float64
    (``num_classes`` defaults to ``max(y) + 1``). ``y.argmax(-1)`` turns it back."""
    y = np.asarray(y)
    y = whole_numbers_as_ints(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"to_categorical: y must hold integer class ids, got dtype {y.dtype}")
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    flat = y.reshape(-1).astype(np.int64)
    k = int(flat.max()) + 1 if num_classes is None and flat.size else int(num_classes or 0)
    if flat.size and (flat.min() < 0 or flat.max() >= k):
        raise ValueError(f"to_categorical: class ids must be in [0, {k}), got {flat.min()}..{flat.max()}")
    out = np.zeros((flat.size, k))
    out[np.arange(flat.size), flat] = 1
    return out.reshape(shape + (k,))


def set_random_seed(seed: int) -> None:
    """Keras's ``set_random_seed``: Python's, NumPy's and minicnn's randomness from ``seed``, so every
    model built and trained afterwards (weights, shuffles, dropout masks) is the same run to run."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be an int >= 0, got {seed!r}")
    set_global_seed(int(seed))


def image_dataset_from_directory(directory, *args, **options):
    """Keras's ``keras.utils.image_dataset_from_directory``: a folder of class sub-folders of pictures as
    an :class:`~minicnn.datasets.images.ImageDataset` (:func:`minicnn.datasets.images.image_dataset_from_directory`)."""
    from .datasets.images import image_dataset_from_directory as read_folder  # on first use: utils stays light

    return read_folder(directory, *args, **options)
