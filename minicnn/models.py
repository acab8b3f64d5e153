"""Models: ``Sequential`` and ``load_model`` (Keras's ``keras.models``), and ready-made architectures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Residual,
)
from .sequential import Sequential
from .sequential import load_model as load_checkpoint

__all__ = ["Sequential", "load_model", "cifar10_cnn", "resnet_cifar", "resnet8", "model_by_name", "with_preprocessing"]


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


def resnet_cifar(width=(32, 64, 128), seed=None, dtype="float32") -> Sequential:
    """A small residual network with batch normalisation for CIFAR-10 (in the spirit of airbench's nets).

    A stem (conv 3x3 -> BN -> ReLU) at ``width[0]`` channels, then one stage per width: a
    :class:`~minicnn.layers.Residual` block (conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, plus the
    shortcut: the identity, or a 1x1 conv where the channels change) -> ReLU, and a 2x2 max-pool
    between stages; then global average pooling and a Dense layer to 10 logits. Two or three widths.

    Shapes with the default ``width=(32, 64, 128)``, input ``(32, 32, 3)``::

        stem       (32, 32, 32)
        stage 1    (32, 32, 32)   identity shortcut  -> max-pool (16, 16, 32)
        stage 2    (16, 16, 64)   1x1 projection     -> max-pool (8, 8, 64)
        stage 3    (8, 8, 128)    1x1 projection     -> global average pool (128,)
        Dense      (10,)

    309,898 parameters (Keras's count): 308,938 trained, and 960 moving statistics of the BN layers
    (``layer.state``). The course's CNN has 1,084,234, 97% in its first Dense layer; here the global
    average pool leaves the head 1,290. About 0.098 GFLOP per image forward (a multiply-add is 2;
    the course's CNN: 0.027). The convolutions keep their biases, which the BN after each makes
    redundant (minicnn's Conv2D has no ``use_bias``).
    """
    if len(width) not in (2, 3):
        raise ValueError(f"resnet_cifar: width has one number per stage, two or three, got {width!r}")

    def conv_bn(filters):
        return [Conv2D(filters, 3, padding="same"), BatchNormalization(momentum=0.9)]

    layers = conv_bn(width[0]) + [ReLU()]
    channels = width[0]
    for stage, filters in enumerate(width):
        if stage:
            layers.append(MaxPool2D(2))
        shortcut = None if filters == channels else Conv2D(filters, 1)  # match the channels to add
        layers += [Residual(conv_bn(filters) + [ReLU()] + conv_bn(filters), projection=shortcut), ReLU()]
        channels = filters
    layers += [GlobalAveragePooling2D(), Dense(10)]
    return Sequential(layers, input_shape=(32, 32, 3), dtype=dtype, seed=seed)


def resnet8(width=(48, 192, 192), seed=None, dtype="float32") -> Sequential:
    """A faster small ResNet for CIFAR-10: pool early, normalise after, one residual conv per stage.

    The layout of the fast CIFAR-10 nets (airbench's, with a residual connection added): a 2x2
    stem convolution (24 filters, ``valid``: for whitened filters, ``--whiten-init``) -> ReLU, then
    per width a stage ``conv 3x3 -> max-pool 2 -> BN -> ReLU`` followed by ``Residual[conv 3x3 ->
    BN -> ReLU]`` (identity shortcut), then global average pooling and a Dense layer to 10 logits.
    Pooling right after the stage's first convolution runs the BN, the ReLU and the second
    convolution on a quarter of the positions: at the same cost as :func:`resnet_cifar` the
    convolutions can be much wider. Eight weight layers (7 convolutions, 1 Dense): hence the name.

    Shapes with the default ``width=(48, 192, 192)``, input ``(32, 32, 3)``::

        stem       (31, 31, 24)   conv 2x2 valid -> ReLU
        stage 1    (15, 15, 48)   conv -> max-pool -> BN -> ReLU, + Residual[conv -> BN -> ReLU]
        stage 2    (7, 7, 192)
        stage 3    (3, 3, 192)
        head       global average pool (192,) -> Dense (10,)

    1,115,938 parameters (Keras's count): 1,114,210 trained, and 1,728 moving statistics of the BN
    layers. About 0.138 GFLOP per image forward (a multiply-add is 2; :func:`resnet_cifar`: 0.098),
    yet a training step takes about as long: its element-wise layers see a quarter of the positions.
    """
    if not width or any(int(w) < 1 for w in width):
        raise ValueError(f"resnet8: width has one positive number per stage, got {width!r}")
    layers = [Conv2D(24, 2), ReLU()]
    for filters in width:
        layers += [Conv2D(filters, 3, padding="same"), MaxPool2D(2), BatchNormalization(momentum=0.9), ReLU()]
        layers.append(Residual([Conv2D(filters, 3, padding="same"), BatchNormalization(momentum=0.9), ReLU()]))
    layers += [GlobalAveragePooling2D(), Dense(10)]
    return Sequential(layers, input_shape=(32, 32, 3), dtype=dtype, seed=seed)


# The ready-made models the command lines (doctor, profile, train_cifar.py's --model) name.
# By function name, looked up when called (so a test may stand a small model in for one).
BUILT_IN = {"course": "cifar10_cnn", "resnet": "resnet8", "resnet_cifar": "resnet_cifar"}


def model_by_name(spec: str, seed=0) -> Sequential:
    """A command line's ``--model``: ``"course"`` (:func:`cifar10_cnn`), ``"resnet"`` (:func:`resnet8`;
    0.3.0's was :func:`resnet_cifar`), ``"resnet_cifar"``, each built with ``seed``, or the path of a
    saved model (``.npz``, ``.keras``, ``.h5``: :func:`load_model`)."""
    if spec in BUILT_IN:
        build: Callable[..., Sequential] = globals()[BUILT_IN[spec]]
        return build(seed=seed)
    if not Path(spec).is_file():
        raise ValueError(f"--model {spec}: expected {' or '.join(BUILT_IN)}, or the path of a saved model file")
    return load_model(spec)


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
