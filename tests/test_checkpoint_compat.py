"""A checkpoint written by each release still loads: the same optimizer state, the same extra values and
the same predictions. One file per release (CHANGELOG.md lists them): 0.1.0's was written by that release
(commit 6984012); later ones by ``tests/fixtures/checkpoints/make_release_checkpoint.py`` when the release
was made, from the same model."""

import json
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.optim import Adam

DATA = Path(__file__).parent / "data"
RELEASES = ["0.1.0", "0.2.0", "0.3.0"]


def test_the_current_release_has_its_checkpoint():
    assert minicnn.__version__ in RELEASES, (
        f"minicnn {minicnn.__version__} has no checkpoint fixture: run "
        "tests/fixtures/checkpoints/make_release_checkpoint.py and add the version to RELEASES"
    )


@pytest.mark.parametrize("release", RELEASES)
def test_checkpoint_of_a_release_loads_and_predicts_the_same(release):
    path = DATA / f"checkpoint_v{release.replace('.', '_')}.npz"
    with np.load(path, allow_pickle=False) as stored:
        assert json.loads(str(stored["__meta__"]))["minicnn_version"] == release
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
