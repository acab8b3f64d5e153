"""Preprocessing shared by ``Sequential.fit`` and the training script.

Nothing here runs behind the user's back: the library never rescales inputs on its
own, so a pipeline calls these explicitly and stores what it used (the statistics).
All functions take and return NumPy arrays on the host, where data loading happens;
:func:`augment` also takes a batch already on the GPU and keeps it there.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module


def channel_stats(x, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of NHWC images, as float32 ``(C,)`` arrays.

    Computed in float64 over chunks, so 50,000 uint8 images never become one float copy.
    """
    x = np.asarray(x)
    c = x.shape[-1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    count = 0
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size].reshape(-1, c).astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
        count += len(chunk)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(x, mean, std, dtype=np.float32) -> np.ndarray:
    """``(x - mean) / std`` per channel (last axis), returned as ``dtype``.

    x: ``(..., C)`` images of any real dtype (uint8 pixels included); mean, std: ``(C,)``.
    """
    mean = np.asarray(mean, dtype=dtype)
    std = np.asarray(std, dtype=dtype)
    if mean.shape != (x.shape[-1],) or std.shape != (x.shape[-1],):
        raise ValueError(
            f"standardize: mean and std must have shape ({x.shape[-1]},) for {x.shape[-1]} channels, "
            f"got {mean.shape} and {std.shape}"
        )
    if not np.all(std > 0):
        raise ValueError(f"standardize: std must be positive, got {std}")
    out = np.asarray(x).astype(dtype)  # a copy: the caller's array is left alone
    out -= mean
    out /= std
    return out


def augment(x, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Random crop after ``pad``-pixel zero padding, and a random horizontal flip, per image.

    x: ``(N, H, W, C)``, NumPy or CuPy. Returns a new ``(N, H, W, C)`` array of the same
    dtype, where ``x`` lives. Zero padding of standardised images pads with the dataset mean,
    the usual CIFAR recipe. All images are cropped in one gather (no Python loop over images).
    The offsets and flips are drawn on the host from ``rng`` (a few bytes per image, sent to
    the GPU with a copy that does not wait for it), so a batch on the GPU gets exactly the
    crops the same batch on the host would.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    padded = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
    padded[:, pad : pad + h, pad : pad + w] = x
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    rows = dy[:, None] + np.arange(h)[None, :]  # (N, H)
    cols = dx[:, None] + np.arange(w)[None, :]  # (N, W)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)  # a flip reverses the columns read
    rows, cols = xp.asarray(rows), xp.asarray(cols)
    return padded[xp.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


augment.accepts_device_arrays = True  # type: ignore[attr-defined]  # fit hands it device batches as they are


def crop_flip(padding: int = 4):
    """An ``augment`` for ``fit`` whose random crops move an image by at most ``padding`` pixels
    (torchvision's ``RandomCrop(32, padding=padding)`` + ``RandomHorizontalFlip()``).

    ``crop_flip(4)`` draws exactly what :func:`augment` draws; ``crop_flip(0)`` only flips. A
    short run learns more from images moved less (``--recipe fast`` uses 2: docs/recipe.md).
    """
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"crop_flip: padding must be a whole number of pixels >= 0, got {padding!r}")

    def crop_flip_augment(x, rng: np.random.Generator):
        return augment(x, rng, pad=int(padding))

    crop_flip_augment.accepts_device_arrays = True  # type: ignore[attr-defined]
    crop_flip_augment.padding = int(padding)  # type: ignore[attr-defined]
    return crop_flip_augment
