"""Pictures of a network: its filters, what excites them, what it sees, how it learnt.

Every ``plot_*`` function draws one picture into a PNG file at ``path`` and returns that
path (a :class:`pathlib.Path`). They draw on a bare :class:`matplotlib.figure.Figure`
with an Agg canvas, never through ``pyplot``: no display is needed, no window opens and
no figure is left behind in pyplot's global list. Array arguments may live on NumPy or
CuPy; they are brought to the host before drawing.

One function per concept:

    plot_filters           a Conv2D layer's kernels (a first layer as RGB tiles)      (.network)
    plot_stimuli           the images a few filters of every conv layer like most     (.network)
    plot_feature_maps      what every conv layer outputs for one image                (.network)
    plot_history           loss and accuracy per epoch                                (.training)
    plot_confusion_matrix  counts of (true class, predicted class) as a picture       (.training)
    plot_model             all of the above for one model, into one folder            (.model)

The numbers behind the pictures (gradient ascent, feature maps, the confusion matrix) are
computed by :mod:`minicnn.interpret`, with no matplotlib; :mod:`.figures` holds the drawing
helpers.

Images given to the model are *standardised* (``(pixel - mean) / std`` per channel, see
:func:`minicnn.datasets.standardize`). :func:`minicnn.interpret.displayable` turns them back into RGB in
``[0, 1]`` for drawing.
"""

from __future__ import annotations

from .figures import DPI
from .model import plot_model
from .network import layer_label, plot_feature_maps, plot_filters, plot_stimuli
from .training import plot_confusion_matrix, plot_history

__all__ = [
    "DPI",
    "plot_filters",
    "plot_stimuli",
    "plot_feature_maps",
    "plot_history",
    "plot_confusion_matrix",
    "plot_model",
    "layer_label",
]

# minicnn.interpret's functions, which earlier versions documented here too: still reachable as
# minicnn.viz.<name>, but they are interpret's (import them from there).
_FROM_INTERPRET = ("max_stimuli", "filter_activation", "feature_maps", "confusion_matrix", "displayable",
                   "synthetic_image", "conv_layer_indices")  # fmt: skip


def __getattr__(name):
    if name in _FROM_INTERPRET:
        from .. import interpret

        return getattr(interpret, name)
    raise AttributeError(f"module 'minicnn.viz' has no attribute {name!r}")
