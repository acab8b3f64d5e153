"""Every layer against its explicit loops (minicnn.layers.naive, forward and backward) and numerical derivatives.

Gradient checks run in float64 with shapes, strides, paddings and pool sizes drawn by
hypothesis. Inputs stay where the function is differentiable: max-pool values are distinct
with gaps far above the finite-difference step, (Leaky)ReLU inputs are away from 0, and
dropout's mask is fixed by its seed.
"""

import numpy as np
import pytest
from conftest import host
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn.gradcheck import check_layer, check_loss
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU, naive
from minicnn.layers.im2col import padding_amounts
from minicnn.losses import SoftmaxCrossEntropy

GRAD_TOL = 1e-6  # max relative error against central differences
REF_TOL = 1e-9  # max relative error against the loop reference
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def rel_err(a, b):
    a, b = host(a), host(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def distinct_values(rng, shape, gap=1e-2):
    """Values that are pairwise at least ``gap`` apart, shuffled (no max-pool ties)."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * gap - 0.5 * gap * np.prod(shape) / 2


def away_from_zero(rng, shape, margin=0.05):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x) + np.sign(x) * margin


def assert_grads_ok(errors):
    worst = max(errors.values())
    assert worst < GRAD_TOL, f"gradient check failed: {errors}"


conv_configs = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "h": st.integers(3, 8),
        "w": st.integers(3, 8),
        "c": st.integers(1, 3),
        "f": st.integers(1, 4),
        "k": st.tuples(st.integers(1, 4), st.integers(1, 4)),
        "s": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "pad": st.sampled_from(["same", "valid", 0, 1, 2]),
        "seed": st.integers(0, 2**16),
    }
)


def _conv_case(cfg):
    (kh, kw), (sh, sw) = cfg["k"], cfg["s"]
    pt, pb = padding_amounts(cfg["pad"], cfg["h"], kh, sh)
    pl, pr = padding_amounts(cfg["pad"], cfg["w"], kw, sw)
    assume(cfg["h"] + pt + pb >= kh and cfg["w"] + pl + pr >= kw)
    rng = np.random.default_rng(cfg["seed"])
    layer = Conv2D(cfg["f"], cfg["k"], strides=cfg["s"], padding=cfg["pad"])
    layer.build((cfg["h"], cfg["w"], cfg["c"]), dtype="float64", rng=rng)
    layer.params["b"][...] = minicnn.get_backend().asarray(rng.standard_normal(cfg["f"]))
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"]))
    return layer, x, (pt, pb, pl, pr), rng


# -- Conv2D -----------------------------------------------------------------------------
@FAST
@given(cfg=conv_configs)
def test_conv_gradients(backend, cfg):
    layer, x, _, _ = _conv_case(cfg)
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=cfg["seed"]))


@FAST
@given(cfg=conv_configs)
def test_conv_matches_loop_reference(backend, cfg):
    layer, x, pads, rng = _conv_case(cfg)
    W, b = host(layer.params["W"]), host(layer.params["b"])
    y = layer.forward(backend.asarray(x))
    y_ref = naive.conv_forward(x, W, b, cfg["s"], pads)
    assert y.shape == y_ref.shape
    assert rel_err(y, y_ref) < REF_TOL
    dy = rng.standard_normal(y_ref.shape)
    dx = layer.backward(backend.asarray(dy), need_input_grad=True)
    dx_ref, dW_ref, db_ref = naive.conv_backward(x, W, dy, cfg["s"], pads)
    assert rel_err(dx, dx_ref) < REF_TOL
    assert rel_err(layer.grads["W"], dW_ref) < REF_TOL
    assert rel_err(layer.grads["b"], db_ref) < REF_TOL


def test_conv_same_padding_keeps_size_and_valid_shrinks():
    assert Conv2D(8, 3, padding="same").build((32, 32, 3)) == (32, 32, 8)
    assert Conv2D(8, 3, padding="valid").build((32, 32, 3)) == (30, 30, 8)
    assert Conv2D(8, 3, strides=2, padding="same").build((31, 31, 3)) == (16, 16, 8)  # ceil(31 / 2)
    assert Conv2D(8, (5, 3), padding=1).build((10, 10, 3)) == (8, 10, 8)


# -- MaxPool2D --------------------------------------------------------------------------
pool_configs = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "h": st.integers(2, 8),
        "w": st.integers(2, 8),
        "c": st.integers(1, 3),
        "p": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "s": st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),  # None: = pool (no overlap)
        "seed": st.integers(0, 2**16),
    }
)


@FAST
@given(cfg=pool_configs)
def test_maxpool_gradients_and_reference(backend, cfg):
    assume(cfg["p"][0] <= cfg["h"] and cfg["p"][1] <= cfg["w"])
    rng = np.random.default_rng(cfg["seed"])
    x = distinct_values(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]))
    layer = MaxPool2D(cfg["p"], strides=cfg["s"])
    layer.build(x.shape[1:], dtype="float64")
    # Gaps of 1e-2 against a step of 1e-6: no perturbation can change a window's winner.
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=cfg["seed"]))
    y = layer.forward(backend.asarray(x))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(backend.asarray(dy))
    y_ref = naive.maxpool_forward(x, layer.pool_size, layer.strides)
    dx_ref = naive.maxpool_backward(x, dy, layer.pool_size, layer.strides)
    assert rel_err(y, y_ref) < REF_TOL
    assert rel_err(dx, dx_ref) < REF_TOL


def test_maxpool_tie_sends_gradient_to_first_maximum_only():
    x = np.zeros((1, 2, 2, 1))
    layer = MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    assert dx.sum() == 1 and dx[0, 0, 0, 0] == 1


# -- element-wise layers ------------------------------------------------------------------
shapes = st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple)


@FAST
@given(shape=shapes, alpha=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_leaky_relu(backend, shape, alpha, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    layer = LeakyReLU(alpha)
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=seed))
    y = layer.forward(backend.asarray(x))
    assert rel_err(y, np.where(x > 0, x, alpha * x)) < REF_TOL
    dx = layer.backward(backend.asarray(np.ones(shape)))
    assert rel_err(dx, np.where(x > 0, 1.0, alpha)) < REF_TOL


@FAST
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_relu(backend, shape, seed):
    x = away_from_zero(np.random.default_rng(seed), shape)
    layer = ReLU()
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=seed))
    assert rel_err(layer.forward(backend.asarray(x)), np.maximum(x, 0)) < REF_TOL


@FAST
@given(shape=shapes, rate=st.floats(0.0, 0.9), seed=st.integers(0, 2**16))
def test_dropout_with_fixed_mask(backend, shape, rate, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    layer = Dropout(rate, seed=seed)
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=seed, training=True))
    layer.reseed(seed)
    y = host(layer.forward(backend.asarray(x), training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-12)
    # The gradient flows exactly where the mask kept the unit.
    dx = host(layer.backward(backend.asarray(np.ones(shape))))
    np.testing.assert_allclose(dx, kept / (1 - rate), rtol=1e-12)


def test_dropout_is_identity_at_inference_and_drops_about_rate_in_training():
    x = np.ones((100, 100))
    layer = Dropout(0.3, seed=0)
    assert layer.forward(x) is x
    y = layer.forward(x, training=True)
    assert abs((y == 0).mean() - 0.3) < 0.02
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation


def test_dropout_seed_repeats_masks():
    x = np.ones((4, 50))
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert not np.array_equal(a.forward(x, training=True), Dropout(0.5, seed=8).forward(x, training=True))


@FAST
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_flatten(backend, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    layer = Flatten()
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=seed))
    assert host(layer.forward(backend.asarray(x))).shape == (shape[0], int(np.prod(shape[1:])))


@FAST
@given(n=st.integers(1, 4), d=st.integers(1, 12), u=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_dense(backend, n, d, u, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(u)
    layer.build((d,), dtype="float64", rng=rng)
    layer.params["b"][...] = backend.asarray(rng.standard_normal(u))
    x = rng.standard_normal((n, d))
    assert_grads_ok(check_layer(layer, backend.asarray(x), seed=seed))
    W, b = host(layer.params["W"]), host(layer.params["b"])
    assert rel_err(layer.forward(backend.asarray(x)), naive.dense_forward(x, W, b)) < REF_TOL
    dy = rng.standard_normal((n, u))
    dx = layer.backward(backend.asarray(dy))
    dx_ref, dW_ref, db_ref = naive.dense_backward(x, W, dy)
    assert rel_err(dx, dx_ref) < REF_TOL
    assert rel_err(layer.grads["W"], dW_ref) < REF_TOL
    assert rel_err(layer.grads["b"], db_ref) < REF_TOL


# -- the loss -----------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 6), k=st.integers(2, 10), scale=st.floats(0.1, 20), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy(backend, n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    loss = SoftmaxCrossEntropy()
    errors = check_loss(loss, backend.asarray(logits), backend.asarray(labels), seed=seed)
    assert errors["logits"] < GRAD_TOL, errors
    value = float(loss.forward(backend.asarray(logits), backend.asarray(labels)))
    grad = loss.backward()
    ref_value, ref_grad = naive.softmax_cross_entropy(logits, labels)
    assert abs(value - ref_value) / abs(ref_value) < REF_TOL
    assert rel_err(grad, ref_grad) < REF_TOL


@FAST
@given(n=st.integers(1, 6), k=st.integers(2, 10), eps=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_with_label_smoothing(backend, n, k, eps, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * 3
    labels = rng.integers(0, k, n)
    loss = SoftmaxCrossEntropy(label_smoothing=eps)
    errors = check_loss(loss, backend.asarray(logits), backend.asarray(labels), seed=seed)
    assert errors["logits"] < GRAD_TOL, errors
    # Against the definition: cross-entropy with the target (1 - eps) * onehot + eps / K.
    target = np.full((n, k), eps / k)
    target[np.arange(n), labels] += 1 - eps
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    value = float(loss.forward(backend.asarray(logits), backend.asarray(labels)))
    assert value == pytest.approx(-(target * logp).sum(axis=1).mean(), rel=REF_TOL)
    assert rel_err(loss.backward(), (np.exp(logp) - target) / n) < REF_TOL


def test_label_smoothing_zero_is_the_plain_loss_and_bad_values_are_refused():
    logits = np.random.default_rng(1).standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    plain, zero = SoftmaxCrossEntropy(), SoftmaxCrossEntropy(label_smoothing=0.0)
    assert float(plain.forward(logits, labels)) == float(zero.forward(logits, labels))
    np.testing.assert_array_equal(plain.backward(), zero.backward())
    for bad in (-0.1, 1.5, "0.1", None):
        with pytest.raises(ValueError, match="label_smoothing must be a number in \\[0, 1\\]"):
            SoftmaxCrossEntropy(label_smoothing=bad)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    # exp(1e30) overflows any float; the shifted form never computes it.
    logits = np.array([[1e4, -1e4, 0.0], [-1e30, 1e30, 0.0]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    value = float(loss.forward(logits, np.array([0, 0])))
    assert value == pytest.approx(1e30, rel=1e-6)  # (0 + 2e30) / 2: the second is confidently wrong
    grad = loss.backward()
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)


# -- dtype --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_layer_preserves_dtype(backend, dtype):
    model = minicnn.models.cifar10_cnn(seed=0, dtype=dtype)
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(dtype))
    for layer in model.layers:
        x = layer.forward(x, training=True)
        assert x.dtype == dtype, f"{layer.name} returned {x.dtype}"
    dy = backend.asarray(np.ones((2, 10), dtype=dtype))
    for layer in reversed(model.layers):
        dy = layer.backward(dy, need_input_grad=True)
        assert dy.dtype == dtype, f"{layer.name} backward returned {dy.dtype}"
        for name, g in layer.grads.items():
            assert g.dtype == dtype and g.shape == layer.params[name].shape


def test_standalone_layer_builds_from_first_input_and_returns_dx():
    layer = Conv2D(2, 3)
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 1))
    y = layer.forward(x)
    assert y.shape == (1, 3, 3, 2) and layer.params["W"].dtype == np.float64
    assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("make", [lambda: Conv2D(2, 3), lambda: Dense(3)])
def test_backward_skips_dx_only_when_asked(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1) if isinstance(layer, Conv2D) else (2, 4))
    y = layer.forward(x, training=True)
    assert layer.backward(np.ones_like(y)).shape == x.shape  # standalone default: dx
    layer.forward(x, training=True)
    assert layer.backward(np.ones_like(y), need_input_grad=False) is None
    assert all(g is not None for g in layer.grads.values())  # the weights still get theirs
