"""Optimizers against updates computed by hand."""

import numpy as np
import pytest

from minicnn import Sequential
from minicnn.layers import Dense
from minicnn.optim import SGD, Adam


def one_param_model(w0, g):
    model = Sequential([Dense(2)], input_shape=(2,), dtype="float64")
    layer = model.layers[0]
    layer.params["W"][...] = w0
    layer.params["b"][...] = 0
    layer.grads["W"] = np.array(g, dtype=np.float64)
    layer.grads["b"] = np.zeros(2)
    return model, layer


W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
G = np.array([[0.1, -0.2], [0.3, 0.0]])


def test_plain_sgd():
    model, layer = one_param_model(W0, G)
    SGD(model, lr=0.5).step()
    np.testing.assert_allclose(layer.params["W"], W0 - 0.5 * G)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_weight_decay_two_steps(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    model, layer = one_param_model(W0, G)
    opt = SGD(model, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd)
    w, v = W0.copy(), np.zeros_like(W0)
    for _ in range(2):
        opt.step()
        g = G + wd * w
        v = mu * v + g
        w = w - lr * (g + mu * v if nesterov else v)
        np.testing.assert_allclose(layer.params["W"], w, rtol=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_three_steps(wd):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    model, layer = one_param_model(W0, G)
    opt = Adam(model, lr=lr, weight_decay=wd)
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t in range(1, 4):
        opt.step()
        m = b1 * m + (1 - b1) * G
        v = b2 * v + (1 - b2) * G**2
        w = w - lr * wd * w
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(layer.params["W"], w, rtol=1e-12)


def test_state_dict_round_trip_continues_identically():
    model_a, layer_a = one_param_model(W0, G)
    opt_a = Adam(model_a, lr=0.01)
    opt_a.step()
    state = opt_a.state_dict()
    assert all(isinstance(v, (int, float, str, bool, np.ndarray)) for v in state.values())
    model_b, layer_b = one_param_model(layer_a.params["W"].copy(), G)
    opt_b = Adam(model_b, lr=0.5)
    opt_b.load_state_dict(state)
    opt_a.step()
    opt_b.step()
    np.testing.assert_array_equal(layer_a.params["W"], layer_b.params["W"])


def test_bad_hyperparameters_are_refused():
    model, _ = one_param_model(W0, G)
    with pytest.raises(ValueError, match="lr"):
        Adam(model, lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        SGD(model, momentum=1.5)


def test_warmup_cosine_schedule_shape():
    from minicnn.schedules import exponential, warmup_cosine

    s = warmup_cosine(2e-3, epochs=10, warmup=1.0)
    assert s(0.0) < 1e-5 and abs(s(0.5) - 1e-3) < 1e-5  # linear warm-up
    assert abs(s(1.0) - 2e-3) < 1e-12 and abs(s(5.5) - 1e-3) < 1e-12  # peak, then half-way down the cosine
    assert s(10.0) == 0.0 and all(s(t) >= s(t + 0.25) for t in np.arange(1, 9.75, 0.25))
    assert exponential(5e-3, 0.9)(2.7) == 5e-3 * 0.9**2


def test_linear_decay_schedule_shape():
    from minicnn.schedules import linear_decay

    s = linear_decay(3e-3, epochs=10)
    assert s(0.0) == 3e-3 and s(5.0) == pytest.approx(1.5e-3) and s(10.0) == 0.0 and s(11.0) == 0.0
    w = linear_decay(3e-3, epochs=10, warmup=2.0)
    assert w(0.0) < 1e-5 and w(1.0) == pytest.approx(1.5e-3, rel=1e-3) and w(2.0) == 3e-3
    assert w(6.0) == pytest.approx(1.5e-3)
    with pytest.raises(ValueError, match="warmup < epochs"):
        linear_decay(1e-3, epochs=5, warmup=5)


def test_one_cycle_schedule_matches_pytorchs_endpoints():
    from minicnn.schedules import one_cycle

    s = one_cycle(1e-2, epochs=10, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    assert s(0.0) == pytest.approx(1e-2 / 25) and s(3.0) == pytest.approx(1e-2)
    assert s(10.0) == pytest.approx(1e-2 / 25 / 1e4)
    ts = np.arange(0, 10.01, 0.25)
    rising, falling = [s(t) for t in ts if t <= 3], [s(t) for t in ts if t >= 3]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    with pytest.raises(ValueError, match="pct_start"):
        one_cycle(1e-2, epochs=10, pct_start=1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: Adam(m, lr=1e-2, weight_decay=0.1),
        lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda m: SGD(m, lr=0.1),
    ],
)
def test_step_in_blocks_on_threads_gives_the_same_bits(make):
    """parallel.ShardedOptimizer cuts large parameters into row blocks updated at once: same bits as step()."""
    from minicnn import parallel

    rng = np.random.default_rng(0)
    models = [Sequential([Dense(300), Dense(3)], input_shape=(1000,), seed=1) for _ in range(2)]
    opts = [make(m) for m in models]
    assert len(parallel.row_blocks(models[0].layers[0].params["W"])) == 300_000 // parallel._BLOCK > 1  # really split
    calls = []
    with parallel.ShardedModel(models[1], threads=3) as sharded:
        threaded = parallel.ShardedOptimizer(opts[1], sharded)
        call = sharded.call
        sharded.call = lambda tasks: calls.append(len(tasks)) or call(tasks)
        for _ in range(3):
            for layer, twin in zip(*(m.layers for m in models)):
                for name, p in layer.params.items():
                    layer.grads[name] = np.asarray(rng.standard_normal(p.shape), p.dtype)
                    twin.grads[name] = layer.grads[name].copy()
            opts[0].step()
            threaded.step()
    assert calls and calls[0] > 4  # blocks of W plus one task per small parameter
    for a, b in zip(models[0].layers, models[1].layers):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    assert opts[0].state_dict().keys() == opts[1].state_dict().keys()
