"""minicnn.interop: Keras files in and out.

The fixtures in tests/data/keras were written by real Keras (3.15.1 and 2.15 under
TensorFlow 2.15.1) with tests/fixtures/keras/make_fixtures.py; Keras is not needed here,
h5py is (the ``keras`` extra).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn.layers import (
    Activation,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    MaxPooling2D,
    Normalization,
    ReLU,
    Rescaling,
)

try:
    import h5py
except ImportError:  # the `keras` extra is missing: only the tests that need no h5py run
    h5py = None
from conftest import mutated  # noqa: E402

from minicnn.interop import KerasFormatError, load_keras, save_keras  # noqa: E402  (never imports h5py)

needs_h5py = pytest.mark.skipif(h5py is None, reason='needs h5py: pip install -e ".[keras]"')

DATA = Path(__file__).parent / "data" / "keras"
MODELS = ["stack", "final_activation", "logits", "functional_chain"]
WRITERS = ["keras2", "keras3"]  # which Keras wrote the file; each wrote both formats


def keras_output(model, fixture):
    """What the fixture's Keras model returned: probabilities via predict, or bare logits."""
    if fixture["softmax"]:
        return model.predict(fixture["x"])
    with minicnn.no_grad():
        return model.forward(fixture["x"])


# ---- loading what Keras wrote ---------------------------------------------------------------
@needs_h5py
@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("name", MODELS)
def test_keras_fixture_predicts_as_keras_did(name, writer, ext):
    fixture = np.load(DATA / f"{name}_{writer}.npz", allow_pickle=False)
    model = load_keras(DATA / f"{name}_{writer}{ext}")
    assert model.input_shape == fixture["x"].shape[1:]
    np.testing.assert_allclose(keras_output(model, fixture), fixture["y"], rtol=1e-5, atol=1e-6)


@needs_h5py
@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("writer", WRITERS)
def test_stack_rebuilt_layer_for_layer(writer, ext):
    model = load_keras(DATA / f"stack_{writer}{ext}")
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [
        Conv2D,
        ReLU,
        LeakyReLU,
        Conv2D,
        ReLU,
        MaxPool2D,
        Dropout,
        Conv2D,
        ReLU,
        Flatten,
        Dense,
        ReLU,
        LeakyReLU,
        Dense,
    ]  # relu activations became ReLU layers; softmax folded
    conv0, _, leaky, conv1, _, pool, drop, conv2 = model.layers[:8]
    assert (conv0.kernel_size, conv0.strides, conv0.padding) == ((3, 3), (1, 1), "same")
    assert (conv1.kernel_size, conv1.strides, conv1.padding) == ((3, 2), (2, 2), "same")
    assert (conv2.kernel_size, conv2.strides, conv2.padding) == ((2, 3), (1, 2), "valid")
    assert (pool.pool_size, pool.strides) == ((2, 2), (1, 1))
    assert drop.rate == pytest.approx(0.3)
    assert leaky.alpha == pytest.approx(0.1)
    # LeakyReLU(): the layer's default is 0.3 in Keras 2 (alpha) and in Keras 3.15 (negative_slope)
    # alike; Keras 3's leaky_relu *function* defaults to 0.2. The stored value is what counts.
    assert model.layers[12].alpha == pytest.approx(0.3)
    assert [layer.name for layer in model.layers[:3]] == [conv0.name, f"{conv0.name}_relu", leaky.name]


COURSE = ["course_layers", "course_layers_given"]  # written by Keras 3 only, fed uint8 pixels


@needs_h5py
@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("name", COURSE)
def test_keras_course_layers_predict_as_keras_did(name, ext):
    """Rescaling, Normalization (adapted: weights; given: config) and every activation, from Keras."""
    fixture = np.load(DATA / f"{name}_keras3.npz", allow_pickle=False)
    model = load_keras(DATA / f"{name}_keras3{ext}")
    assert fixture["x"].dtype == np.uint8
    np.testing.assert_allclose(model.predict(fixture["x"]), fixture["y"], rtol=1e-5, atol=1e-6)
    kinds = [type(layer) for layer in model.layers]
    if name == "course_layers":
        assert kinds == [
            Rescaling,
            Normalization,
            Conv2D,
            ReLU,
            MaxPool2D,
            Conv2D,
            Activation,
            Activation,
            Flatten,
            Dense,
            LeakyReLU,
            Dense,
            Activation,
            Activation,
            Dense,
        ]  # activation= became a layer after its Conv2D/Dense; the last softmax folded
        tanh, sigmoid, leaky, softmax = model.layers[6], model.layers[7], model.layers[10], model.layers[12]
        assert (tanh.name, tanh.activation, sigmoid.activation, softmax.activation) == (
            "conv2d_1_tanh",
            "tanh",
            "sigmoid",
            "softmax",
        )
        assert leaky.alpha == pytest.approx(0.2)  # Keras 3's leaky_relu activation
        assert model.layers[1].mean.shape == (3,) and model.layers[0].scale == pytest.approx(1 / 255)
    else:
        norm = model.layers[1]
        assert norm.mean.tolist() == pytest.approx([0.1, -0.2]) and norm.variance.tolist() == pytest.approx([0.3, 0.5])
        assert (model.layers[0].scale, model.layers[0].offset) == (pytest.approx(1 / 127.5), -1.0)


# ---- minicnn -> Keras -> minicnn --------------------------------------------------------------
def with_random_biases(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.uniform(-0.3, 0.3, layer.params["b"].shape).astype(np.float32)
    return model


def assert_same_model(a, b, x):
    assert a.input_shape == b.input_shape
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    assert [layer.get_config() for layer in a.layers] == [layer.get_config() for layer in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for key in la.params:
            np.testing.assert_array_equal(la.params[key], lb.params[key])
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


@needs_h5py
@pytest.mark.parametrize(
    "build",
    [
        lambda: minicnn.models.cifar10_cnn(seed=0),
        lambda: minicnn.Sequential(
            [
                Conv2D(4, (3, 2), strides=2, padding="same"),
                ReLU(),
                Conv2D(5, 3, padding="valid"),
                LeakyReLU(0.2),
                MaxPool2D((2, 3), strides=1),
                Dropout(0.1),
                Flatten(),
                Dense(3),
                ReLU(),
            ],
            input_shape=(11, 10, 3),
            seed=1,
        ),  # ends in ReLU: softmax layer added
    ],
    ids=["cifar10_cnn", "ends_in_relu"],
)
def test_round_trip(tmp_path, build):
    model = with_random_biases(build())
    save_keras(model, tmp_path / "m.keras")
    back = load_keras(tmp_path / "m.keras")
    x = np.random.default_rng(1).standard_normal((4,) + model.input_shape).astype(np.float32)
    assert_same_model(model, back, x)


def keras_layers_model(seed=0):
    """Every layer kind Keras's names brought: preprocessing, fused and standalone activations."""
    norm = Normalization()
    norm.adapt(np.random.default_rng(seed).integers(0, 256, (32, 6, 6, 3)).astype(np.uint8))
    return minicnn.Sequential(
        [
            Rescaling(1 / 127.5, offset=-1.0),
            norm,
            Conv2D(4, 3, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(4, 2, activation="tanh"),
            Activation("sigmoid"),
            Flatten(),
            Dense(6, activation="leaky_relu"),
            Dense(5, activation="softmax"),
            Activation("tanh"),
            Dense(4, activation="sigmoid"),
            Activation("relu"),
            Dense(3),
        ],
        input_shape=(6, 6, 3),
        seed=seed,
    )


@needs_h5py
def test_round_trip_with_every_new_layer_kind(tmp_path):
    model = with_random_biases(keras_layers_model())
    save_keras(model, tmp_path / "m.keras")
    back = load_keras(tmp_path / "m.keras")
    x = np.random.default_rng(2).integers(0, 256, (5, 6, 6, 3)).astype(np.uint8)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)
    # Each activation= comes back as a layer of its own after its Conv2D/Dense (see load_keras).
    assert [type(layer).__name__ for layer in back.layers] == [
        "Rescaling",
        "Normalization",
        "Conv2D",
        "ReLU",
        "MaxPool2D",
        "Conv2D",
        "Activation",
        "Activation",
        "Flatten",
        "Dense",
        "LeakyReLU",
        "Dense",
        "Activation",
        "Activation",
        "Dense",
        "Activation",
        "ReLU",
        "Dense",
    ]
    np.testing.assert_allclose(back.layers[1].mean, model.layers[1].mean, rtol=1e-7)  # through float32


@needs_h5py
def test_save_keras_course_layout_matches_keras(tmp_path):
    """The twin of course_layers_keras3.keras, written by save_keras: Keras's own config and weights layout."""
    twin = minicnn.Sequential(
        [
            Rescaling(1 / 255),
            Normalization(),
            Conv2D(4, 3, padding="same", activation="relu"),
            MaxPooling2D(),
            Conv2D(5, 3, activation="tanh"),
            Activation("sigmoid"),
            Flatten(),
            Dense(6, activation="leaky_relu"),
            Dense(5, activation="softmax"),
            Activation("tanh"),
            Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 3),
        seed=0,
    )
    twin.layers[-1].emit_logits = True  # the model hands out logits; Keras gets this layer's softmax
    save_keras(twin, tmp_path / "ours.keras")
    _, ours = read_zip(tmp_path / "ours.keras")
    _, ref = read_zip(DATA / "course_layers_keras3.keras")
    assert strip(json.loads(ours["config.json"])) == strip(json.loads(ref["config.json"]))
    assert h5_layout(ours["model.weights.h5"]) == h5_layout(ref["model.weights.h5"])
    with h5py.File(io.BytesIO(ours["model.weights.h5"]), "r") as f:
        mean, variance = twin.layers[1].statistics()
        np.testing.assert_array_equal(f["layers/normalization/vars/0"][()], mean.astype(np.float32))
        np.testing.assert_array_equal(f["layers/normalization/vars/1"][()], variance.astype(np.float32))


@needs_h5py
def test_normalization_given_in_config_or_weights_loads_alike(tmp_path):
    """Keras keeps given statistics in the config (no weights), adapted ones as weights."""
    model = keras_layers_model()
    save_keras(model, tmp_path / "adapted.keras")
    mean, variance = model.layers[1].statistics()

    def given(config):
        entry = layer(config, "normalization")
        entry["mean"], entry["variance"] = mean.tolist(), variance.tolist()

    path = edit_keras_config(tmp_path / "adapted.keras", tmp_path / "given.keras", given)
    with pytest.raises(
        KerasFormatError, match=r"'normalization' \(Normalization\) has 3 stored weight arrays.*needs 0"
    ):
        load_keras(path)  # given statistics and stored ones: which? refused

    def no_vars(f):
        for i in range(3):
            del f[f"layers/normalization/vars/{i}"]

    back = load_keras(rewrite_keras_weights(tmp_path / "given.keras", tmp_path / "given3.keras", no_vars))
    np.testing.assert_array_equal(back.layers[1].mean, mean)  # float64, from the JSON
    x = np.random.default_rng(3).integers(0, 256, (4, 6, 6, 3)).astype(np.uint8)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)

    def bad_variance(f):
        replace_dataset(f, "layers/normalization/vars/1", (3,))
        f["layers/normalization/vars/1"][...] = -1

    with pytest.raises(KerasFormatError, match="stored variance has negative values"):
        load_keras(rewrite_keras_weights(tmp_path / "adapted.keras", tmp_path / "bad.keras", bad_variance))
    wrong = rewrite_keras_weights(
        tmp_path / "adapted.keras",
        tmp_path / "wrong.keras",
        lambda f: replace_dataset(f, "layers/normalization/vars/0", (4,)),
    )
    with pytest.raises(KerasFormatError, match=r"stored mean \(4,\) and variance \(3,\)"):
        load_keras(wrong)


@needs_h5py
def test_int_padding_written_as_keras_padding(tmp_path):
    model = minicnn.Sequential(
        [Conv2D(2, 3, padding=1), Conv2D(2, 3, padding=0), Flatten(), Dense(2)], input_shape=(6, 6, 1), seed=0
    )
    save_keras(model, tmp_path / "m.keras")
    back = load_keras(tmp_path / "m.keras")
    assert [back.layers[0].padding, back.layers[1].padding] == ["same", "valid"]
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 1)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


@needs_h5py
def test_save_softmax_placement(tmp_path):
    """Keras's predict must equal minicnn's predict: the softmax goes on the last Dense, or after."""
    dense_last = minicnn.Sequential([Flatten(), Dense(3)], input_shape=(2, 2, 1), seed=0)
    relu_last = minicnn.Sequential([Flatten(), Dense(3), ReLU()], input_shape=(2, 2, 1), seed=0)
    save_keras(dense_last, tmp_path / "a.keras")
    save_keras(relu_last, tmp_path / "b.keras")
    a = json.loads(zipfile.ZipFile(tmp_path / "a.keras").read("config.json"))["config"]["layers"]
    b = json.loads(zipfile.ZipFile(tmp_path / "b.keras").read("config.json"))["config"]["layers"]
    assert [e["class_name"] for e in a] == ["InputLayer", "Flatten", "Dense"]
    assert a[-1]["config"]["activation"] == "softmax"
    assert [e["class_name"] for e in b] == ["InputLayer", "Flatten", "Dense", "ReLU", "Activation"]
    assert b[-1]["config"]["activation"] == "softmax" and b[-3]["config"]["activation"] == "linear"
    # A last Dense with an activation of its own keeps it, and the softmax comes after it.
    tanh_last = minicnn.Sequential([Flatten(), Dense(3, activation="tanh")], input_shape=(2, 2, 1), seed=0)
    save_keras(tanh_last, tmp_path / "c.keras")
    c = json.loads(zipfile.ZipFile(tmp_path / "c.keras").read("config.json"))["config"]["layers"]
    assert [(e["class_name"], e["config"]["activation"]) for e in c[2:]] == [
        ("Dense", "tanh"),
        ("Activation", "softmax"),
    ]


@needs_h5py
@pytest.mark.parametrize("last", [lambda: Dense(3, activation="softmax"), lambda: Activation("softmax")])
def test_save_keeps_the_models_own_softmax_under_emit_logits(tmp_path, last):
    """A model whose last layer has activation "softmax" (with emit_logits on, as a model that
    trains on its logits sets it) gets no second softmax: Keras predicts softmax(logits)."""
    body = [Flatten()] if isinstance(last(), Dense) else [Flatten(), Dense(3)]
    model = with_random_biases(minicnn.Sequential(body + [last()], input_shape=(2, 2, 2), seed=0))
    model.layers[-1].emit_logits = True
    save_keras(model, tmp_path / "m.keras")
    entries = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))["config"]["layers"]
    assert [e["config"].get("activation") for e in entries].count("softmax") == 1
    x = np.random.default_rng(0).standard_normal((4, 2, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(load_keras(tmp_path / "m.keras").predict(x), model.predict(x), rtol=1e-6)


@needs_h5py
def test_save_refuses_padding_keras_lacks(tmp_path):
    model = minicnn.Sequential([Conv2D(2, 3, padding=2), Flatten(), Dense(2)], input_shape=(5, 5, 1), seed=0)
    with pytest.raises(KerasFormatError, match="neither Keras's 'same' nor 'valid'"):
        save_keras(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(ValueError, match="should end in .keras"):
        save_keras(minicnn.models.cifar10_cnn(seed=0), tmp_path / "m.h5")


# ---- save_keras's layout against the one Keras wrote ---------------------------------------------
def reference_twin():
    """The model of structure_reference.keras (make_fixtures.py), built in minicnn."""
    return minicnn.Sequential(
        [
            Conv2D(4, 3, padding="same"),
            LeakyReLU(0.1),
            MaxPool2D(2),
            Dropout(0.25),
            Conv2D(6, 3),
            ReLU(),
            Flatten(),
            Dense(8),
            Dropout(0.5),
            Dense(3),
        ],
        input_shape=(8, 8, 3),
        seed=0,
    )


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return z.namelist(), {n: z.read(n) for n in z.namelist()}


def strip(value, keys=("name", "shared_object_id")):
    """A config with the given keys removed everywhere (names differ, values must not)."""
    if isinstance(value, dict):
        return {k: strip(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [strip(v, keys) for v in value]
    return value


def h5_layout(data: bytes):
    """{path: (shape, dtype) for datasets, None for groups}, plus each object's attribute names."""
    layout = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(
            lambda name, obj: layout.__setitem__(
                name, ((obj.shape, obj.dtype.str) if isinstance(obj, h5py.Dataset) else None, sorted(obj.attrs))
            )
        )
        layout["/"] = (None, sorted(f.attrs))
    return layout


@needs_h5py
def test_save_keras_layout_matches_keras(tmp_path):
    save_keras(reference_twin(), tmp_path / "ours.keras")
    ours_names, ours = read_zip(tmp_path / "ours.keras")
    ref_names, ref = read_zip(DATA / "structure_reference.keras")
    assert ours_names == ref_names == ["metadata.json", "config.json", "model.weights.h5"]
    assert set(json.loads(ref["metadata.json"])) <= set(json.loads(ours["metadata.json"]))
    ours_config, ref_config = json.loads(ours["config.json"]), json.loads(ref["config.json"])
    assert [e["class_name"] for e in ours_config["config"]["layers"]] == [
        e["class_name"] for e in ref_config["config"]["layers"]
    ]
    assert strip(ours_config) == strip(ref_config)  # every key and value but the names
    assert h5_layout(ours["model.weights.h5"]) == h5_layout(ref["model.weights.h5"])


@needs_h5py
def test_keras_file_through_minicnn_keeps_its_weights(tmp_path):
    """Keras's file -> load_keras -> save_keras: the same arrays in the same places."""
    save_keras(load_keras(DATA / "structure_reference.keras"), tmp_path / "again.keras")
    _, ours = read_zip(tmp_path / "again.keras")
    _, ref = read_zip(DATA / "structure_reference.keras")
    with (
        h5py.File(io.BytesIO(ours["model.weights.h5"]), "r") as a,
        h5py.File(io.BytesIO(ref["model.weights.h5"]), "r") as b,
    ):
        datasets = []
        b.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert len(datasets) == 8
        for name in datasets:
            np.testing.assert_array_equal(a[name][()], b[name][()])
            assert a[name.rsplit("/", 1)[0]].attrs["name"] == b[name.rsplit("/", 1)[0]].attrs["name"]


# ---- refusals ----------------------------------------------------------------------------------------
@needs_h5py
@pytest.mark.parametrize(
    "fixture, match",
    [
        ("refuse_channels_first_keras3.keras", r"\(Conv2D\): data_format='channels_first'"),
        ("refuse_channels_first_keras2.h5", r"\(Conv2D\): data_format='channels_first'"),
        ("refuse_lambda_keras3.keras", r"'lambda' \(Lambda\): this layer type is not supported"),
        ("refuse_lambda_keras2.h5", r"'lambda' \(Lambda\)"),
        ("refuse_branching_keras3.keras", r"'add' \(Add\) takes 2 inputs .*not a plain chain"),
        ("refuse_branching_keras2.h5", r"'add' \(Add\) takes 2 inputs"),
    ],
)
def test_unsupported_models_refused(fixture, match):
    with pytest.raises(KerasFormatError, match=match) as info:
        load_keras(DATA / fixture)
    assert fixture in str(info.value)
    if "branching" not in fixture:
        assert "Supported: InputLayer, Conv2D" in str(info.value)


@needs_h5py
@pytest.mark.parametrize("fixture", ["refuse_batchnorm_keras3.keras", "refuse_batchnorm_keras2.h5"])
def test_keras_batchnorm_files_load_in_keras_weight_order(fixture, tmp_path):
    """Keras's own files with a BatchNormalization (once refused): gamma, beta, moving_mean,
    moving_variance in that order, whether Keras 3 numbers them or legacy .h5 names them."""
    model = load_keras(DATA / fixture)
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "BatchNormalization", "Flatten", "Dense"]
    assert [w.tolist() for w in model.get_weights()[2:6]] == [[1, 1], [0, 0], [0, 0], [1, 1]]  # Keras's initial
    if fixture.endswith(".keras"):

        def distinct(f):
            for i in range(4):
                replace_dataset(f, f"layers/batch_normalization/vars/{i}", (2,))
                f[f"layers/batch_normalization/vars/{i}"][...] = [i + 1, i + 2]

        back = load_keras(rewrite_keras_weights(DATA / fixture, tmp_path / "bn.keras", distinct))
        bn = back.layers[1]
        assert bn.params["gamma"].tolist() == [1, 2] and bn.params["beta"].tolist() == [2, 3]
        assert bn.state["moving_mean"].tolist() == [3, 4] and bn.state["moving_variance"].tolist() == [4, 5]


def edit_keras_config(src, dst, edit):
    """Copy a .keras zip with ``edit(config)`` applied to its config.json."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return dst


def edit_h5_config(src, dst, edit):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return dst


def layer(config, name):
    return next(e["config"] for e in config["config"]["layers"] if e["config"].get("name") == name)


def set_value(name, key, value):
    return lambda config: layer(config, name).__setitem__(key, value)


def rename_class(name, class_name):
    def edit(config):
        next(e for e in config["config"]["layers"] if e["config"].get("name") == name)["class_name"] = class_name

    return edit


CONFIG_REFUSALS = [
    (set_value("conv2d", "dilation_rate", [2, 2]), r"'conv2d' \(Conv2D\): dilation_rate \[2, 2\]"),
    (set_value("conv2d", "groups", 3), r"'conv2d' \(Conv2D\): groups=3"),
    (set_value("conv2d", "activation", "gelu"), r"'conv2d' \(Conv2D\): activation 'gelu' is not supported"),
    (set_value("activation", "activation", "selu"), r"'activation' \(Activation\): activation 'selu'"),
    (set_value("max_pooling2d", "padding", "same"), r"'max_pooling2d' \(MaxPooling2D\): padding 'same'"),
    (set_value("re_lu", "max_value", 6.0), r"'re_lu' \(ReLU\): max_value=6.0"),
    (rename_class("conv2d_1", "DepthwiseConv2D"), r"'conv2d_1' \(DepthwiseConv2D\): this layer type"),
    (lambda c: c.__setitem__("class_name", "MyModel"), r"'MyModel': only Sequential"),
    (
        lambda c: c["config"]["layers"][0]["config"].__setitem__("batch_shape", [None, None, None, 3]),
        r"input shape \[None, None, None, 3\] is not fixed",
    ),
]


@needs_h5py
@pytest.mark.parametrize("edit, match", CONFIG_REFUSALS)
def test_unsupported_options_refused(tmp_path, edit, match):
    # The Keras 3 stack in both formats (the .h5's config is Keras 3's, with batch_shape).
    for path in (
        edit_keras_config(DATA / "stack_keras3.keras", tmp_path / "m.keras", edit),
        edit_h5_config(DATA / "stack_keras3.h5", tmp_path / "m.h5", edit),
    ):
        with pytest.raises(KerasFormatError, match=match):
            load_keras(path)


@needs_h5py
def test_keras2_use_bias_false_and_slope_spellings(tmp_path):
    """Keras 2 spells LeakyReLU's slope alpha; ReLU(negative_slope) is a LeakyReLU."""

    def edit(config):
        layer(config, "re_lu")["negative_slope"] = 0.25

    model = load_keras(edit_h5_config(DATA / "stack_keras2.h5", tmp_path / "m.h5", edit))
    assert type(model.layers[4]) is LeakyReLU and model.layers[4].alpha == 0.25
    no_bias = load_keras(DATA / "final_activation_keras2.h5").layers[0]  # saved with use_bias=False
    assert np.all(no_bias.params["b"] == 0)


def rewrite_keras_weights(src, dst, edit):
    """Copy a .keras zip with ``edit(h5 file)`` applied to its model.weights.h5."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        edit(f)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return dst


def replace_dataset(f, path, shape):
    del f[path]
    f.create_dataset(path, data=np.zeros(shape, np.float32))


@needs_h5py
@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda f: replace_dataset(f, "layers/conv2d_1/vars/0", (3, 3, 4, 5)),
            r"'conv2d_1' \(Conv2D\): stored kernel has shape \(3, 3, 4, 5\), the configuration .* needs \(3, 2, 4, 5\)",
        ),
        (lambda f: replace_dataset(f, "layers/dense/vars/1", (7,)), r"'dense' \(Dense\): stored bias has shape \(7,\)"),
        (lambda f: f.__delitem__("layers/dense_1/vars/1"), r"'dense_1' \(Dense\) has 1 stored weight arrays.*needs 2"),
        (lambda f: f.__delitem__("layers/conv2d"), r"'conv2d' \(Conv2D\) has 0 stored weight arrays"),
    ],
)
def test_keras_weights_not_matching_config(tmp_path, edit, match):
    with pytest.raises(KerasFormatError, match=match):
        load_keras(rewrite_keras_weights(DATA / "stack_keras3.keras", tmp_path / "m.keras", edit))


@needs_h5py
@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda f: replace_dataset(f, "model_weights/conv2d/conv2d/kernel:0", (3, 3, 3, 5)),
            r"'conv2d' \(Conv2D\): stored kernel has shape \(3, 3, 3, 5\), the configuration .* needs \(3, 3, 3, 4\)",
        ),
        (
            lambda f: f["model_weights/dense"].attrs.__setitem__("weight_names", ["dense/kernel:0"]),
            r"'dense' \(Dense\) stores weights \['dense/kernel:0'\], its configuration needs kernel, bias",
        ),
        (
            lambda f: f["model_weights"].attrs.__setitem__("layer_names", ["conv2d"]),
            r"'conv2d_1' \(Conv2D\) has 0 stored weight arrays",
        ),
        (lambda f: f.attrs.__delitem__("model_config"), "weights-only file"),
    ],
)
def test_legacy_weights_not_matching_config(tmp_path, edit, match):
    shutil.copy(DATA / "stack_keras2.h5", tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        edit(f)
    with pytest.raises(KerasFormatError, match=match):
        load_keras(tmp_path / "m.h5")


@needs_h5py
@pytest.mark.parametrize("name", ["stack_keras3.keras", "stack_keras2.h5"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files_refused(tmp_path, name, keep):
    data = (DATA / name).read_bytes()
    (tmp_path / name).write_bytes(data[: max(8, int(len(data) * keep))])
    with pytest.raises(KerasFormatError, match="damaged"):
        load_keras(tmp_path / name)


@needs_h5py
def test_corrupt_files_refused(tmp_path):
    data = bytearray((DATA / "stack_keras3.keras").read_bytes())
    at = data.index(b'"filters"')  # inside the stored config.json: the CRC no longer fits
    data[at : at + 9] = b'"filterz"'
    (tmp_path / "crc.keras").write_bytes(bytes(data))
    with pytest.raises(KerasFormatError, match="damaged zip"):
        load_keras(tmp_path / "crc.keras")

    h5 = bytearray((DATA / "stack_keras2.h5").read_bytes())
    h5[8:512] = bytes(504)  # the superblock after the signature
    (tmp_path / "bad.h5").write_bytes(bytes(h5))
    with pytest.raises(KerasFormatError, match="damaged HDF5"):
        load_keras(tmp_path / "bad.h5")

    (tmp_path / "junk.keras").write_bytes(b"not a model at all")
    with pytest.raises(KerasFormatError, match="neither a zip"):
        load_keras(tmp_path / "junk.keras")

    edit_keras_config(DATA / "stack_keras3.keras", tmp_path / "json.keras", lambda c: None)
    with zipfile.ZipFile(tmp_path / "json.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["config.json"] = b'{"class_name": "Sequential", "config": '
    with zipfile.ZipFile(tmp_path / "json.keras", "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(KerasFormatError, match="config.json is not valid JSON"):
        load_keras(tmp_path / "json.keras")


FUZZ_FILES = {name: (DATA / name).read_bytes() for name in ("stack_keras3.keras", "stack_keras2.h5")}


@needs_h5py
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(FUZZ_FILES)), data=st.data())
def test_fuzz_damaged_files_give_a_model_or_keras_format_error(tmp_path, name, data, loader):
    """Byte edits and cuts: either a whole model (HDF5 array bytes carry no checksum) or a
    KerasFormatError, never another exception (the load runs in a child: a crash fails here)."""
    valid = FUZZ_FILES[name]
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=6))
    cut = data.draw(st.integers(0, len(valid)))
    (tmp_path / name).write_bytes(mutated(valid, edits, cut))
    result = loader.call("crafted_files", "load_keras_input_shape", str(tmp_path / name))
    if result.outcome == "returned":
        assert result.value == [9, 9, 3]
    else:
        assert result.is_refusal("KerasFormatError"), f"{result.outcome}: {result.error}: {result.message}"


# ---- h5py stays optional ---------------------------------------------------------------------------
def test_import_minicnn_does_not_import_h5py():
    code = "import sys, minicnn, minicnn.interop; print('h5py' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent
    )
    assert out.stdout.strip() == "False"


def test_without_h5py_a_clear_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[keras\]"'):
        load_keras(DATA / "stack_keras3.keras")
    with pytest.raises(ImportError, match=r'pip install -e "\.\[keras\]"'):
        save_keras(minicnn.models.cifar10_cnn(seed=0), tmp_path / "m.keras")


@needs_h5py
def test_visualize_script_draws_a_keras_model(tmp_path):
    root = Path(__file__).parent.parent
    result = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "visualize.py"),
            str(DATA / "stack_keras3.keras"),
            "--out",
            str(tmp_path),
            "--steps",
            "2",
            "--filters-per-layer",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.glob("*.png")} == {"filters.png", "stimuli.png", "feature_maps.png"}
