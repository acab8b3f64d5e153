"""Against Keras 3 itself: Keras opens the files minicnn writes and predicts the same, and a few Adamax steps
through compile/fit give Keras's weights. Skipped where Keras is not installed (it is not a dependency:
`pip install keras jax` to run these)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_ENABLE_X64", "1")  # so that Keras can run the optimizer test in float64
keras = pytest.importorskip("keras", reason="Keras not installed (pip install keras jax to compare with it)")
pytest.importorskip("h5py", reason='Keras files need h5py: pip install -e ".[keras]"')

import minicnn  # noqa: E402
from minicnn.layers import Activation, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPooling2D  # noqa: E402


def course(lib):
    """The course's CNN in either library (the same code, the import aside)."""
    L = lib.layers
    model = lib.models.Sequential()
    model.add(L.Conv2D(filters=16, kernel_size=(3, 3), padding="same", input_shape=(32, 32, 3)))
    model.add(L.LeakyReLU(0.1))
    model.add(L.Conv2D(filters=32, kernel_size=(3, 3), padding="same"))
    model.add(L.LeakyReLU(0.1))
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Dropout(0.25))
    model.add(L.Flatten())
    model.add(L.Dense(10))
    model.add(L.Activation("softmax"))
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 32, 32, 3)).astype(np.float32)


def test_keras_opens_minicnn_files_and_predicts_the_same(tmp_path):
    model = course(minicnn)
    x = images(6)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), model.predict(x), rtol=1e-5, atol=1e-6)
    built_by_keras = course(keras)
    built_by_keras.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(np.asarray(built_by_keras.predict(x, verbose=0)), model.predict(x), rtol=1e-5, atol=1e-6)


def test_minicnn_reads_the_weights_keras_saves(tmp_path):
    theirs = course(keras)
    theirs.save_weights(tmp_path / "k.weights.h5")
    x = images(4, seed=1)
    ours = course(minicnn)
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)


def test_adamax_steps_through_compile_and_fit_match_keras():
    """In float64 on both sides (in float32, Adamax's m / u amplifies rounding where a gradient is ~0).
    Keras keeps its learning rate a float32 variable (5e-3 is 0.004999999888 there): the weights agree to
    ~1e-8 relative and 1e-6 absolute, a 5,000th of one step."""
    x = images(24, seed=2).astype(np.float64)
    y = np.random.default_rng(3).integers(0, 10, 24)
    onehot = minicnn.utils.to_categorical(y, 10)
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        ours = minicnn.models.Sequential(
            [Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")], dtype="float64"
        )
        L = keras.layers
        theirs = keras.models.Sequential([keras.Input((32, 32, 3)), L.Flatten(), L.Dense(10), L.Activation("softmax")])
        start = ours.get_weights()
        theirs.set_weights(start)
        for model, lib in ((ours, minicnn), (theirs, keras)):
            model.compile(
                optimizer=lib.optimizers.Adamax(learning_rate=5e-3),
                loss="categorical_crossentropy",
                metrics=["accuracy"],
            )
            model.fit(x, onehot, batch_size=8, epochs=2, shuffle=False, verbose=0)
    finally:
        keras.config.set_floatx(before)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours.get_weights()[0], start[0])  # it did train


def test_the_names_match():
    for name in ("Conv2D", "Dense", "Dropout", "Flatten", "LeakyReLU", "MaxPooling2D", "Activation"):
        assert hasattr(keras.layers, name) and getattr(minicnn.layers, name) in (
            Conv2D,
            Dense,
            Dropout,
            Flatten,
            LeakyReLU,
            MaxPooling2D,
            Activation,
        )
