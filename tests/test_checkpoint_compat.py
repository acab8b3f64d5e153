"""A checkpoint written by minicnn 0.1.0 (commit 6984012, before the training-module refactor)
still loads: the same optimizer state, the same extra values and the same predictions."""

from pathlib import Path

import numpy as np

import minicnn
from minicnn.optim import Adam

DATA = Path(__file__).parent / "data"


def test_checkpoint_from_0_1_0_loads_and_predicts_the_same():
    path = DATA / "checkpoint_v0_1_0.npz"
    expected = np.load(DATA / "checkpoint_v0_1_0_expected.npz", allow_pickle=False)
    model, extra = minicnn.load_model(path)
    assert [type(l).__name__ for l in model.layers] == [
        "Conv2D",
        "LeakyReLU",
        "MaxPool2D",
        "Dropout",
        "Conv2D",
        "ReLU",
        "Flatten",
        "Dense",
        "LeakyReLU",
        "Dense",
    ]
    assert extra["epoch"] == 2 and extra["config"] == {"seed": 1}
    np.testing.assert_array_equal(extra["mean"], np.array([0.5, 0.25], np.float32))
    np.testing.assert_allclose(model.predict(expected["x"]), expected["probs"], rtol=1e-6, atol=1e-7)
    optimizer = Adam(model)
    model.load_weights(path, optimizer=optimizer)
    assert optimizer.iterations == 4 and optimizer.lr == 1e-3
    assert set(optimizer.slots) == {"m", "v"}
