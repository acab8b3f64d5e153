"""A twin of a model to experiment on: the same layers and weights, in any dtype, nothing shared."""

from __future__ import annotations

import copy

from ..backend import get_backend
from ..sequential import Sequential


def model_copy(model, dtype=None) -> Sequential:
    """A new :class:`Sequential` with the same layers and weights (in ``dtype``), no shared state.

    Each layer is rebuilt from its config (``type(layer)(**layer.get_config())``, which also
    rebuilds subclasses); a layer whose constructor does not take its config is copied
    shallowly and built afresh. Dropout masks get fixed seeds (the model's ``seed=0``).
    """
    layers = []
    for layer in model.layers:
        try:
            new = type(layer)(**layer.get_config())
        except TypeError:
            new = copy.copy(layer)
            new.params, new.grads, new.cache, new._scratch, new.output_shape = {}, {}, None, {}, None
        layers.append(new)
    clone = Sequential(layers, input_shape=model.input_shape, dtype=dtype or model.dtype, seed=0)
    backend = get_backend()
    for src, dst in zip(model.layers, clone.layers):
        for mine, theirs in ((dst.params, src.params), (dst.state, src.state)):  # state: moving statistics
            for k, v in theirs.items():
                mine[k][...] = backend.asarray(v, dtype=mine[k].dtype)
    return clone
