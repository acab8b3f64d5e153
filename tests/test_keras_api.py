"""Keras code runs on minicnn with the import changed: the course's notebook, compile/fit/evaluate,
callbacks, files by suffix, and the errors a Keras user meets instead of silent traps."""

import sys
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import make_cifar_folder, make_images

import minicnn
import minicnn as keras
from minicnn.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau
from minicnn.layers import Activation, Conv2D, Dense, Flatten
from minicnn.models import Sequential
from minicnn.optimizers import Adam, Adamax
from minicnn.utils import set_random_seed, to_categorical


def h5py_or_skip():
    pytest.importorskip("h5py", reason='Keras files need h5py: pip install -e ".[keras]"')


def course_model():
    """The course's first CNN, as examples/keras_course.py (its notebook) writes it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from keras_course import make_model

    return make_model()


def test_the_course_notebook_runs_with_the_import_changed(tmp_path, capsys):
    x, y = make_images(160, seed=0)
    xv, yv = make_images(40, seed=1)
    x_train2, x_val2 = x / 255 - 0.5, xv / 255 - 0.5  # the course's preprocessing, float64 as NumPy gives it
    y_train2, y_val2 = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yv, 10)
    keras.backend.clear_session()
    model = course_model()
    model.summary()
    assert "Total params: 1,084,234" in capsys.readouterr().out

    init_lr = 5e-3
    model.compile(loss="categorical_crossentropy", optimizer=Adamax(learning_rate=init_lr), metrics=["accuracy"])
    seen = []

    class LrHistory(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    history = model.fit(
        x_train2,
        y_train2,
        batch_size=32,
        epochs=3,
        callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch: init_lr * 0.9**epoch), LrHistory()],
        validation_data=(x_val2, y_val2),
        shuffle=True,
        verbose=0,
    )
    assert seen == pytest.approx([init_lr * 0.9**e for e in range(3)])
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x_val2, y_val2, verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1]) and 0 <= accuracy <= 1
    probabilities = model.predict(x_val2)
    assert probabilities.shape == (40, 10) and np.allclose(probabilities.sum(1), 1)
    # the notebook looks at layers by type and by name
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert len(convs) == 4 and model.get_layer(convs[0].name) is convs[0]
    assert model.get_layer("activation").activation == "softmax"


def test_save_weights_and_load_weights_round_trip_in_keras_format(tmp_path):
    h5py_or_skip()
    x, _ = make_images(8, seed=0)
    model = course_model()
    path = tmp_path / "weights.weights.h5"
    model.save_weights(path)
    other = course_model()
    assert not np.allclose(other.predict(x / 255), model.predict(x / 255))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x / 255), model.predict(x / 255))


def test_save_by_suffix_and_unknown_suffixes_are_refused(tmp_path):
    model = Sequential([Flatten(input_shape=(4, 4, 1)), Dense(3)])
    model.save(tmp_path / "m.npz")
    assert minicnn.models.load_model(tmp_path / "m.npz").count_params() == model.count_params()
    for name in ("m.pt", "m.ckpt", "m"):
        with pytest.raises(ValueError, match="unknown suffix; known: .npz, .keras, .onnx"):
            model.save(tmp_path / name)
    with pytest.raises(ValueError, match="unknown suffix"):
        model.save_weights(tmp_path / "w.h5")  # Keras 3 also insists on .weights.h5


def test_a_keras_file_saved_by_suffix_loads_back_with_the_same_predictions(tmp_path):
    h5py_or_skip()
    x, _ = make_images(6, seed=3)
    model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(5), Activation("softmax")])
    model.save(tmp_path / "m.keras")
    again = minicnn.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x / 255), model.predict(x / 255), rtol=1e-6, atol=1e-7)


def test_sequential_grows_with_add_and_takes_input_shape_in_every_keras_way(capsys):
    for first in ([keras.Input((6, 6, 2))], []):
        model = Sequential()
        for layer in first:
            model.add(layer)
        model.add(Conv2D(3, 3, input_shape=None if first else (6, 6, 2)))
        model.add(Flatten())
        model.add(Dense(4))
        assert model.built and model.output_shape == (4,) and model.count_params() == 3 * 3 * 2 * 3 + 3 + 48 * 4 + 4
    lazy = Sequential([Flatten(), Dense(2)])
    assert not lazy.built
    assert lazy(np.zeros((1, 3, 2))).shape == (1, 2) and lazy.input_shape == (3, 2)
    lines = []
    lazy.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "sequential"' and any("Total params: 14" in line for line in lines)
    assert capsys.readouterr().out == ""


def test_get_and_set_weights_are_checked_and_all_or_nothing():
    model = Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3)], seed=0)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 3), (3,)]
    with pytest.raises(ValueError, match="has shape"):
        model.set_weights([np.ones((4, 3)), np.ones(4)])
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])  # unchanged
    model.set_weights([np.ones((4, 3)), np.zeros(3)])
    assert model.get_weights()[0].sum() == 12


def test_a_final_softmax_with_categorical_crossentropy_trains_exactly_as_logits_with_the_fused_loss():
    """Keras recognises softmax + cross-entropy; minicnn folds the softmax into the loss: the same
    weights, to the last bit, as the logits model trained with minicnn's own loss."""
    x, y = make_images(24, seed=2)
    x = x[:, :8, :8].astype(np.float64) / 255

    def build(softmax):
        layers = [Flatten(), Dense(6)] + ([Activation("softmax")] if softmax else [])
        return Sequential(layers, input_shape=(8, 8, 3), dtype="float64", seed=5)

    keras_model, logits_model, plain = build(True), build(False), build(False)
    keras_model.compile(optimizer=Adam(learning_rate=0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    fused = minicnn.losses.CategoricalCrossentropy(from_logits=True)
    logits_model.compile(optimizer=Adam(learning_rate=0.01), loss=fused, metrics=["accuracy"])
    for model in (keras_model, logits_model):
        model.fit(x, to_categorical(y % 6, 6), batch_size=8, epochs=2, shuffle=False, verbose=0, seed=1)
    for a, b in zip(keras_model.get_weights(), logits_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and minicnn's own form, with the optimizer whose maths both share (SGD without momentum)
    sgd_model = build(True)
    sgd_model.compile(optimizer=minicnn.optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy")
    sgd_model.fit(x, to_categorical(y % 6, 6), batch_size=8, epochs=2, shuffle=False, verbose=0, seed=1)
    plain.fit(
        x, y % 6, optimizer=minicnn.optim.SGD(plain, lr=0.1), batch_size=8, epochs=2, shuffle=False, verbose=0, seed=1
    )
    for a, b in zip(sgd_model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sgd_model.predict(x), plain.predict(x), rtol=1e-12)
    probabilities = np.asarray(sgd_model(x))  # model(x) outside fit: the softmax is there
    np.testing.assert_allclose(probabilities, plain.predict(x), rtol=1e-12)


def test_compile_refuses_what_would_be_a_silent_trap():
    logits_model = Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3)])
    with pytest.raises(ValueError, match="outputs logits: add Activation"):
        logits_model.compile(optimizer="adam", loss="categorical_crossentropy")
    logits_model.compile(optimizer="adam", loss=minicnn.losses.CategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        logits_model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        logits_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["auc"])
    fresh = Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3)])
    with pytest.raises(ValueError, match="call model.compile"):
        fresh.fit(np.zeros((2, 2, 2, 1)), np.zeros(2, int))
    compiled = Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3), Activation("softmax")])
    compiled.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="one-hot labels"):
        compiled.fit(np.zeros((2, 2, 2, 1)), np.zeros(2, int), verbose=0)


def test_sparse_labels_validation_split_and_evaluate_as_keras():
    x, y = make_images(40, seed=4)
    model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x / 255, y.reshape(-1, 1), epochs=2, validation_split=0.25, verbose=0)
    assert len(history.history["val_loss"]) == 2 and history.epoch == [0, 1]
    result = model.evaluate(x[30:] / 255, y[30:], verbose=0)
    assert isinstance(result, list) and len(result) == 2
    assert model.evaluate(x[30:] / 255, y[30:], return_dict=True)["loss"] == pytest.approx(result[0])


def test_early_stopping_restores_the_best_weights_and_reduce_lr_on_plateau_divides():
    x, y = make_images(32, seed=6)
    model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")], seed=0)
    model.compile(optimizer=Adam(learning_rate=0.5), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            best.append((logs["loss"], self.model.get_weights()))

    stop = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    history = model.fit(x / 255, y, epochs=12, verbose=0, callbacks=[Keep(), stop, plateau])
    epochs = len(history.history["loss"])
    assert epochs < 12 or stop.stopped_epoch == 0
    lowest = min(range(len(best)), key=lambda i: best[i][0])
    for a, b in zip(model.get_weights(), best[lowest][1]):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.learning_rate < 0.5  # min_delta=10: nothing counts as better, so it halved


def test_model_checkpoint_in_keras_form_keeps_the_best(tmp_path):
    x, y = make_images(24, seed=7)
    model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    check = ModelCheckpoint(str(tmp_path / "best-{epoch:02d}.npz"), "val_loss", save_best_only=True)
    history = model.fit(x / 255, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[check])
    losses = history.history["val_loss"]
    kept = sorted(p.name for p in tmp_path.iterdir())
    improved = [e for e in range(3) if losses[e] == min(losses[: e + 1])]
    assert kept == [f"best-{e + 1:02d}.npz" for e in improved]


def test_learning_rate_scheduler_takes_both_forms():
    x, y = make_images(8, seed=8)
    model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")], seed=0)
    model.compile(optimizer=Adam(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    model.fit(x / 255, y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: lr / 10)])
    assert model.optimizer.learning_rate == pytest.approx(0.01)


def test_set_random_seed_makes_models_and_training_repeat():
    x, y = make_images(16, seed=9)
    runs = []
    for _ in range(2):
        set_random_seed(1234)
        model = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10), Activation("softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x / 255, y, epochs=1, verbose=0)
        runs.append(model.get_weights())
    minicnn.seeds.set_global_seed(None)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_to_categorical_as_keras_3():
    np.testing.assert_array_equal(to_categorical([[2], [0]], 3), [[0, 0, 1], [1, 0, 0]])
    assert to_categorical(np.array([1, 0])).dtype == np.float64
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        to_categorical([3], 3)


def test_cifar10_load_data_finds_keras_cache_with_keras_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    make_cifar_folder(tmp_path / ".keras" / "datasets", rows_per_batch=4, test_rows=5)
    (x, y), (xt, yt) = minicnn.datasets.cifar10.load_data(tmp_path / "elsewhere", download=False)
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (20, 1) and y.dtype == np.uint8
    assert xt.shape == (5, 32, 32, 3) and yt.shape == (5, 1)


def test_predict_warns_on_raw_pixels_unless_the_model_carries_its_preprocessing():
    x, _ = make_images(4, seed=10)
    bare = Sequential([Flatten(input_shape=(32, 32, 3)), Dense(10)], seed=0)
    with pytest.warns(UserWarning, match="looks like raw pixels"):
        bare.predict(x)
    with pytest.warns(UserWarning, match="looks like raw pixels"):
        bare.predict(x.astype(np.float32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bare.predict(x / 255 - 0.5)
        carried = Sequential([keras.layers.Rescaling(1 / 255, -0.5), Flatten(), Dense(10)], input_shape=(32, 32, 3))
        carried.predict(x)


def test_what_keras_has_and_minicnn_does_not_is_refused_by_name():
    with pytest.raises(ImportError, match="minicnn.layers has no LSTM: Keras has it"):
        from minicnn.layers import LSTM  # noqa: F401
    with pytest.raises(ImportError, match="no functional API"):
        keras.Model  # noqa: B018
    with pytest.raises(ValueError, match="Nadam"):
        keras.optimizers.get("nadam")
    assert not hasattr(keras.layers, "NoSuchThing")


def test_fit_and_evaluate_take_an_image_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(11)
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    data = keras.utils.image_dataset_from_directory(tmp_path, image_size=(8, 8), batch_size=4, seed=0)
    assert data.class_names == ["cats", "dogs"]
    model = Sequential([keras.layers.Rescaling(1 / 255), Flatten(), Dense(2), Activation("softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and model.input_shape == (8, 8, 3)
    loss, accuracy = model.evaluate(data, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
