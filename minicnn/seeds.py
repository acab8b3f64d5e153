"""Every random stream of a run derived from one seed, so a run can be repeated and resumed."""

from __future__ import annotations

import numpy as np

from .layers import Dropout


def derive_seed(*entropy: int) -> int:
    """One 32-bit seed from several integers (NumPy's SeedSequence mixes them): the streams of
    ``derive_seed(seed, 0)`` and ``derive_seed(seed, 1)`` are unrelated."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


def reseed_dropout(model, seed: int, epoch: int, rank: int | None = None) -> None:
    """Give every Dropout layer the mask stream of ``(seed, epoch, position)``, or of
    ``(seed, epoch, position, rank)`` in a distributed run, so each rank draws its own masks;
    a run resumed at ``epoch`` then draws what an uninterrupted one does."""
    ranked = () if rank is None else (1 + rank,)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dropout):
            layer.reseed(derive_seed(seed, epoch, i, *ranked))
