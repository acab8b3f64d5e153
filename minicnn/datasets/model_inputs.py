"""What a trained model expects of a picture, and what it calls its classes.

A model takes pictures of one size and colour mode (its input shape), and pixels prepared as in its
training: by its own first layers (Keras's ``Rescaling``/``Normalization``), or else standardised
with the training set's ``mean``/``std`` that a minicnn checkpoint keeps in ``extra``
(:func:`~minicnn.datasets.standardize`, as ``examples/train_cifar.py`` does). Shared by
``python -m minicnn.predict`` and the explorer, so both prepare a picture and name its classes alike.
"""

from __future__ import annotations

import numpy as np

from .preprocessing import standardize

PREPROCESSING_LAYERS = ("Rescaling", "Normalization")  # Keras's layers that prepare pixels inside a model
COLOR_MODE_OF_CHANNELS = {1: "grayscale", 3: "rgb", 4: "rgba"}


def class_names(model, extra) -> list[str]:
    """The checkpoint's own class names, else CIFAR-10's for a 10-class model, else the indices."""
    from .cifar10 import CIFAR10_CLASSES

    k = model.output_shape[-1]
    names = [str(n) for n in np.atleast_1d(extra["class_names"])] if "class_names" in extra else []
    if len(names) == k:
        return names
    return list(CIFAR10_CLASSES) if k == len(CIFAR10_CLASSES) else [str(i) for i in range(k)]


def picture_format(model) -> tuple[tuple[int, int], str]:
    """``((height, width), color_mode)`` of the pictures ``model`` takes; a ValueError when its input
    is not one picture of 1, 3 or 4 channels (a model without an input size, or of vectors)."""
    shape = tuple(model.input_shape or ())
    if len(shape) != 3 or shape[-1] not in COLOR_MODE_OF_CHANNELS or min(shape) < 1:
        raise ValueError(
            f"the model's input is {shape or 'unknown'}, not a picture (height, width, channels) with 1, 3 or 4 "
            "channels: it has no input size to resize a picture to"
        )
    return (int(shape[0]), int(shape[1])), COLOR_MODE_OF_CHANNELS[int(shape[2])]


def carries_preprocessing(model) -> bool:
    """True when the model's first layer prepares the pixels itself (``Rescaling``, ``Normalization``)."""
    return bool(model.layers) and type(model.layers[0]).__name__ in PREPROCESSING_LAYERS


def pixels_to_inputs(model, extra):
    """``(prepare, note)``: ``prepare(pixels)`` turns 0..255 pixels ``(N, H, W, C)`` into what the
    model was trained on, and ``note`` says how in words."""
    if carries_preprocessing(model):
        note = f"the model prepares the pixels itself (its first layer is {type(model.layers[0]).__name__})"
        return (lambda pixels: np.asarray(pixels, np.float32)), note
    if "mean" in extra and "std" in extra:
        mean = np.asarray(extra["mean"], np.float32).reshape(-1)
        std = np.asarray(extra["std"], np.float32).reshape(-1)
        channels = model.input_shape[-1]
        if mean.shape != (channels,) or std.shape != (channels,) or not np.all(std > 0):
            raise ValueError(f"the stored mean {mean} and std {std} do not fit {channels} channels (std > 0)")
        note = "pixels standardised with the mean and std stored in the checkpoint, as in training"
        return (lambda pixels: standardize(np.asarray(pixels), mean, std)), note
    note = "the model file holds no normalisation statistics: pixels go in as they are (0-255)"
    return (lambda pixels: np.asarray(pixels, np.float32)), note
