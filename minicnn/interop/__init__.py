"""Keras in and out: ``load_keras`` reads a Keras model file, ``save_keras`` writes one.

One concept per module: :mod:`.format` (the two file layouts, ``SUPPORTED``, the error,
Keras's weight slots), :mod:`.containers` (opening a ``.keras`` zip or a legacy ``.h5``),
:mod:`.convert` (one converter per Keras layer class), :mod:`.reader` (``load_keras``,
``load_any``: the configuration to a checked Sequential), :mod:`.writer` (``save_keras``).
h5py is needed for both directions (``pip install -e ".[keras]"``); Keras never is.
"""

from .format import KERAS_LAYOUT_VERSION, KERAS_SUFFIXES, SUPPORTED, KerasFormatError
from .reader import load_any, load_keras
from .writer import save_keras

__all__ = [
    "load_keras",
    "load_any",
    "save_keras",
    "KerasFormatError",
    "KERAS_SUFFIXES",
    "KERAS_LAYOUT_VERSION",
    "SUPPORTED",
]
