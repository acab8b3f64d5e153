"""Sequential: the documented architecture, training, checkpoints."""

import numpy as np
import pytest
from conftest import host

import minicnn
from minicnn import CheckpointError, Sequential
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import SGD, Adam

EXPECTED_ROWS = [
    ("Conv2D", "(None, 32, 32, 16)", 448),
    ("LeakyReLU", "(None, 32, 32, 16)", 0),
    ("Conv2D", "(None, 32, 32, 32)", 4640),
    ("LeakyReLU", "(None, 32, 32, 32)", 0),
    ("MaxPool2D", "(None, 16, 16, 32)", 0),
    ("Dropout", "(None, 16, 16, 32)", 0),
    ("Conv2D", "(None, 16, 16, 32)", 9248),
    ("LeakyReLU", "(None, 16, 16, 32)", 0),
    ("Conv2D", "(None, 16, 16, 64)", 18496),
    ("LeakyReLU", "(None, 16, 16, 64)", 0),
    ("MaxPool2D", "(None, 8, 8, 64)", 0),
    ("Dropout", "(None, 8, 8, 64)", 0),
    ("Flatten", "(None, 4096)", 0),
    ("Dense", "(None, 256)", 1048832),
    ("LeakyReLU", "(None, 256)", 0),
    ("Dropout", "(None, 256)", 0),
    ("Dense", "(None, 10)", 2570),
]


def test_cifar10_cnn_summary_has_the_documented_rows():
    model = minicnn.models.cifar10_cnn()
    text = "\n".join(model.summary_lines())
    rows = [line for line in text.splitlines() if line.endswith(tuple("0123456789")) and "(" in line]
    assert len(rows) == 17
    for line, (cls, shape, params) in zip(rows, EXPECTED_ROWS):
        assert f"({cls})" in line and shape in line and line.split()[-1] == str(params), line
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    assert "Total params: 1,084,234" in text
    assert "Trainable params: 1,084,234" in text and "Non-trainable params: 0" in text
    assert model.count_params() == 1_084_234


def test_seed_makes_initial_weights_reproducible():
    a, b = minicnn.models.cifar10_cnn(seed=3), minicnn.models.cifar10_cnn(seed=3)
    c = minicnn.models.cifar10_cnn(seed=4)
    np.testing.assert_array_equal(a.layers[0].params["W"], b.layers[0].params["W"])
    assert not np.array_equal(a.layers[0].params["W"], c.layers[0].params["W"])
    w = a.layers[13].params["W"]  # Glorot: U(-l, l), l = sqrt(6 / (4096 + 256))
    assert abs(w).max() <= np.sqrt(6 / (4096 + 256)) and np.all(host(a.layers[13].params["b"]) == 0)


def tiny_cnn(seed=0, dtype="float32", dropout=0.0):
    return Sequential(
        [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Dropout(dropout), Flatten(), Dense(3)],
        input_shape=(8, 8, 1),
        dtype=dtype,
        seed=seed,
    )


def bars_dataset(n=300, seed=0):
    """Images with a horizontal bar, a vertical bar, or a diagonal: 3 classes no download needs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i, label in enumerate(y):
        k = rng.integers(1, 7)
        if label == 0:
            x[i, k, :, 0] += 1.5
        elif label == 1:
            x[i, :, k, 0] += 1.5
        else:
            x[i, np.arange(8), np.arange(8), 0] += 1.5
    return x, y


def test_fit_learns_and_reports_history(backend):
    x, y = bars_dataset()
    model = tiny_cnn()
    before = model.evaluate(x, y)
    history = model.fit(
        x,
        y,
        optimizer=Adam(model, lr=1e-2),
        epochs=5,
        batch_size=32,
        validation_data=bars_dataset(100, seed=1),
        verbose=0,
        seed=0,
    )
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    after = model.evaluate(*bars_dataset(200, seed=2))
    assert after["accuracy"] > 0.9 and after["accuracy"] > before["accuracy"] + 0.3
    probs = model.predict(x[:10])
    assert isinstance(probs, np.ndarray) and probs.shape == (10, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_fit_with_same_seed_is_reproducible():
    x, y = bars_dataset(100)
    runs = []
    for _ in range(2):
        model = tiny_cnn(dropout=0.3)
        model.fit(x, y, optimizer=SGD(model, lr=0.05, momentum=0.9), epochs=2, batch_size=16, verbose=0, seed=5)
        runs.append(host(model.layers[0].params["W"]).copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_fit_shows_progress_bar_and_epoch_lines(capsys):
    x, y = bars_dataset(64)
    model = tiny_cnn()
    model.fit(x, y, optimizer=Adam(model), epochs=2, batch_size=16, verbose=1, validation_data=(x, y))
    err = capsys.readouterr()
    text = err.out + err.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "val_accuracy" in text and "img/s" in text


def test_save_load_gives_identical_predictions(tmp_path, backend):
    x, y = bars_dataset(64)
    model = tiny_cnn(seed=1)
    opt = Adam(model, lr=1e-2)
    model.fit(x, y, optimizer=opt, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path, optimizer=opt, extra={"mean": np.array([0.5], np.float32), "epoch": 1, "note": "hi"})
    other = tiny_cnn(seed=2)
    other_opt = Adam(other)
    extra = other.load_weights(path, optimizer=other_opt)
    np.testing.assert_array_equal(model.predict(x), other.predict(x))
    assert extra["epoch"] == 1 and extra["note"] == "hi" and np.array_equal(extra["mean"], [0.5])
    assert other_opt.iterations == opt.iterations
    for key in opt.slots["m"]:
        np.testing.assert_array_equal(host(opt.slots["m"][key]), host(other_opt.slots["m"][key]))
    rebuilt, _ = minicnn.load_model(path)
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))


def test_checkpoint_keys_follow_the_documented_layout(tmp_path):
    model = tiny_cnn()
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        keys = set(f.files)
    assert {"layers/00_Conv2D/W", "layers/00_Conv2D/b", "layers/05_Dense/W", "layers/05_Dense/b"} <= keys


def test_mismatched_checkpoint_is_refused_and_model_unchanged(tmp_path):
    small = Sequential([Flatten(), Dense(3)], input_shape=(8, 8, 1), seed=0)
    small.save(tmp_path / "small.npz")
    model = tiny_cnn()
    before = [host(p).copy() for layer in model.layers for p in layer.params.values()]
    with pytest.raises(CheckpointError, match="layers"):
        model.load_weights(tmp_path / "small.npz")
    wider = Sequential(
        [Conv2D(5, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Dropout(0.0), Flatten(), Dense(3)],
        input_shape=(8, 8, 1),
    )
    wider.save(tmp_path / "wider.npz")
    with pytest.raises(CheckpointError, match=r"layers/00_Conv2D/W .*\(3, 3, 1, 5\).*\(3, 3, 1, 4\)"):
        model.load_weights(tmp_path / "wider.npz")
    model64 = tiny_cnn(dtype="float64")
    model64.save(tmp_path / "f64.npz")
    with pytest.raises(CheckpointError, match="float64"):
        model.load_weights(tmp_path / "f64.npz")
    after = [host(p) for layer in model.layers for p in layer.params.values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_astype_converts_every_parameter():
    model = tiny_cnn().astype("float64")
    assert all(p.dtype == np.float64 for layer in model.layers for p in layer.params.values())
    assert model.forward(np.zeros((1, 8, 8, 1))).dtype == np.float64


def test_model_backward_can_return_the_input_gradient():
    model = tiny_cnn(dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1))
    model.forward(x)
    assert model.backward(np.ones((2, 3))) is None  # training never needs it
    model.forward(x)
    dx = model.backward(np.ones((2, 3)), need_input_grad=True)  # the name Layer.backward uses
    assert dx.shape == x.shape
    model.forward(x)
    with pytest.raises(TypeError, match="input_grad"):  # 0.3.0 removed the old name
        model.backward(np.ones((2, 3)), input_grad=True)


def test_no_grad_gives_the_same_outputs_and_keeps_no_cache():
    model = minicnn.models.cifar10_cnn(seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 3))
    expected = model.forward(x)
    with minicnn.no_grad():
        got = model.forward(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert all(layer.cache is None for layer in model.layers if not isinstance(layer, Flatten))
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones((3, 10)))
    assert minicnn.layers.grad_enabled()  # restored on exit


def test_evaluate_can_return_the_predictions_of_its_own_pass():
    x, y = bars_dataset(50)
    model = tiny_cnn()
    result = model.evaluate(x, y, batch_size=16, return_predictions=True)
    np.testing.assert_array_equal(result["predictions"], model.predict(x).argmax(axis=1))
    assert result["accuracy"] == pytest.approx((result["predictions"] == y).mean())


def test_activations_returns_every_layer_output_and_feature_maps_use_them():
    from minicnn import interpret

    model = minicnn.models.cifar10_cnn(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    outs = model.activations(x)
    assert [o.shape[1:] for o in outs] == [layer.output_shape for layer in model.layers]
    np.testing.assert_array_equal(outs[-1], model.forward(x))
    assert len(model.activations(x, upto=3)) == 4
    maps, probs = interpret.feature_maps(model, x[0])
    assert sorted(maps) == [0, 2, 6, 8] and maps[0].shape == (32, 32, 16)
    # after the LeakyReLU that follows; one image against a batch of two: BLAS may round differently
    np.testing.assert_allclose(maps[0], outs[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, model.predict(x[:1])[0], rtol=1e-5)
