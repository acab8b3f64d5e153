"""BatchNormalization, AveragePooling2D, GlobalAveragePooling2D and Residual: gradient checks in
float64, the loop references of minicnn.layers.naive, Keras's moving statistics, checkpoints
(moving statistics included, a resume bit for bit), threads, Keras files, PyTorch where installed."""

import numpy as np
import pytest
from conftest import host

import minicnn
from minicnn import parallel
from minicnn.gradcheck import check_layer
from minicnn.layers import (
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    ReLU,
    Residual,
    naive,
)
from minicnn.optim import Adam

GRAD_TOL = 1e-7  # max relative error reported by check_layer
REF_TOL = 1e-12  # against the loop references


def rel_err(a, b):
    a, b = host(a), host(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def down_block():
    """Stride 2 and more channels: the shortcut needs a projection."""
    block = [Conv2D(6, 3, strides=2, padding="same"), BatchNormalization(), ReLU(), Conv2D(6, 3, padding="same")]
    return Residual(block)


def built_bn(shape, rng, **options):
    layer = BatchNormalization(**options)
    layer.build(shape, dtype="float64")
    backend = minicnn.get_backend()
    for name in layer.params:  # away from gamma = 1, beta = 0, so both matter
        layer.params[name][...] = backend.asarray(rng.standard_normal(layer.params[name].shape))
    layer.state["moving_mean"][...] = backend.asarray(rng.standard_normal(shape[-1]))
    layer.state["moving_variance"][...] = backend.asarray(rng.uniform(0.5, 2, shape[-1]))
    return layer


# -- BatchNormalization -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 4, 3), (6,)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("options", [{}, {"center": False}, {"scale": False}])
def test_batchnorm_gradients(backend, shape, training, options):
    rng = np.random.default_rng(1)
    layer = built_bn(shape, rng, **options)
    x = backend.asarray(rng.standard_normal((4, *shape)) * 3 + 1)
    errors = check_layer(layer, x, seed=7, training=training)
    assert set(errors) == {"x"} | set(layer.params) and max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("shape", [(3, 5, 2), (4,)])
def test_batchnorm_matches_its_graph_node_by_node(shape):
    rng = np.random.default_rng(2)
    layer = built_bn(shape, rng)
    x = rng.standard_normal((5, *shape))
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    y_ref, cache = naive.batchnorm_forward(x, layer.params["gamma"], layer.params["beta"], layer.epsilon)
    dx_ref, dgamma_ref, dbeta_ref = naive.batchnorm_backward(dy, cache)
    assert rel_err(y, y_ref) < REF_TOL and rel_err(dx, dx_ref) < REF_TOL
    assert rel_err(layer.grads["gamma"], dgamma_ref) < REF_TOL and rel_err(layer.grads["beta"], dbeta_ref) < REF_TOL


def test_training_uses_the_batch_and_updates_the_moving_statistics_as_keras_does(backend):
    rng = np.random.default_rng(3)
    layer = built_bn((4, 4, 3), rng, momentum=0.9)
    x = rng.standard_normal((6, 4, 4, 3)) * 2 + 5
    mean0, var0 = host(layer.state["moving_mean"]).copy(), host(layer.state["moving_variance"]).copy()
    y = host(layer.forward(backend.asarray(x), training=True))
    mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # the biased variance
    gamma, beta = host(layer.params["gamma"]), host(layer.params["beta"])
    np.testing.assert_allclose(y, gamma * (x - mu) / np.sqrt(var + 1e-3) + beta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(layer.state["moving_mean"]), 0.9 * mean0 + 0.1 * mu, rtol=1e-14)
    np.testing.assert_allclose(host(layer.state["moving_variance"]), 0.9 * var0 + 0.1 * var, rtol=1e-14)
    moved = host(layer.state["moving_mean"]).copy()
    y_inference = host(layer.forward(backend.asarray(x), training=False))  # the moving statistics, unchanged
    v = host(layer.state["moving_variance"])
    np.testing.assert_allclose(y_inference, gamma * (x - moved) / np.sqrt(v + 1e-3) + beta, rtol=1e-12)
    assert np.array_equal(host(layer.state["moving_mean"]), moved)


def test_batchnorm_state_is_not_trained_and_is_counted_as_keras_counts_it():
    model = minicnn.Sequential(
        [Conv2D(4, 3), BatchNormalization(), ReLU(), Flatten(), Dense(2)], input_shape=(5, 5, 2), seed=0
    )
    assert [k for k, _, _ in model.named_parameters()] == [
        "00_Conv2D/W", "00_Conv2D/b", "01_BatchNormalization/gamma", "01_BatchNormalization/beta",
        "04_Dense/W", "04_Dense/b",
    ]  # fmt: skip
    assert [w.shape for w in model.get_weights()][2:6] == [(4,)] * 4  # gamma, beta, moving_mean, moving_variance
    lines = model.summary_lines()
    assert "Total params: 166" in lines and "Trainable params: 158" in lines and "Non-trainable params: 8" in lines
    weights = model.get_weights()
    weights[4] = weights[4] + 1.0
    model.set_weights(weights)
    assert np.array_equal(model.layers[1].state["moving_mean"], np.ones(4, np.float32))


def test_only_the_last_axis_is_a_channel_axis():
    with pytest.raises(ValueError, match="only the last axis"):
        minicnn.Sequential([BatchNormalization(axis=1)], input_shape=(4, 4, 3))
    minicnn.Sequential([BatchNormalization(axis=3)], input_shape=(4, 4, 3))  # the last, counted from the batch


def test_batchnorm_matches_pytorch_in_float64():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    rng = np.random.default_rng(4)
    layer = built_bn((4, 4, 3), rng, momentum=0.9)
    bn = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.1, dtype=torch.float64)  # PyTorch's momentum: 1 - Keras's
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(layer.params["gamma"]))
        bn.bias.copy_(torch.tensor(layer.params["beta"]))
        bn.running_mean.copy_(torch.tensor(layer.state["moving_mean"]))
        bn.running_var.copy_(torch.tensor(layer.state["moving_variance"]))
    var0 = layer.state["moving_variance"].copy()
    x = rng.standard_normal((5, 4, 4, 3))
    dy = rng.standard_normal(x.shape)
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    ty = bn.train()(tx)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    assert rel_err(y, ty.detach().numpy().transpose(0, 2, 3, 1)) < 1e-12
    assert rel_err(dx, tx.grad.numpy().transpose(0, 2, 3, 1)) < 1e-12
    assert rel_err(layer.grads["gamma"], bn.weight.grad.numpy()) < 1e-12
    np.testing.assert_allclose(layer.state["moving_mean"], bn.running_mean.numpy(), rtol=1e-13)
    m = x.size // 3  # PyTorch's running variance follows the unbiased batch variance
    keras_var = 0.9 * var0 + 0.1 * x.var(axis=(0, 1, 2))
    torch_var = 0.9 * var0 + 0.1 * x.var(axis=(0, 1, 2)) * m / (m - 1)
    np.testing.assert_allclose(layer.state["moving_variance"], keras_var, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var.numpy(), torch_var, rtol=1e-13)


# -- average pooling ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "pool, strides, padding, size",
    [(2, None, "valid", (6, 6)), (3, 2, "valid", (7, 6)), (3, 2, "same", (5, 6)), ((2, 3), 1, "same", (4, 5))],
)
def test_average_pooling_gradients_and_loops(backend, pool, strides, padding, size):
    rng = np.random.default_rng(5)
    layer = AveragePooling2D(pool, strides, padding)
    layer.build((*size, 3), dtype="float64")
    x = rng.standard_normal((2, *size, 3))
    assert check_layer(layer, backend.asarray(x), seed=1)["x"] < GRAD_TOL
    y = layer.forward(backend.asarray(x), training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(backend.asarray(dy))
    assert rel_err(y, naive.avgpool_forward(x, layer.pool_size, layer.strides, layer.pads)) < REF_TOL
    assert rel_err(dx, naive.avgpool_backward(x.shape, dy, layer.pool_size, layer.strides, layer.pads)) < REF_TOL


def test_same_average_pooling_counts_only_real_pixels():
    layer = AveragePooling2D(2, padding="same")
    y = layer.forward(np.ones((1, 3, 3, 1)))  # padded to 4x4: border windows hold 2 or 1 real pixels
    assert y.shape == (1, 2, 2, 1) and np.array_equal(y, np.ones((1, 2, 2, 1)))


def test_global_average_pooling(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5, 2))
    layer = GlobalAveragePooling2D()
    y = layer.forward(backend.asarray(x), training=True)
    assert y.shape == (3, 2) and rel_err(y, x.mean(axis=(1, 2))) < REF_TOL
    assert check_layer(GlobalAveragePooling2D(), backend.asarray(x), seed=2)["x"] < GRAD_TOL


# -- Residual -----------------------------------------------------------------------------
def test_residual_identity_and_projection_gradients(backend):
    rng = np.random.default_rng(7)
    x = backend.asarray(rng.standard_normal((3, 6, 6, 4)))
    same = Residual([Conv2D(4, 3, padding="same"), ReLU(), Conv2D(4, 3, padding="same")])
    assert max(check_layer(same, x, seed=3).values()) < GRAD_TOL and same.projection is None
    # Conv biases feed BatchNormalization, which removes any constant: their gradient is 0, not checked here.
    down = down_block()
    errors = check_layer(down, x, seed=4, training=True)
    assert down.output_shape == (3, 3, 6) and down.projection.strides == (2, 2)
    assert max(v for k, v in errors.items() if k != "0_Conv2D/b") < GRAD_TOL, errors


def residual_model(seed=0, dtype="float32"):
    return minicnn.Sequential(
        [
            Conv2D(4, 3, padding="same"),
            BatchNormalization(),
            ReLU(),
            down_block(),
            ReLU(),
            AveragePooling2D(2, padding="same"),
            GlobalAveragePooling2D(),
            Dense(3),
        ],
        input_shape=(8, 8, 2),
        seed=seed,
        dtype=dtype,
    )


def data(n=64):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


def fit(model, epochs, threads=1, optimizer=None, initial_epoch=0):
    optimizer = optimizer or Adam(model, lr=1e-2)
    x, y = data()
    model.fit(x, y, optimizer=optimizer, epochs=epochs, batch_size=24, verbose=0, seed=3, threads=threads,
              initial_epoch=initial_epoch)  # fmt: skip
    return optimizer


def test_the_optimizer_trains_a_residual_blocks_layers_and_never_the_moving_statistics():
    model = residual_model()
    keys = [k for k, _, _ in model.named_parameters()]
    assert "03_Residual/0_Conv2D/W" in keys and "03_Residual/projection_Conv2D/W" in keys
    assert not any("moving" in k for k in keys)
    before = [w.copy() for w in model.get_weights()]
    optimizer = fit(model, 1)
    assert not any("moving" in k for k in optimizer.state_dict())
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every weight moved, state included


def test_checkpoint_keeps_the_moving_statistics_and_a_resume_is_bit_identical(tmp_path):
    straight = residual_model()
    fit(straight, 2)
    first = residual_model()
    optimizer = fit(first, 1)
    first.save(tmp_path / "one.npz", optimizer=optimizer)
    resumed, _ = minicnn.load_model(tmp_path / "one.npz")
    for a, b in zip(first.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert "layers/03_Residual/1_BatchNormalization/moving_variance" in np.load(tmp_path / "one.npz").files
    optimizer = Adam(resumed, lr=1e-2)
    resumed.load_weights(tmp_path / "one.npz", optimizer=optimizer)
    fit(resumed, 2, optimizer=optimizer, initial_epoch=1)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert resumed.get_config() == straight.get_config()


def test_one_two_and_four_threads_give_the_same_bits_with_batchnorm():
    models = [residual_model() for _ in range(3)]
    for model, threads in zip(models, (1, 2, 4)):
        fit(model, 1, threads=threads)
    for a, b, c in zip(*(m.get_weights() for m in models)):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert parallel.mixes_examples(models[0])


def test_shards_share_the_batchs_statistics_so_a_sharded_step_is_one_pass_to_rounding():
    plain, sharded_model = residual_model(dtype="float64"), residual_model(dtype="float64")
    rng = np.random.default_rng(5)
    x, dlogits = rng.standard_normal((40, 8, 8, 2)), rng.standard_normal((40, 3))  # 40: three shards
    expected = plain.forward(x, training=True)
    plain.backward(dlogits)
    with parallel.ShardedModel(sharded_model, threads=2) as sharded:
        logits = sharded.forward(x, training=True)
        sharded.backward(dlogits)
    assert len(sharded.replicas) == 3
    assert rel_err(logits, expected) < 1e-12
    for key, layer, name in plain.named_parameters():
        a, b = sharded_model.layers[int(key[:2])].grads[name], layer.grads[name]
        assert np.abs(a - b).max() <= 1e-10 * max(1.0, np.abs(b).max()), key  # a bias before BN: ~0 both
    for a, b in zip(plain.get_weights(), sharded_model.get_weights()):  # moving statistics moved once, alike
        assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_larger_batch_after_a_smaller_one_gets_a_thread_per_shard():
    with parallel.ShardedModel(residual_model(), threads=2) as sharded:
        for n in (16, 48):  # one shard, then three
            logits = sharded.forward(np.zeros((n, 8, 8, 2), np.float32), training=True)
            sharded.backward(np.ones_like(logits))
        assert sharded._crowd is not None and sharded._crowd._max_workers == 3  # grown, not stuck at one


def test_an_error_in_one_shard_of_a_batchnorm_pass_is_raised_and_nothing_waits_for_ever(monkeypatch):
    model = residual_model()
    with parallel.ShardedModel(model, threads=2) as sharded:
        sharded.forward(np.zeros((48, 8, 8, 2), np.float32), training=True)  # three shards, replicas built
        broken = sharded.replicas[1].layers[2]  # the ReLU after the first BN, in the second shard only

        def fail(*args, **kwargs):
            raise FloatingPointError("shard 1 failed")

        monkeypatch.setattr(broken, "forward", fail)
        with pytest.raises(FloatingPointError, match="shard 1 failed"):
            sharded.forward(np.zeros((48, 8, 8, 2), np.float32), training=True)


def test_a_residual_block_without_batchnorm_still_runs_in_shards_and_gives_the_same_bits():
    def model():
        block = [Conv2D(6, 3, strides=2, padding="same"), ReLU(), Conv2D(6, 3, padding="same")]
        return minicnn.Sequential([Residual(block), ReLU(), Flatten(), Dense(3)], input_shape=(8, 8, 2), seed=0)

    models = [model() for _ in range(3)]
    for m, threads in zip(models, (1, 2, 4)):
        fit(m, 1, threads=threads)
    for a, b, c in zip(*(m.get_weights() for m in models)):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not parallel.mixes_examples(models[0])
    with parallel.execution(models[0], threads=2) as (sharded, _):
        twin = sharded.ensure_replicas(2)[1].layers[0]  # its own inner layers, the same parameter arrays
        assert twin.layers[0] is not models[0].layers[0].layers[0]
        assert twin.layers[0].params["W"] is models[0].layers[0].layers[0].params["W"]


# -- Keras files --------------------------------------------------------------------------
def test_keras_file_round_trip(tmp_path):
    pytest.importorskip("h5py", reason="h5py not installed")
    from minicnn.interop import KerasFormatError, load_keras, save_keras

    model = minicnn.Sequential(
        [
            Conv2D(4, 3),
            BatchNormalization(momentum=0.9, epsilon=1e-4),
            ReLU(),
            AveragePooling2D(2, padding="same"),
            BatchNormalization(center=False),
            GlobalAveragePooling2D(),
            Dense(3),
        ],
        input_shape=(7, 7, 2),
        seed=0,
    )
    fit_x = np.random.default_rng(2).standard_normal((16, 7, 7, 2)).astype(np.float32)
    model.fit(fit_x, np.arange(16) % 3, optimizer=Adam(model, lr=1e-2), epochs=1, batch_size=8, verbose=0)
    save_keras(model, tmp_path / "m.keras")
    back = load_keras(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]
    assert back.layers[1].momentum == 0.9 and back.layers[4].center is False and back.layers[3].padding == "same"
    for a, b in zip(model.get_weights(), back.get_weights()):
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(model.predict(fit_x), back.predict(fit_x))
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = minicnn.Sequential.from_config(model.get_config())
    fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        assert np.array_equal(a, b)
    with pytest.raises(KerasFormatError, match="Residual block"):
        save_keras(residual_model(), tmp_path / "r.keras")


def test_the_new_layers_are_no_longer_refused_by_name():
    from minicnn.layers import NOT_IN_MINICNN

    assert not {"BatchNormalization", "AveragePooling2D", "GlobalAveragePooling2D"} & set(NOT_IN_MINICNN)
