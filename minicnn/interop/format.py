"""The Keras file formats, as minicnn reads and writes them: constants, errors, weight slots.

Two file layouts are read (the kind is told by the file's first bytes, not its name):

``.keras`` (Keras 3, and Keras 2.13+ with ``model.save("x.keras")``) is a zip::

    metadata.json       {"keras_version": ..., "date_saved": ...}
    config.json         the model: {"class_name": "Sequential", "config": {"layers": [
                            {"class_name": "InputLayer", "config": {"batch_shape": [null, 32, 32, 3]}},
                            {"class_name": "Conv2D", "config": {"filters": 16, ...}}, ...]}}
    model.weights.h5    HDF5: layers/<slot>/vars/0, 1, ...  (kernel, then bias)

    A layer's <slot> is not its name but its class in snake case, numbered by order of
    appearance: conv2d, conv2d_1, leaky_re_lu, max_pooling2d, dense, dense_1, ... over
    ``model.layers`` (a Sequential's leaves out the InputLayer, a Functional's keeps it).

legacy ``.h5`` (``model.save("x.h5")`` in Keras 2 / tf.keras, and Keras 3's legacy writer)
is one HDF5 file::

    attrs["model_config"]           the same JSON as config.json (Keras 2 spells the input
                                    shape ``batch_input_shape`` and LeakyReLU's slope ``alpha``)
    model_weights/<layer name>      attrs["weight_names"] = ["conv2d/kernel:0", "conv2d/bias:0"]
    model_weights/<layer name>/<weight name>    the arrays

Loading parses JSON and reads arrays, nothing else: no Lambda is deserialised, nothing is
unpickled, no code from the file runs. Only plain stacks of the layers minicnn has are
accepted (see ``SUPPORTED``); anything else is refused with a :class:`~minicnn.interop.KerasFormatError`
naming the layer. The whole file is checked (every weight present, with the shape the
configuration implies) before a model is returned.

Keras's kernels are already minicnn's layout: Conv2D ``(kh, kw, C_in, F)``, Dense
``(n_in, units)``, images NHWC (``channels_last``).

h5py is needed for both directions (``pip install -e ".[keras]"``); Keras never is.
"""

from __future__ import annotations

from ..layers.base import snake_case

SUPPORTED = (
    "InputLayer, Conv2D (channels_last, dilation 1, groups 1), Dense, LeakyReLU, ReLU, "
    "Activation, MaxPooling2D (padding 'valid'), Dropout, Flatten, Rescaling (numbers), "
    "Normalization (invert False), BatchNormalization (last axis), AveragePooling2D, "
    "GlobalAveragePooling2D (keepdims False); activations 'linear', 'relu', 'leaky_relu', 'sigmoid', "
    "'tanh', 'softmax' (as Activation or activation= on Conv2D/Dense)"
)

# The Keras release whose .keras layout save_keras writes (and was checked against).
KERAS_LAYOUT_VERSION = "3.15.1"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


class KerasFormatError(ValueError):
    """A Keras file that cannot be read, or holds a model minicnn cannot run."""


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('reading and writing Keras files needs h5py: pip install -e ".[keras]"') from None
    return h5py


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def layer_arrays(layer) -> list:
    """A layer's arrays in Keras's weight order: its parameters, then its non-trainable state
    (BatchNormalization: gamma, beta, moving_mean, moving_variance)."""
    return list(layer.params.values()) + list(getattr(layer, "state", {}).values())


def _slots(class_names):
    """Keras's weight slots for layers of these classes, in order: ``layers/conv2d``,
    ``layers/conv2d_1``, ``layers/dense``, ... (the class in snake case, numbered)."""
    counts, slots = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        slots.append(f"layers/{base}" + (f"_{counts[base]}" if base in counts else ""))
        counts[base] = counts.get(base, 0) + 1
    return slots
