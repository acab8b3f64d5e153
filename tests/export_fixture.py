"""Shared by the export tests: BatchNormalization statistics that are not the initial ones."""

import numpy as np


def randomize_batchnorm(model, seed=0):
    """Every BatchNormalization's moving statistics, gamma and beta set to random values, in place.

    The initial ones (mean 0, variance 1, gamma 1, beta 0) make the layer nearly the identity,
    which would hide a wrong formula. A Residual's ``state``/``params`` hold its inner layers' arrays,
    so the model's top-level layers reach them all.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for key, array in layer.state.items():
            variance = key.endswith("moving_variance")
            array[...] = rng.uniform(0.5, 2.0, array.shape) if variance else rng.normal(0, 0.5, array.shape)
        for key, array in layer.params.items():
            if key.endswith("gamma"):
                array[...] = rng.uniform(0.5, 1.5, array.shape)
            elif key.endswith("beta"):
                array[...] = rng.normal(0, 0.5, array.shape)
    return model
