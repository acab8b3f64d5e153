"""CIFAR-10 as a training run wants it: training, validation and test arrays, standardised."""

from __future__ import annotations

import numpy as np

from .cifar10 import load_cifar10
from .preprocessing import channel_stats, standardize


def cifar10_splits(data_dir=None, *, val_split=5000, seed=0, train_limit=None, communicator=None, **load_options):
    """``(data, mean, std)``: ``data`` maps ``"train"``, ``"val"`` (None when ``val_split`` is 0) and
    ``"test"`` to ``(x, y)``, images standardised per channel with ``mean``/``std`` of the training
    part only (the held-out images must not leak into them).

    ``val_split`` training images are held out by a permutation seeded with ``seed``: a resumed
    run holds out exactly the same ones. A float in (0, 1) is a fraction of the training images
    (``0.1``: 5,000 of CIFAR-10's 50,000, 100 of 1,000), rounded. ``train_limit`` keeps the first
    N training images.
    With a ``communicator`` rank 0 downloads and extracts first while the others wait.
    ``load_options`` go to :func:`load_cifar10` (``url``, ``md5``, ``download``).
    """
    comm = communicator
    if comm is not None and not comm.is_root:
        comm.barrier()
    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir, **load_options)
    if comm is not None and comm.is_root:
        comm.barrier()
    x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    val_split = held_out_count(val_split, len(x_train), train_limit)
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(x_train))
    val_idx, train_idx = order[:val_split], order[val_split:]
    x_fit = x_train[train_idx]  # one copy, for the statistics and the data
    mean, std = channel_stats(x_fit)
    data = {
        "train": (standardize(x_fit, mean, std), y_train[train_idx]),
        "val": (standardize(x_train[val_idx], mean, std), y_train[val_idx]) if val_split else None,
        "test": (standardize(x_test, mean, std), y_test),
    }
    return data, mean, std


class SplitLeavesNoTraining(ValueError):
    """A validation split that would hold out every training image. ``val_split``, ``n`` (the images
    it splits) and ``train_limit`` are kept, and :meth:`advice` words the message with a script's own
    option names."""

    def __init__(self, val_split: int, n: int, train_limit: int | None):
        self.val_split, self.n, self.train_limit = val_split, n, train_limit
        super().__init__(self.advice())

    def advice(self, spell=lambda key, value: f"{key}={value}", default_note: str = "") -> str:
        """The refusal and what would work, each setting written ``spell(key, value)``."""
        n, limit = self.n, self.train_limit
        kept = f"the {n} images {spell('train_limit', limit)} keeps" if limit else f"all {n} training images"
        return (
            f"{spell('val_split', self.val_split)} holds out {kept}, leaving none to train on: use "
            f"{spell('val_split', 0)} (no validation) or fewer, e.g. {spell('val_split', n // 10)} (10%{default_note})"
        )


def held_out_count(val_split: int | float, n: int, train_limit: int | None = None) -> int:
    """The number of validation images ``val_split`` asks of ``n`` (a count, or a fraction in (0, 1)),
    refusing one that leaves no training image with a message that says what would work."""
    if isinstance(val_split, float):
        if not 0 < val_split < 1:
            raise ValueError(f"val_split as a fraction must be in (0, 1), got {val_split}")
        val_split = round(val_split * n)
    if isinstance(val_split, bool) or not isinstance(val_split, int) or val_split < 0:
        raise ValueError(f"val_split must be a count >= 0 or a fraction in (0, 1), got {val_split!r}")
    if val_split >= n:
        raise SplitLeavesNoTraining(val_split, n, train_limit)
    return val_split
