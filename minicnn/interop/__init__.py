"""Keras in and out: ``load_keras`` reads a Keras model file, ``save_keras`` writes one.

One concept per module: :mod:`.format` (the two file layouts, ``SUPPORTED``, the error,
Keras's weight slots), :mod:`.containers` (opening a ``.keras`` zip or a legacy ``.h5``),
:mod:`.convert` (one converter per Keras layer class), :mod:`.reader` (``load_keras``,
``load_any``: the configuration to a checked Sequential), :mod:`.writer` (``save_keras``),
:mod:`.weights` (``save_keras_weights``, ``load_keras_weights``: Keras's ``.weights.h5``),
:mod:`.onnx_export` (``save_onnx``: an ONNX graph; needs the onnx package, imported only when called).
h5py is needed for both directions (``pip install -e ".[keras]"``); Keras never is.
"""

from .format import KERAS_LAYOUT_VERSION, KERAS_SUFFIXES, SUPPORTED, KerasFormatError
from .onnx_export import save_onnx
from .reader import load_any, load_keras
from .weights import load_keras_weights, save_keras_weights
from .writer import save_keras

__all__ = [
    "load_keras",
    "load_any",
    "save_keras",
    "save_onnx",
    "save_keras_weights",
    "load_keras_weights",
    "KerasFormatError",
    "KERAS_SUFFIXES",
    "KERAS_LAYOUT_VERSION",
    "SUPPORTED",
]
