"""Picture files: which files are pictures, and one picture read as pixels of a given size.

The one image reader of the package: :func:`~minicnn.datasets.images.image_dataset_from_directory`
reads a folder with it, ``python -m minicnn.predict`` reads the pictures it is given with it, and
:func:`~minicnn.datasets.cifar10.load_cifar10` uses :func:`holds_images` to tell a folder of
pictures from CIFAR-10. Pillow decodes (imported on first use: ``import minicnn`` never needs it).
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from .errors import DatasetError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras's ALLOWLIST_FORMATS
COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}  # Keras's name -> Pillow's mode
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
# Keras's interpolation names that Pillow has a filter for ("gaussian", "mitchellcubic", "lanczos5": none).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3")


MAX_PIXELS = 64_000_000  # a 64-megapixel photo; Pillow itself refuses only beyond 179 million


def is_image_file(name) -> bool:
    """True for a name ending in one of :data:`IMAGE_SUFFIXES` (any case), as Keras tells them."""
    return str(name).lower().endswith(IMAGE_SUFFIXES)


def holds_images(folder, scan: int = 1000) -> bool:
    """True when ``folder`` holds picture files, or sub-folders whose own entries include one.

    Looks at most ``scan`` entries per folder, so a folder of a million pictures answers at once."""
    try:
        with os.scandir(folder) as listing:
            entries = list(itertools.islice(listing, scan))
    except OSError:  # missing, not a folder, unreadable: no pictures to speak of
        return False
    for entry in entries:
        if entry.is_file() and is_image_file(entry.name):
            return True
        if entry.is_dir() and not entry.name.startswith("."):
            try:
                with os.scandir(entry.path) as inside:
                    if any(is_image_file(e.name) and e.is_file() for e in itertools.islice(inside, scan)):
                        return True
            except OSError:  # e.g. a lost+found this user cannot read
                continue
    return False


def crop_box(height: int, width: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred ``(left, top, right, bottom)`` box of ``target``'s aspect ratio
    (Keras's ``smart_resize``, which ``crop_to_aspect_ratio=True`` uses)."""
    th, tw = target
    crop_h = max(min(height, int(width * th / tw)), 1)
    crop_w = max(min(width, int(height * tw / th)), 1)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return left, top, left + crop_w, top + crop_h


def read_image(
    path, image_size, color_mode="rgb", interpolation="bilinear", crop_to_aspect_ratio=False, upright=False
) -> tuple[np.ndarray, str]:
    """The picture at ``path`` as float32 pixels 0..255 ``(height, width, channels)`` of ``image_size``,
    and what was done to it in words ("" when nothing: the picture already had that size).

    ``color_mode`` "rgb", "rgba" or "grayscale" (Pillow's conversions; a GIF's first frame);
    ``crop_to_aspect_ratio`` first cuts the largest centred box of the target's shape, so nothing
    is stretched; ``upright`` turns the picture as its EXIF orientation says (phone photos), as a
    browser shows it. Resampled in float (Pillow's filter), so values are not rounded to integers.
    Raises :class:`DatasetError` naming the file when it cannot be decoded."""
    from PIL import Image, ImageOps

    height, width = image_size
    try:
        with Image.open(path) as opened:  # reads the header only: the size the file claims
            w, h = opened.size
            if w * h > MAX_PIXELS:  # checked before the decoder allocates for it (a tiny PNG can claim gigapixels)
                raise DatasetError(f"{path}: the picture claims {w}x{h} pixels, more than the {MAX_PIXELS:,} allowed")
            opened.load()
            image = ImageOps.exif_transpose(opened) if upright else opened.copy()
    except DatasetError:
        raise
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise DatasetError(f"{path}: cannot read this picture ({type(exc).__name__}: {exc})") from None
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # a palette's transparency converts through RGBA without a warning
    image = image.convert(COLOR_MODES[color_mode])
    w, h = image.size
    box = crop_box(h, w, (height, width)) if crop_to_aspect_ratio else (0, 0, w, h)
    cropped, resized = box != (0, 0, w, h), (box[2] - box[0], box[3] - box[1]) != (width, height)
    note = f"cropped from {w}x{h} to its centre {box[2] - box[0]}x{box[3] - box[1]}" if cropped else ""
    if resized:
        note += f", resized to {width}x{height}" if cropped else f"resized from {w}x{h} to {width}x{height}"
    image = image.crop(box) if cropped else image  # cut first: the filter never reads outside the box
    if not resized:
        pixels = np.asarray(image, np.float32)
    else:  # each band as 32-bit float: resampling keeps fractions, as Keras's resize does
        resample = _resample(interpolation)
        bands = [band.convert("F").resize((width, height), resample) for band in image.split()]
        pixels = np.stack([np.asarray(band, np.float32) for band in bands], axis=-1)
    return pixels.reshape(height, width, CHANNELS[color_mode]), note


def _resample(interpolation: str):
    from PIL import Image

    filters = Image.Resampling
    return {
        "bilinear": filters.BILINEAR,
        "nearest": filters.NEAREST,
        "bicubic": filters.BICUBIC,
        "area": filters.BOX,
        "lanczos3": filters.LANCZOS,
    }[interpolation]
