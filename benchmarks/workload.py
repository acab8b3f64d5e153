"""What is benchmarked: the input shape, classes and Adam settings shared by both libraries, and the random data."""

from __future__ import annotations

import numpy as np

INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
LR = 1e-3
EPS = 1e-7  # minicnn's Adam default (Keras's); PyTorch is given the same


def random_batch(batch, seed, backend):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch)
    return backend.asarray(x), backend.asarray(y)
