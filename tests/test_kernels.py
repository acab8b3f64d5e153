"""The two kernel paths (minicnn.kernels): the fast one agrees with the textbook one on every
layer and both backends (float64, 1e-12 relative), the textbook one passes the gradient checks
on its own, and one switch moves a whole model from one to the other."""

import numpy as np
import pytest
from conftest import host
from hypothesis import assume, given
from hypothesis import strategies as st
from test_layers import FAST, GRAD_TOL, _conv_case, assert_grads_ok, away_from_zero, conv_configs, distinct_values

import minicnn
from minicnn import kernels
from minicnn.gradcheck import check_layer
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from minicnn.layers.im2col import col2im, im2col

AGREE_TOL = 1e-12  # max relative difference between the fast and the reference path


def rel_diff(a, b):
    a, b = host(a), host(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) if a.size else 0.0


def run(layer, x, dy, path, training=False):
    """Forward (trained and under no_grad) and backward of ``layer`` on kernel path ``path``."""
    with minicnn.use_kernels(path):
        if isinstance(layer, Dropout):
            layer.reseed(layer.seed)
        with minicnn.no_grad():
            y_inference = host(layer.forward(x, training=False))
        if isinstance(layer, Dropout):
            layer.reseed(layer.seed)
        y = host(layer.forward(x, training=training))
        dx = host(layer.backward(dy, need_input_grad=True))
        grads = {k: host(v).copy() for k, v in layer.grads.items()}
    return y_inference, y, dx, grads


def assert_paths_agree(layer, x, rng, training=False, backend=None):
    xb = backend.asarray(x)
    with minicnn.no_grad():
        shape = layer.forward(xb).shape
    dy = backend.asarray(rng.standard_normal(shape))
    fast, ref = run(layer, xb, dy, "fast", training), run(layer, xb, dy, "reference", training)
    for what, a, b in zip(("inference y", "y", "dx"), fast[:3], ref[:3]):
        assert a.shape == b.shape and rel_diff(a, b) <= AGREE_TOL, f"{type(layer).__name__} {what}"
    for name in ref[3]:
        assert rel_diff(fast[3][name], ref[3][name]) <= AGREE_TOL, f"{type(layer).__name__} d{name}"


@FAST
@given(cfg=conv_configs)
def test_conv_paths_agree(backend, cfg):
    layer, x, _, rng = _conv_case(cfg)
    assert_paths_agree(layer, x, rng, backend=backend)


@FAST
@given(cfg=conv_configs)
def test_the_shifted_kernels_equal_the_patch_matrix_on_any_stride1_shape(backend, cfg):
    """kernels.conv on its own, whatever shifts_pay would choose, on the shared-padding grid:
    y = im2col(x) @ W + b, dW = im2col(x).T @ dy, dx = col2im(dy @ W.T) cut to x."""
    cfg = dict(cfg, s=(1, 1))
    layer, x, pads, rng = _conv_case(cfg)
    (pt, pb, pl, pr), (kh, kw) = pads, cfg["k"]
    x = backend.asarray(x)
    x_pad = backend.asarray(np.pad(host(x), ((0, 0), (pt, pb), (pl, pr), (0, 0))))
    W, b = layer.params["W"], layer.params["b"]
    ho, wo, f = layer.output_shape
    cols = im2col(x_pad, kh, kw, 1, 1, ho, wo)
    grid = kernels.conv.Layout(x.shape, (kh, kw), pads)
    x_grid = grid.place(x)
    y = kernels.conv.conv_stride1(x_grid, W, b, grid)
    assert y.shape == (len(x), ho, wo, f)
    assert rel_diff(y.reshape(-1, f), cols @ W.reshape(-1, f) + b) <= AGREE_TOL
    dy = backend.asarray(rng.standard_normal(y.shape))
    dy_grid = grid.place(dy)
    dW = kernels.conv.conv_dw_stride1(x_grid, dy_grid, grid)
    assert dW.shape == W.shape and rel_diff(dW.reshape(-1, f), cols.T @ dy.reshape(-1, f)) <= AGREE_TOL
    dx_pad = col2im(dy.reshape(-1, f) @ W.reshape(-1, f).T, x_pad.shape, kh, kw, 1, 1, ho, wo)
    dx = kernels.conv.conv_dx_stride1(dy_grid, W, grid)
    assert dx.shape == x.shape and rel_diff(dx, dx_pad[:, pt : pt + x.shape[1], pl : pl + x.shape[2]]) <= AGREE_TOL


@pytest.mark.parametrize("shape, padding", [((2, 32, 32, 16), "same"), ((1, 48, 47, 16), "valid")])
def test_conv_paths_agree_where_the_shifted_forward_is_chosen(backend, shape, padding):
    rng = np.random.default_rng(3)
    layer = Conv2D(5, 3, padding=padding)
    layer.build(shape[1:], dtype="float64", rng=rng)
    layer.params["b"][...] = backend.asarray(rng.standard_normal(5))
    assert kernels.conv.shifts_pay(kernels.conv.Layout(shape, (3, 3), layer.pads), shape[3], 8, training=True)
    small = kernels.conv.Layout((2, 8, 8, 16), (3, 3), (1, 1, 1, 1))  # 8x8: a grid 41% larger than the output
    large = kernels.conv.Layout((128, 32, 32, 16), (3, 3), (1, 1, 1, 1))  # 9 MiB of float32
    assert not kernels.conv.shifts_pay(small, 16, 8, training=False)
    assert kernels.conv.shifts_pay(large, 16, 4, training=False) and not kernels.conv.shifts_pay(large, 16, 4, True)
    assert_paths_agree(layer, rng.standard_normal(shape), rng, backend=backend)


pool_cases = st.tuples(
    st.integers(1, 3), st.integers(2, 8), st.integers(2, 8), st.integers(1, 3),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    st.integers(0, 2**16),
)  # fmt: skip


@FAST
@given(case=pool_cases)
def test_maxpool_paths_agree(backend, case):
    n, h, w, c, pool, strides, seed = case
    assume(pool[0] <= h and pool[1] <= w)
    rng = np.random.default_rng(seed)
    layer = MaxPool2D(pool, strides=strides)
    layer.build((h, w, c), dtype="float64")
    assert_paths_agree(layer, distinct_values(rng, (n, h, w, c)), rng, backend=backend)


shapes = st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple)


@FAST
@given(shape=shapes, alpha=st.floats(0.0, 1.5), seed=st.integers(0, 2**16))
def test_leaky_relu_paths_agree(backend, shape, alpha, seed):
    rng = np.random.default_rng(seed)
    layer = LeakyReLU(alpha)
    assert_paths_agree(layer, away_from_zero(rng, shape), rng, backend=backend)


@FAST
@given(n=st.integers(1, 4), d=st.integers(1, 12), u=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_dense_paths_agree(backend, n, d, u, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(u)
    layer.build((d,), dtype="float64", rng=rng)
    assert_paths_agree(layer, rng.standard_normal((n, d)), rng, backend=backend)


@pytest.mark.parametrize("make", [ReLU, Flatten, lambda: Dropout(0.4, seed=3)])
def test_layers_without_fast_kernels_agree_too(backend, make):
    rng = np.random.default_rng(0)
    assert_paths_agree(make(), away_from_zero(rng, (3, 4, 5, 2)), rng, training=True, backend=backend)


# -- the reference path on its own: gradient checks ---------------------------------------
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: Conv2D(3, 3, padding="same"), (2, 5, 5, 2)),  # stride 1: fast path bypassed
        (lambda: Conv2D(2, (2, 3), strides=(2, 1), padding=1), (2, 6, 5, 2)),
        (lambda: MaxPool2D(2), (2, 4, 6, 2)),  # tiling windows
        (lambda: MaxPool2D(3, strides=2), (1, 7, 7, 2)),
        (lambda: LeakyReLU(0.1), (2, 3, 4)),
        (ReLU, (2, 3, 4)),
        (Flatten, (2, 3, 4)),
        (lambda: Dense(4), (3, 6)),
        (lambda: Dropout(0.5, seed=1), (3, 8)),
    ],
)
def test_reference_path_passes_the_gradient_checks(backend, make, shape):
    rng = np.random.default_rng(7)
    layer = make()
    x = distinct_values(rng, shape) if isinstance(layer, MaxPool2D) else away_from_zero(rng, shape)
    layer.build(shape[1:], dtype="float64", rng=rng)
    if "b" in layer.params:
        layer.params["b"][...] = backend.asarray(rng.standard_normal(layer.params["b"].shape))
    with minicnn.use_kernels("reference"):
        errors = check_layer(layer, backend.asarray(x), seed=1, training=isinstance(layer, Dropout))
    assert_grads_ok(errors)
    assert max(errors.values()) < GRAD_TOL


# -- the switch ---------------------------------------------------------------------------
def test_the_switch_moves_a_whole_model_and_restores_the_choice(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fast kernel ran on the reference path")

    assert minicnn.get_kernels() == "fast"
    model = minicnn.models.cifar10_cnn(seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3))
    logits = {}
    for path in ("fast", "reference"):
        with minicnn.use_kernels(path):
            if path == "reference":
                monkeypatch.setattr(kernels.conv, "conv_dx_stride1", refuse)
                monkeypatch.setattr(kernels.conv, "conv_stride1", refuse)
                monkeypatch.setattr(kernels.conv, "conv_dw_stride1", refuse)
                monkeypatch.setattr(kernels.activation, "leaky_relu", refuse)
                monkeypatch.setattr(kernels.pool, "maxpool", refuse)
                monkeypatch.setattr(kernels.pool, "maxpool_dx_tiled", refuse)
            logits[path] = model.forward(x, training=False)
            model.backward(np.ones_like(logits[path]))
            logits[path + " dW"] = model.layers[0].grads["W"].copy()
    assert minicnn.get_kernels() == "fast"
    assert rel_diff(logits["fast"], logits["reference"]) <= AGREE_TOL
    assert rel_diff(logits["fast dW"], logits["reference dW"]) <= AGREE_TOL
    with pytest.raises(ValueError, match=r"kernels must be one of \('fast', 'reference'\), got 'slow'"):
        minicnn.set_kernels("slow")
    assert minicnn.set_kernels("reference") == "fast" and minicnn.set_kernels("fast") == "reference"
