"""Threads inside one process (minicnn.parallel): the same weights whatever the thread count,
the same gradient as one pass over the whole batch, and errors that stop fit."""

import numpy as np
import pytest

import minicnn
from minicnn import parallel
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD, Adam


def small_cnn(dtype="float32"):
    return minicnn.Sequential(
        [
            Conv2D(4, 3, padding="same"),
            LeakyReLU(0.1),
            MaxPool2D(2),
            Dropout(0.25),
            Conv2D(6, 3, padding="same"),
            LeakyReLU(0.1),
            Flatten(),
            Dropout(0.5),
            Dense(3),
        ],
        input_shape=(8, 8, 2),
        dtype=dtype,
        seed=0,
    )


def data(n=100):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


def trained(threads, **options):
    model = small_cnn()
    x, y = data()
    history = model.fit(
        x,
        y,
        optimizer=Adam(model, lr=1e-2),
        epochs=2,
        batch_size=48,
        verbose=0,
        seed=3,
        threads=threads,
        augment=minicnn.datasets.augment,
        validation_data=data(20),
        **options,
    )
    return model, history


def test_one_two_and_four_threads_give_bitwise_the_same_weights():
    (m1, h1), (m2, h2), (m4, h4) = trained(1), trained(2), trained(4)
    for (_, l1, n), (_, l2, _), (_, l4, _) in zip(m1.named_parameters(), m2.named_parameters(), m4.named_parameters()):
        assert np.array_equal(l1.params[n], l2.params[n]) and np.array_equal(l1.params[n], l4.params[n])
    assert h1["loss"] == h2["loss"] == h4["loss"] and h1["val_accuracy"] == h4["val_accuracy"]
    assert not np.array_equal(m1.layers[0].params["W"], small_cnn().layers[0].params["W"])  # it did train


def test_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINICNN_THREADS", "3")
    assert parallel.thread_count() == 3 and parallel.thread_count(2) == 2
    monkeypatch.setenv("MINICNN_THREADS", "many")
    with pytest.raises(ValueError, match=r"\$MINICNN_THREADS must be a positive integer, got 'many'"):
        parallel.thread_count()
    monkeypatch.delenv("MINICNN_THREADS")
    assert parallel.thread_count() >= 1 and parallel.thread_count(processes=10**6) == 1
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        small_cnn().predict(data(4)[0], threads=0)


def test_shards_are_even_and_depend_only_on_the_batch_size():
    assert parallel.shard_bounds(64) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert [hi - lo for lo, hi in parallel.shard_bounds(50)] == [12, 13, 12, 13]
    assert parallel.shard_bounds(5) == [(0, 5)]


def test_sharded_step_takes_the_gradient_of_the_whole_batch():
    # float64, no dropout: the shards' weighted gradients equal one pass over the batch up to rounding.
    x, y = data(40)
    whole, sharded = small_cnn("float64"), small_cnn("float64")
    for model in (whole, sharded):
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rate = 0.0
    xb = x.astype(np.float64)
    minicnn.training.train_step(whole, SoftmaxCrossEntropy(), SGD(whole, lr=0.1), xb, y)
    with parallel.execution(sharded, SGD(sharded, lr=0.1), threads=2) as (runner, updater):
        minicnn.training.train_step(runner, SoftmaxCrossEntropy(), updater, xb, y)
    for (_, a, n), (_, b, _) in zip(whole.named_parameters(), sharded.named_parameters()):
        np.testing.assert_allclose(b.params[n], a.params[n], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.grads[n], a.grads[n], rtol=1e-10, atol=1e-13)


def test_predict_is_the_same_with_and_without_threads():
    model, _ = trained(2)
    x = data(300)[0]
    np.testing.assert_allclose(model.predict(x, threads=2), model.predict(x, threads=1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        model.predict(x, threads=1, batch_size=7), model.predict(x, threads=1), rtol=1e-5, atol=1e-6
    )


def test_a_failing_shard_stops_the_step_with_its_error():
    model = small_cnn()
    x, y = data(48)
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model)
    with parallel.execution(model, opt, threads=2) as (sharded, sharded_opt):
        sharded.ensure_replicas(3)
        calls = {"n": 0}
        original = sharded.replicas[2].layers[4].forward

        def broken_forward(xb, training=False):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("shard 2 fails on purpose")
            return original(xb, training=training)

        sharded.replicas[2].layers[4].forward = broken_forward
        minicnn.training.train_step(sharded, loss_fn, sharded_opt, x, y)
        with pytest.raises(RuntimeError, match="shard 2 fails on purpose"):
            minicnn.training.train_step(sharded, loss_fn, sharded_opt, x, y)
        # The threads are still usable afterwards: no worker left hanging.
        sharded.replicas[2].layers[4].forward = original
        minicnn.training.train_step(sharded, loss_fn, sharded_opt, x, y)


def test_no_layer_optimizer_or_model_knows_about_shards():
    model = small_cnn()
    assert not hasattr(model, "replica") and not hasattr(model.layers[0], "replica")
    import inspect

    assert "run" not in inspect.signature(Adam(model).step).parameters
    fit_source = inspect.getsource(minicnn.training.train_epoch)
    assert "train_step(step_model, loss_fn, step_optimizer" in fit_source  # fit runs the four lines


def test_replicas_share_parameters_and_follow_a_load(tmp_path):
    model, _ = trained(2)
    with parallel.execution(model, threads=2) as (sharded, _):
        replicas = sharded.ensure_replicas(3)
        assert all(r.layers[0].params is model.layers[0].params for r in replicas)
        other = small_cnn()
        other.save(tmp_path / "fresh.npz")
        model.load_weights(tmp_path / "fresh.npz")  # in place: replicas see it
        x = data(40)[0]
        with minicnn.no_grad():
            np.testing.assert_allclose(
                minicnn.backend.to_numpy(sharded.forward(x)), other.forward(x), rtol=1e-5, atol=1e-6
            )


def test_shard_streams_depend_on_the_shard_and_follow_a_reseed():
    model = small_cnn()
    assert parallel.shard_seed(5, 0) != parallel.shard_seed(5, 1) != parallel.shard_seed(6, 1)
    with parallel.execution(model, threads=2) as (sharded, _):
        r0, r1 = sharded.ensure_replicas(2)
        assert r0.layers[3].seed == parallel.shard_seed(model.layers[3].seed, 0)
        assert r1.layers[3].seed == parallel.shard_seed(model.layers[3].seed, 1)
        model.layers[3].reseed(123)
        sharded.ensure_replicas(2)
        assert r1.layers[3].seed == parallel.shard_seed(123, 1)
