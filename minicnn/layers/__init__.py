"""Hand-written layers: each module holds one layer, its forward beside its backward."""

from .activation import Activation, LeakyReLU, ReLU
from .average_pool import AveragePooling2D, GlobalAveragePooling2D
from .base import LAYER_CLASSES, Layer, grad_enabled, no_grad  # noqa: F401  (LAYER_CLASSES: by name, for checkpoints)
from .batchnorm import BatchNormalization
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .keras_activations import KERAS_ACTIVATIONS
from .normalization import Normalization
from .pool import MaxPool2D, MaxPooling2D
from .rescaling import Rescaling
from .residual import Residual

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
    "BatchNormalization",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "Residual",
]

# Keras layers minicnn does not have: a clear refusal instead of a bare "cannot import name".
NOT_IN_MINICNN = (
    "Conv1D Conv3D Conv2DTranspose SeparableConv2D DepthwiseConv2D LayerNormalization "
    "GroupNormalization GlobalMaxPooling2D MaxPooling1D AveragePooling1D "
    "LSTM GRU SimpleRNN Bidirectional Embedding MultiHeadAttention Attention Add Concatenate Multiply Average "
    "Reshape Permute RepeatVector ZeroPadding2D UpSampling2D Cropping2D SpatialDropout2D GaussianNoise "
    "GaussianDropout AlphaDropout RandomFlip RandomCrop RandomRotation RandomZoom Resizing CenterCrop Lambda "
    "PReLU ELU Softmax ThresholdedReLU TimeDistributed InputLayer"
).split()


class NotInMinicnn(ImportError):
    """A Keras name minicnn does not have (an ImportError, so ``from minicnn.layers import LSTM`` says so)."""


def __getattr__(name):
    if name in NOT_IN_MINICNN:
        raise NotInMinicnn(
            f"minicnn.layers has no {name}: Keras has it, minicnn has the layers a CNN course uses "
            f"({', '.join(n for n in __all__ if n[0].isupper() and n != 'KERAS_ACTIVATIONS')}); see docs/from_keras.md"
        )
    raise AttributeError(f"module 'minicnn.layers' has no attribute {name!r}")
