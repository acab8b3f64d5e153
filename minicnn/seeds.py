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


_global_seeds: np.random.SeedSequence | None = None


def set_global_seed(seed: int | None) -> None:
    """Make every later model's initial weights and every later ``fit`` reproducible (what
    ``minicnn.utils.set_random_seed`` sets; ``None`` forgets it). Also seeds Python's and NumPy's
    global generators, as Keras's ``set_random_seed`` does."""
    global _global_seeds
    import random

    _global_seeds = None if seed is None else np.random.SeedSequence(int(seed))
    if seed is not None:
        random.seed(int(seed))
        np.random.seed(int(seed) % 2**32)


def next_model_seed() -> int | None:
    """A fresh seed from the global one (None when no global seed is set: fresh entropy)."""
    if _global_seeds is None:
        return None
    return int(_global_seeds.spawn(1)[0].generate_state(1)[0])
