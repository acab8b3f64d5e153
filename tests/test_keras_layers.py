"""Keras's layers: Activation, ``activation=`` on Conv2D and Dense, MaxPooling2D, Rescaling, Normalization.

Every activation and layer is gradient-checked in float64 on both backends and held to its
definition written out in NumPy (softmax's backward against its explicit Jacobian); where
PyTorch is installed, forward and backward also against PyTorch's autograd in float64.
"""

import json

import numpy as np
import pytest
from conftest import host

import minicnn
from minicnn.gradcheck import check_layer
from minicnn.input_checks import takes_raw_pixels
from minicnn.layers import (
    KERAS_ACTIVATIONS,
    LAYER_CLASSES,
    Activation,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    MaxPooling2D,
    Normalization,
    Rescaling,
    naive,
)
from minicnn.layers import normalization as normalization_module

GRAD_TOL = 1e-6
REF_TOL = 1e-9


def rel_err(a, b):
    a, b = host(a), host(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def away_from_zero(rng, shape, margin=0.05):
    """Standard normal values at least ``margin`` from 0 (ReLU's kink)."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * margin


# ---- the definitions, in float64 NumPy ----------------------------------------------------
def f_ref(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.2 * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def grad_ref(name, z, dy):
    """``dz`` from each function's derivative; softmax's through its explicit Jacobian."""
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (z > 0)
    if name == "leaky_relu":
        return dy * np.where(z > 0, 1.0, 0.2)
    if name == "sigmoid":
        s = f_ref("sigmoid", z)
        return dy * s * (1 - s)
    if name == "tanh":
        return dy * (1 - np.tanh(z) ** 2)
    y = f_ref("softmax", z)
    jacobian = y[..., :, None] * (np.eye(z.shape[-1]) - y[..., None, :])  # dy_i/dz_k = y_i (delta_ik - y_k)
    return np.einsum("...i,...ik->...k", dy, jacobian)


def assert_grads_ok(errors):
    assert max(errors.values()) < GRAD_TOL, f"gradient check failed: {errors}"


# ---- Activation ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 5)])
def test_activation_layer(backend, name, shape):
    rng = np.random.default_rng(len(shape))
    x = away_from_zero(rng, shape) * 2
    layer = Activation(name)
    assert_grads_ok(check_layer(layer, backend.asarray(x)))
    y = layer.forward(backend.asarray(x), training=True)
    assert rel_err(y, f_ref(name, x)) < REF_TOL
    dy = rng.standard_normal(shape)
    assert rel_err(layer.backward(backend.asarray(dy)), grad_ref(name, x, dy)) < REF_TOL


def test_activation_layer_leaves_its_input_alone_and_none_is_linear():
    x = np.random.default_rng(0).standard_normal((2, 4))
    for name in KERAS_ACTIVATIONS:
        before = x.copy()
        Activation(name).forward(x, training=True)
        np.testing.assert_array_equal(x, before)
    assert Activation(None).activation == "linear"


def test_sigmoid_and_softmax_keep_their_digits_for_large_inputs():
    z = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    with np.errstate(over="raise", invalid="raise"):  # no overflow, no inf/inf on the way
        y = Activation("sigmoid").forward(z)
        p = Activation("softmax").forward(z)
    np.testing.assert_allclose(y, [[0.0, np.exp(-40.0), 0.5, 1.0, 1.0]], rtol=1e-14, atol=0)
    np.testing.assert_allclose(p, [[0, 0, 0, 0, 1.0]], atol=1e-300)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activations_keep_the_dtype(backend, name, dtype):
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(dtype))
    for layer in (Activation(name), Conv2D(2, 3, activation=name)):
        layer.build(x.shape[1:], dtype=dtype)
        y = layer.forward(x, training=True)
        assert y.dtype == dtype
        assert layer.backward(backend.asarray(np.ones(y.shape, dtype))).dtype == dtype


@pytest.mark.parametrize("make", [lambda a: Dense(3, activation=a), lambda a: Conv2D(2, 3, activation=a), Activation])
def test_unknown_activation_is_refused_with_the_known_names(make):
    for bad in ("gelu", "Relu", 3, max):
        with pytest.raises(ValueError, match=r"unknown activation .*; known: None, 'linear', 'relu', 'leaky_relu', "):
            make(bad)


# ---- activation= on Dense and Conv2D ---------------------------------------------------------
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_dense_activation(backend, name):
    rng = np.random.default_rng(1)
    layer = Dense(4, activation=name)
    layer.build((6,), dtype="float64", rng=rng)
    layer.params["b"][...] = backend.asarray(rng.standard_normal(4))
    x = rng.standard_normal((3, 6))
    assert_grads_ok(check_layer(layer, backend.asarray(x)))
    W, b = host(layer.params["W"]), host(layer.params["b"])
    z = naive.dense_forward(x, W, b)
    assert rel_err(layer.forward(backend.asarray(x), training=True), f_ref(name, z)) < REF_TOL
    dy = rng.standard_normal(z.shape)
    dx = layer.backward(backend.asarray(dy))
    dx_ref, dW_ref, db_ref = naive.dense_backward(x, W, grad_ref(name, z, dy))
    for got, want in ((dx, dx_ref), (layer.grads["W"], dW_ref), (layer.grads["b"], db_ref)):
        assert rel_err(got, want) < REF_TOL


@pytest.mark.parametrize("strides", [1, 2])  # 1: the fast stride-1 backward; 2: the textbook one
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_conv_activation(backend, name, strides):
    rng = np.random.default_rng(2)
    layer = Conv2D(3, 3, strides=strides, padding="same", activation=name)
    layer.build((5, 5, 2), dtype="float64", rng=rng)
    layer.params["b"][...] = backend.asarray(rng.standard_normal(3))
    x = rng.standard_normal((2, 5, 5, 2))
    assert_grads_ok(check_layer(layer, backend.asarray(x)))
    W, b = host(layer.params["W"]), host(layer.params["b"])
    z = naive.conv_forward(x, W, b, layer.strides, layer.pads)
    assert rel_err(layer.forward(backend.asarray(x), training=True), f_ref(name, z)) < REF_TOL
    dy = rng.standard_normal(z.shape)
    dx = layer.backward(backend.asarray(dy))
    dx_ref, dW_ref, db_ref = naive.conv_backward(x, W, grad_ref(name, z, dy), layer.strides, layer.pads)
    for got, want in ((dx, dx_ref), (layer.grads["W"], dW_ref), (layer.grads["b"], db_ref)):
        assert rel_err(got, want) < REF_TOL


@pytest.mark.parametrize("make", [lambda: Dense(3, activation="tanh"), lambda: Activation("sigmoid")])
def test_backward_without_forward_is_a_clear_error(make):
    layer = make()
    x = np.ones((2, 4))
    with minicnn.no_grad():
        layer.forward(x)
    with pytest.raises(RuntimeError, match="backward\\(\\) needs a forward\\(\\) first"):
        layer.backward(np.ones((2, 3 if isinstance(layer, Dense) else 4)))


# ---- the fused-softmax contract ---------------------------------------------------------------
def softmax_layers(rng):
    """``(layer with softmax, its twin without, input)`` for Dense, Conv2D and Activation."""
    dense, conv = Dense(5, activation="softmax"), Conv2D(4, 3, activation="softmax")
    dense.build((6,), dtype="float64", rng=rng)
    conv.build((5, 5, 2), dtype="float64", rng=rng)
    dense_twin, conv_twin = Dense(5), Conv2D(4, 3)
    for layer, twin in ((dense, dense_twin), (conv, conv_twin)):
        twin.build(layer.input_shape, dtype="float64")
        for k in layer.params:
            layer.params[k][...] = rng.standard_normal(layer.params[k].shape)
            twin.params[k][...] = layer.params[k]
    return [
        (dense, dense_twin, rng.standard_normal((3, 6))),
        (conv, conv_twin, rng.standard_normal((2, 5, 5, 2))),
        (Activation("softmax"), Activation(None), rng.standard_normal((3, 7))),
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["Dense", "Conv2D", "Activation"])
def test_emit_logits_returns_pre_softmax_values_and_takes_their_gradient(which):
    rng = np.random.default_rng(3)
    layer, twin, x = softmax_layers(rng)[which]
    assert layer.activation == "softmax" and twin.activation == "linear"
    assert layer.emit_logits is False and twin.emit_logits is False
    z = twin.forward(x, training=True)
    dy = rng.standard_normal(z.shape)
    dx_twin = twin.backward(dy)

    np.testing.assert_allclose(layer.forward(x, training=True), f_ref("softmax", z), rtol=1e-12)
    layer.emit_logits = True
    np.testing.assert_array_equal(layer.forward(x, training=True), z)  # the logits, untouched
    np.testing.assert_array_equal(layer.backward(dy), dx_twin)  # dy taken as d(loss)/d(logits)
    for k in layer.params:
        np.testing.assert_array_equal(layer.grads[k], twin.grads[k])
    layer.emit_logits = False  # and back: the softmax again
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, f_ref("softmax", z), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), _through_softmax(twin, x, z, dy), rtol=1e-12)


def _through_softmax(twin, x, z, dy):
    """The twin's dx for the gradient ``dy`` at the softmax's output."""
    twin.forward(x, training=True)
    return twin.backward(grad_ref("softmax", z, dy))


def test_emit_logits_leaves_other_activations_on():
    layer = Dense(3, activation="relu")
    layer.emit_logits = True
    y = layer.forward(np.random.default_rng(0).standard_normal((8, 4)))
    assert (y >= 0).all() and (y == 0).any()
    assert Dense(3).activation == "linear" and Conv2D(2, 3).activation == "linear"


# ---- configs and checkpoints ---------------------------------------------------------------------
def test_configs_carry_the_activation_and_rebuild_by_class_name():
    for layer in (Dense(3, activation="tanh"), Conv2D(2, 3, activation="leaky_relu"), Activation("softmax")):
        config = json.loads(json.dumps(layer.get_config()))
        again = LAYER_CLASSES[type(layer).__name__](**config)
        assert again.activation == layer.activation and again.get_config() == layer.get_config()
    # Linear: no key, as older releases wrote it (they read it back); their configs load as linear.
    assert "activation" not in Dense(3).get_config() and "activation" not in Conv2D(2, 3).get_config()
    old = {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "name": "conv2d"}
    assert Conv2D(**old).activation == "linear" and Dense(units=3, name="d").activation == "linear"


def test_maxpooling2d_is_maxpool2d_and_both_names_load():
    assert MaxPooling2D is MaxPool2D
    assert LAYER_CLASSES["MaxPooling2D"] is LAYER_CLASSES["MaxPool2D"] is MaxPool2D
    model = minicnn.Sequential([MaxPooling2D(2), Flatten(), Dense(2)], input_shape=(4, 4, 1), seed=0)
    config = model.get_config()
    assert config["layers"][0]["class"] == "MaxPool2D"  # what older releases read
    config["layers"][0]["class"] = "MaxPooling2D"  # a config naming Keras's class loads too
    assert isinstance(minicnn.Sequential.from_config(config).layers[0], MaxPool2D)


def every_new_layer_model(seed=0):
    norm = Normalization()
    norm.adapt(np.random.default_rng(seed).integers(0, 256, (64, 6, 6, 3)).astype(np.uint8))
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
            Activation("linear"),
            Dense(3),
        ],
        input_shape=(6, 6, 3),
        seed=seed,
    )


def test_checkpoint_round_trip_keeps_every_new_layer(tmp_path):
    model = every_new_layer_model()
    model.save(tmp_path / "m.npz")
    back, _ = minicnn.load_model(tmp_path / "m.npz")
    assert back.get_config() == model.get_config()
    np.testing.assert_array_equal(back.layers[1].mean, model.layers[1].mean)  # the statistics, exactly
    x = np.random.default_rng(1).integers(0, 256, (5, 6, 6, 3)).astype(np.uint8)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


# ---- Rescaling ---------------------------------------------------------------------------------
def test_rescaling(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 2))
    layer = Rescaling(0.25, offset=-1.5)
    assert_grads_ok(check_layer(layer, backend.asarray(x)))
    assert rel_err(layer.forward(backend.asarray(x), training=True), x * 0.25 - 1.5) < REF_TOL
    dy = rng.standard_normal(x.shape)
    assert rel_err(layer.backward(backend.asarray(dy)), 0.25 * dy) < REF_TOL
    layer.forward(backend.asarray(x), training=True)
    assert layer.backward(backend.asarray(dy), need_input_grad=False) is None


def test_rescaling_casts_raw_pixels_and_refuses_non_numbers():
    pixels = np.array([[0, 128, 255]], dtype=np.uint8)
    y = Rescaling(1 / 255).forward(pixels)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0, 128 / 255, 1]], rtol=1e-7)
    layer = Rescaling(2.0)
    layer.build((3,), dtype="float64")
    assert layer.forward(pixels).dtype == np.float64
    for bad in ("1/255", None, True, float("nan"), [1.0]):
        with pytest.raises(ValueError, match="Rescaling: scale must be"):
            Rescaling(bad)


# ---- Normalization ---------------------------------------------------------------------------------
def test_normalization_given_statistics(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 3, 3)) * 4 + 2
    mean, variance = [1.0, -2.0, 0.5], [4.0, 0.0, 0.25]  # variance 0: divided by Keras's epsilon
    layer = Normalization(mean=mean, variance=variance)
    assert_grads_ok(check_layer(layer, backend.asarray(x)))
    d = np.maximum(np.sqrt(variance), 1e-7)
    assert rel_err(layer.forward(backend.asarray(x), training=True), (x - mean) / d) < REF_TOL
    dy = rng.standard_normal(x.shape)
    assert rel_err(layer.backward(backend.asarray(dy)), dy / d) < REF_TOL


@pytest.mark.parametrize(
    "axis, mean_shape",
    [(-1, (3,)), (None, ()), ((1, 2), (4, 5)), ((-3, -1), (4, 3)), ((1, 2, 3), (4, 5, 3)), (2, (5,))],
)
def test_normalization_axes_and_adapt(backend, axis, mean_shape):
    rng = np.random.default_rng(6)
    data = rng.standard_normal((20, 4, 5, 3)) * rng.uniform(0.5, 3, (1, 4, 5, 3)) + rng.uniform(-2, 2, (1, 4, 5, 3))
    layer = Normalization(axis=axis)
    layer.adapt(backend.asarray(data))
    kept = () if axis is None else tuple(a % 4 for a in np.atleast_1d(axis))
    reduce = tuple(a for a in range(4) if a not in kept)
    np.testing.assert_allclose(layer.mean, data.mean(axis=reduce), rtol=1e-12)
    np.testing.assert_allclose(layer.variance, data.var(axis=reduce), rtol=1e-12)
    assert layer.mean.shape == mean_shape
    y = host(layer.forward(backend.asarray(data)))
    np.testing.assert_allclose(y.mean(axis=reduce), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=reduce), 1, rtol=1e-10)
    assert_grads_ok(check_layer(layer, backend.asarray(data[:2])))


def test_adapt_chunk_by_chunk_and_from_batches(monkeypatch):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (50, 4, 4, 3)).astype(np.uint8)
    whole = Normalization()
    whole.adapt(data)
    np.testing.assert_allclose(whole.mean, data.reshape(-1, 3).astype(np.float64).mean(0), rtol=1e-13)
    np.testing.assert_allclose(whole.variance, data.reshape(-1, 3).astype(np.float64).var(0), rtol=1e-12)
    monkeypatch.setattr(normalization_module, "_ADAPT_CHUNK", 48)  # one image at a time
    chunked = Normalization()
    chunked.adapt(data)
    batches = Normalization()
    batches.adapt((data[i : i + 7], np.zeros(len(data[i : i + 7]))) for i in range(0, 50, 7))  # (x, y) pairs
    for other in (chunked, batches):
        np.testing.assert_allclose(other.mean, whole.mean, rtol=1e-13)
        np.testing.assert_allclose(other.variance, whole.variance, rtol=1e-12)


def test_normalization_before_adapt_is_the_identity_and_uint8_is_cast():
    layer = Normalization()
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    assert layer.get_config() == {"axis": -1, "mean": None, "variance": None, "name": None}


def test_normalization_refusals():
    with pytest.raises(ValueError, match="give both mean and variance or neither"):
        Normalization(mean=[1.0])
    with pytest.raises(ValueError, match="one shape"):
        Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="variance must be >= 0"):
        Normalization(mean=1.0, variance=-1.0)
    for bad in ("1.5", [1.0, "2"], [[1.0], [1.0, 2.0]], True, {"mean": 1.0}):
        with pytest.raises(ValueError, match="mean must be a number or nested lists of numbers"):
            Normalization(mean=bad, variance=1.0)
    with pytest.raises(ValueError, match="mean must be finite"):
        Normalization(mean=float("inf"), variance=1.0)
    with pytest.raises(ValueError, match="axis must be an int"):
        Normalization(axis="channels")
    with pytest.raises(ValueError, match="do not broadcast to the sizes \\(3,\\)"):
        Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0]).build((4, 4, 3))
    with pytest.raises(ValueError, match="axis 0 does not fit"):
        Normalization(axis=0).build((4, 4, 3))
    built = Normalization()
    built.build((4, 4, 3))
    with pytest.raises(ValueError, match="adapt got a batch of shape \\(2, 4, 4, 2\\), expected \\(N, 4, 4, 3\\)"):
        built.adapt(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="adapt got no data"):
        Normalization().adapt([])


# ---- raw pixels into a model ---------------------------------------------------------------------
def test_uint8_images_go_straight_into_a_model_that_rescales(backend):
    model = minicnn.Sequential(
        [Rescaling(1 / 255), Conv2D(3, 3, activation="relu"), Flatten(), Dense(2)], input_shape=(5, 5, 3), seed=0
    )
    assert takes_raw_pixels(model) and takes_raw_pixels(every_new_layer_model())
    assert not takes_raw_pixels(minicnn.models.cifar10_cnn(seed=0))
    x = np.random.default_rng(8).integers(0, 256, (6, 5, 5, 3)).astype(np.uint8)
    y = np.array([0, 1, 0, 1, 1, 0])
    as_float = model.predict(x.astype(np.float32))
    np.testing.assert_array_equal(model.predict(x), as_float)
    with minicnn.no_grad():
        np.testing.assert_allclose(
            host(model.forward(backend.asarray(x))), host(model.forward(backend.asarray(x.astype(np.float32))))
        )
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}
    history = model.fit(x, y, optimizer=minicnn.optim.Adam(model), epochs=1, batch_size=3, verbose=0)
    assert np.isfinite(history["loss"][0])


# ---- against PyTorch (float64, autograd) -----------------------------------------------------------
def _torch():
    return pytest.importorskip("torch", reason="PyTorch not installed")


def _torch_activation(torch, name, z):
    functions = {
        "linear": lambda t: t,
        "relu": torch.relu,
        "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.2),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda t: torch.softmax(t, dim=-1),
    }
    return functions[name](z)


def _torch_check(torch, layer, x, torch_forward, params=()):
    """minicnn's forward and backward against PyTorch's for the scalar ``sum(y * dy)``."""
    rng = np.random.default_rng(9)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tparams = [torch.tensor(host(layer.params[k]), requires_grad=True) for k in params]
    ty = torch_forward(tx, *tparams)
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-13)
    for k, t in zip(params, tparams):
        np.testing.assert_allclose(layer.grads[k], t.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_against_pytorch_activation_dense_conv(name):
    torch = _torch()
    rng = np.random.default_rng(10)
    _torch_check(torch, Activation(name), away_from_zero(rng, (3, 7)), lambda t: _torch_activation(torch, name, t))
    dense = Dense(4, activation=name)
    dense.build((6,), dtype="float64", rng=rng)
    _torch_check(
        torch,
        dense,
        rng.standard_normal((3, 6)),
        lambda t, W, b: _torch_activation(torch, name, t @ W + b),
        params=("W", "b"),
    )
    conv = Conv2D(3, 3, strides=2, padding="same", activation=name)
    conv.build((6, 6, 2), dtype="float64", rng=rng)

    def conv_forward(t, W, b):  # NHWC and (kh, kw, C, F) as PyTorch's NCHW and (F, C, kh, kw), padded as minicnn
        t = torch.nn.functional.pad(t.permute(0, 3, 1, 2), conv.pads[2:] + conv.pads[:2])
        z = torch.nn.functional.conv2d(t, W.permute(3, 2, 0, 1), b, stride=2).permute(0, 2, 3, 1)
        return _torch_activation(torch, name, z)

    _torch_check(torch, conv, rng.standard_normal((2, 6, 6, 2)), conv_forward, params=("W", "b"))


def test_against_pytorch_rescaling_and_normalization():
    torch = _torch()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 4, 2)) * 5
    _torch_check(torch, Rescaling(0.5, 0.25), x, lambda t: t * 0.5 + 0.25)
    mean, variance = np.array([1.0, -1.0]), np.array([2.0, 0.5])
    _torch_check(
        torch,
        Normalization(mean=mean.tolist(), variance=variance.tolist()),
        x,
        lambda t: (t - torch.tensor(mean)) / torch.sqrt(torch.tensor(variance)),
    )
