"""Keras in and out: ``load_keras`` reads a Keras model file, ``save_keras`` writes one.

One concept per module: :mod:`.format` (the two file layouts, ``SUPPORTED``, the error,
Keras's weight slots), :mod:`.containers` (opening a ``.keras`` zip or a legacy ``.h5``),
:mod:`.convert` (one converter per Keras layer class), :mod:`.reader` (``load_keras``,
``load_any``: the configuration to a checked Sequential), :mod:`.writer` (``save_keras``),
:mod:`.weights` (``save_keras_weights``, ``load_keras_weights``: Keras's ``.weights.h5``),
:mod:`.onnx_export` (``save_onnx``: an ONNX graph; needs the onnx package, imported only when called).
h5py is needed for both directions (``pip install -e ".[keras]"``); Keras never is.
"""

from .._moved import names_from

# Each name from its module on first use: saving a minicnn checkpoint never loads the Keras or ONNX code.
_WHERE = {
    "KERAS_LAYOUT_VERSION": "format",
    "KERAS_SUFFIXES": "format",
    "SUPPORTED": "format",
    "KerasFormatError": "format",
    "save_onnx": "onnx_export",
    "load_any": "reader",
    "load_keras": "reader",
    "load_keras_weights": "weights",
    "save_keras_weights": "weights",
    "save_keras": "writer",
}


__getattr__ = names_from(__name__, {name: f".{module}" for name, module in _WHERE.items()})

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
