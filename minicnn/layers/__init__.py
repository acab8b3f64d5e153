"""Hand-written layers: each module holds one layer, its forward beside its backward."""

from .activation import Activation, LeakyReLU, ReLU
from .base import Layer, grad_enabled, no_grad
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .keras_activations import KERAS_ACTIVATIONS
from .normalization import Normalization
from .pool import MaxPool2D, MaxPooling2D
from .rescaling import Rescaling

__all__ = [
    "no_grad",
    "grad_enabled",
    "Layer",
    "Conv2D",
    "LeakyReLU",
    "ReLU",
    "Activation",
    "KERAS_ACTIVATIONS",
    "MaxPool2D",
    "MaxPooling2D",
    "Dropout",
    "Flatten",
    "Dense",
    "Rescaling",
    "Normalization",
]

# Every class a checkpoint may name, by class name (MaxPooling2D, Keras's name, is MaxPool2D itself).
LAYER_CLASSES = {
    cls.__name__: cls
    for cls in (Conv2D, LeakyReLU, ReLU, Activation, MaxPool2D, Dropout, Flatten, Dense, Rescaling, Normalization)
}
LAYER_CLASSES["MaxPooling2D"] = MaxPooling2D
