"""Hand-written layers: each module holds one layer, its forward beside its backward."""

from .activation import LeakyReLU, ReLU
from .base import Layer, grad_enabled, no_grad
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .pool import MaxPool2D

__all__ = [
    "no_grad",
    "grad_enabled",
    "Layer",
    "Conv2D",
    "LeakyReLU",
    "ReLU",
    "MaxPool2D",
    "Dropout",
    "Flatten",
    "Dense",
]

# Every class a checkpoint may name, by class name.
LAYER_CLASSES = {cls.__name__: cls for cls in (Conv2D, LeakyReLU, ReLU, MaxPool2D, Dropout, Flatten, Dense)}
