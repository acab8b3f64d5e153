"""The exported page in a real browser: opened from file:// (no server) in headless Chromium.

``window.minicnnPredict`` on raw pixels must give what Python's ``predict`` gives for the same pixels
prepared as ``python -m minicnn.predict`` prepares them: by the model's own Rescaling/Normalization,
or with the checkpoint's mean and std.
"""

import shutil
import time

import numpy as np
import pytest
from export_fixture import randomize_batchnorm

import minicnn
from minicnn import Sequential
from minicnn.datasets import standardize
from minicnn.explore.__main__ import main
from minicnn.explore.export_page import export_page
from minicnn.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    Normalization,
    ReLU,
    Rescaling,
    Residual,
    no_grad,
)

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason='Playwright for Python is not installed: pip install -e ".[explore]"'
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no system Chromium: install it with `apt-get update && apt-get install -y chromium` (Debian/Ubuntu); "
    "Playwright's own browser download is not used",
)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def page_predictions(browser, folder, images):
    """``minicnnPredict`` on each image in the page opened from disk; the console and page errors."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    started = time.perf_counter()
    page.goto((folder / "index.html").resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    print(f"\n{folder.name}: ready in {time.perf_counter() - started:.2f} s "
          f"(script {page.evaluate('window.minicnnLoadMs'):.0f} ms)")  # fmt: skip
    got = [page.evaluate("p => window.minicnnPredict(p)", image.reshape(-1).tolist()) for image in images]
    page.close()
    return np.asarray(got, np.float64), errors


def grayscale_every_layer_kind() -> Sequential:
    """The layers minicnn.js must know, with odd sizes, strides and paddings, on one-channel pictures;
    BatchNormalization with moving statistics that are not the initial ones."""
    model = Sequential(
        [
            Rescaling(1 / 255),
            Normalization(mean=0.4, variance=0.09),
            BatchNormalization(),
            AveragePooling2D(2, strides=1),  # "valid": 29x20 -> 28x19
            AveragePooling2D(3, strides=1, padding="same"),  # the border windows average fewer pixels
            AveragePooling2D(3, strides=2, padding="same"),  # -> 14x10, pads 0/1 rows, 1/1 columns
            Residual([Conv2D(1, 3, padding="same", activation="relu"), BatchNormalization(center=False)]),
            Residual([Conv2D(3, 3, padding="same"), BatchNormalization(scale=False)]),  # a 1x1 Conv2D shortcut
            Residual([Residual([Conv2D(3, 1)]), Dropout(0.5)], projection=Conv2D(3, 1)),
            Conv2D(4, (3, 2), strides=(2, 1), padding=1, activation="relu"),
            Conv2D(5, 3, padding="same", activation="leaky_relu"),
            Conv2D(3, 2, strides=2, padding="same", activation="sigmoid"),
            Conv2D(4, 1, activation="softmax"),
            MaxPool2D(2, strides=1),
            ReLU(),
            LeakyReLU(0.3),
            *(Activation(a) for a in ("tanh", "sigmoid", "relu", "leaky_relu", "linear")),
            Dropout(0.5),
            Residual([Flatten(), Dense(4, activation="tanh"), BatchNormalization()], GlobalAveragePooling2D()),
            Dense(6, activation="tanh"),
            Dense(3, activation="softmax"),
        ],
        input_shape=(29, 20, 1),
        seed=0,
    )
    return randomize_batchnorm(model)


def test_the_page_predicts_as_python_for_a_checkpoint_with_mean_and_std(browser, tmp_path, capsys):
    model = minicnn.models.cifar10_cnn(seed=0)
    mean, std = np.array([125.3, 123.0, 113.9]), np.array([63.0, 62.1, 66.7])
    model.save(tmp_path / "model.npz", extra={"mean": mean, "std": std})
    assert main([str(tmp_path / "model.npz"), "--export-page", str(tmp_path / "page")]) == 0
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    got, errors = page_predictions(browser, tmp_path / "page", images)
    expected = model.predict(standardize(images, mean, std))
    print(f"max |page - python| = {np.abs(got - expected).max():.2e}")
    assert errors == []
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "page").iterdir()}
    assert sizes["weights.bin"] == 4 * model.count_params()
    print(sizes)


def test_the_page_applies_the_models_own_preprocessing_and_every_layer_kind(browser, tmp_path):
    model = grayscale_every_layer_kind()
    export_page(model, {}, tmp_path / "page")
    images = np.random.default_rng(1).integers(0, 256, (4, *model.input_shape), dtype=np.uint8)
    got, errors = page_predictions(browser, tmp_path / "page", images)
    print(f"max |page - python| = {np.abs(got - model.predict(images.astype(np.float32))).max():.2e}")
    assert errors == []
    np.testing.assert_allclose(got, model.predict(images.astype(np.float32)), rtol=0, atol=1e-4)


def test_an_unsupported_layer_is_refused_by_name(tmp_path):
    class Doubling(ReLU):
        pass

    model = Sequential([Doubling(name="twice"), Flatten(), Dense(2)], input_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="'twice' \\(Doubling\\)"):
        export_page(model, {}, tmp_path / "page")
    assert not (tmp_path / "page").exists()


def test_the_command_refuses_a_model_that_takes_no_pictures(tmp_path, capsys):
    Sequential([Dense(3)], input_shape=(5,)).save(tmp_path / "vectors.npz")
    assert main([str(tmp_path / "vectors.npz"), "--export-page", str(tmp_path / "page")]) == 2
    assert "not a picture" in capsys.readouterr().err
    assert not (tmp_path / "page").exists()


def test_every_layers_output_in_the_page_is_pythons(browser, tmp_path):
    # Layer by layer, not only the probabilities: a final softmax can squash a wrong layer's error.
    model = grayscale_every_layer_kind()
    export_page(model, {}, tmp_path / "page")
    image = np.random.default_rng(2).integers(0, 256, model.input_shape, dtype=np.uint8)
    page, errors = browser.new_page(), []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((tmp_path / "page" / "index.html").resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    script = "p => minicnn.load(window.MINICNN_MODEL, window.MINICNN_WEIGHTS).forward(p).map(t => Array.from(t.data))"
    outputs = page.evaluate(script, image.reshape(-1).tolist())
    page.close()
    assert errors == []
    x = image[None].astype(np.float32)
    worst_of_all = 0.0
    with no_grad():
        for layer, got in zip(model.layers, outputs, strict=True):
            x = layer.forward(x)
            worst = np.abs(np.asarray(got) - x.reshape(-1)).max()
            assert worst <= 1e-4 * max(1.0, np.abs(x).max()), f"{layer.name}: {worst:.2e}"
            worst_of_all = max(worst_of_all, worst)
    print(f"\nlayer by layer, max |page - python| = {worst_of_all:.2e}")
