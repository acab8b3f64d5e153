"""Models: ``Sequential`` and ``load_model`` (Keras's ``keras.models``), and ready-made architectures."""

from __future__ import annotations

from pathlib import Path

from .layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from .sequential import Sequential
from .sequential import load_model as load_checkpoint

__all__ = ["Sequential", "load_model", "cifar10_cnn", "with_preprocessing"]


def load_model(path) -> Sequential:
    """Keras's ``load_model``: the model saved at ``path`` (``.keras``/``.h5`` Keras files, or a minicnn
    ``.npz`` checkpoint, whose ``extra`` (e.g. the training set's ``mean``/``std``) lands in
    ``model.saved_extra``). :func:`minicnn.load_model` returns ``(model, extra)`` instead."""
    if Path(path).suffix.lower() in (".keras", ".h5", ".hdf5"):
        from .interop import load_keras

        model = load_keras(path)
        model.saved_extra = {}
        return model
    model, extra = load_checkpoint(path)
    model.saved_extra = extra
    return model


def cifar10_cnn(alpha=0.1, dropout=(0.25, 0.25, 0.5), seed=None, dtype="float32") -> Sequential:
    """The documented CIFAR-10 CNN (Coursera/HSE "Intro to Deep Learning", week 3).

    Two blocks of (conv 3x3 -> LeakyReLU) x 2 -> max-pool 2 -> dropout, widening
    16, 32 | 32, 64 filters, then dense 256 -> LeakyReLU -> dropout -> dense 10 logits.
    Input ``(32, 32, 3)``; 1,084,234 parameters, 97% of them in the first dense layer.
    """
    d1, d2, d3 = dropout
    return Sequential(
        [
            Conv2D(16, 3, padding="same"),
            LeakyReLU(alpha),
            Conv2D(32, 3, padding="same"),
            LeakyReLU(alpha),
            MaxPool2D(2),
            Dropout(d1),
            Conv2D(32, 3, padding="same"),
            LeakyReLU(alpha),
            Conv2D(64, 3, padding="same"),
            LeakyReLU(alpha),
            MaxPool2D(2),
            Dropout(d2),
            Flatten(),
            Dense(256),
            LeakyReLU(alpha),
            Dropout(d3),
            Dense(10),
        ],
        input_shape=(32, 32, 3),
        dtype=dtype,
        seed=seed,
    )


def with_preprocessing(model: Sequential, mean, std) -> Sequential:
    """A copy of ``model`` that takes raw pixels: a ``Normalization`` layer holding the training set's
    per-channel ``mean`` and ``std`` first, then ``model``'s layers with its weights. Its ``predict`` on
    0..255 images gives what ``model.predict(standardize(images, mean, std))`` gives (to float rounding):
    the model carries its preprocessing, as a Keras model with a Normalization layer does."""
    config = model.get_config()
    variance = [float(s) ** 2 for s in std]
    norm = {"class": "Normalization", "config": {"axis": -1, "mean": [float(m) for m in mean], "variance": variance}}
    config["layers"] = [norm] + config["layers"]
    copy = Sequential.from_config(config)
    copy.set_weights(model.get_weights())
    return copy
