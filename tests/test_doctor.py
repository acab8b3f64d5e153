"""minicnn.doctor: a sound model passes every check; each deliberately broken one is named."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.doctor import Check, diagnose, gradient_traps, gradient_verdict, model_copy
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU, MaxPool2D, ReLU
from minicnn.optim import SGD, Adam

ROOT = Path(__file__).resolve().parent.parent


def bars(n=96, seed=0):
    """8x8 images of a horizontal bar (class 0), a vertical bar (1) or a diagonal (2), standardised noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 8, 8, 1))
    for img, label, k in zip(x, y, rng.integers(1, 7, n)):
        if label == 0:
            img[k, :, 0] += 1.5
        elif label == 1:
            img[:, k, 0] += 1.5
        else:
            img[np.arange(8), np.arange(8), 0] += 1.5
    x = (x - x.mean()) / x.std()
    return x.astype(np.float32), y


class HalfLeakyReLU(LeakyReLU):
    """A LeakyReLU whose backward is off by a factor of 2: the kind of bug the doctor must find."""

    def backward(self, dy, need_input_grad=True):
        return 0.5 * super().backward(dy, need_input_grad)


def small_model(activation=LeakyReLU, seed=0):
    return minicnn.Sequential(
        [Conv2D(6, 3, padding="same"), activation(0.1), MaxPool2D(2), Dropout(0.25), Flatten(), Dense(3)],
        input_shape=(8, 8, 1),
        seed=seed,
    )


FAST = dict(optimizer_factory=lambda m: Adam(m, lr=1e-2), verbose=False)


def by_name(results, start):
    return [r for r in results if r.name.startswith(start)]


def test_a_correct_model_passes_every_check(capsys):
    x, y = bars()
    model = small_model()
    before = [v.copy() for _, layer, name in model.named_parameters() for v in [layer.params[name]]]
    results = diagnose(model, x, y, optimizer_factory=lambda m: Adam(m, lr=1e-2))
    assert all(isinstance(r, Check) for r in results)
    assert [r.name for r in results if not r.passed] == []
    assert len(by_name(results, "gradient of layer")) == 6
    out = capsys.readouterr().out
    assert "PASS  initial loss vs ln(3)" in out and "checks passed" in out and "FAIL" not in out
    after = [layer.params[name] for _, layer, name in model.named_parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "diagnose changed the model"


def test_a_wrong_backward_is_named():
    x, y = bars()
    results = diagnose(small_model(HalfLeakyReLU), x, y, checks=("gradients",), **FAST)
    failed = [r for r in results if r.passed is False]
    assert len(failed) == 1
    assert "layer 1" in failed[0].name and "HalfLeakyReLU" in failed[0].name
    assert failed[0].number > 1e-2 and "wrong" in failed[0].advice
    assert "none of the known traps" in failed[0].advice


def test_a_diverging_learning_rate_fails_the_lr_check():
    x, y = bars()
    results = diagnose(
        small_model(),
        x,
        y,
        checks=("learning_rate", "overfit"),
        verbose=False,
        optimizer_factory=lambda m: SGD(m, lr=1e4),
    )
    lr = by_name(results, "learning rate")[0]
    assert lr.passed is False and "too high" in lr.advice
    assert by_name(results, "overfit")[0].passed is None  # skipped: it would fail too


def test_inputs_scaled_by_255_fail_the_initial_loss_with_the_standardisation_advice():
    x, y = bars()
    pixels = (x - x.min()) / (x.max() - x.min()) * 255  # 0..255, as images come from disk
    check = diagnose(small_model(), pixels, y, checks=("initial_loss",), **FAST)[0]
    assert check.passed is False and check.number > 3 * np.log(3)
    assert "not standardised" in check.advice and "standardize" in check.advice


def test_too_large_weights_are_called_a_bad_initialisation():
    x, y = bars()
    model = small_model()
    model.layers[-1].params["W"][...] *= 100
    check = diagnose(model, x, y, checks=("initial_loss",), **FAST)[0]
    assert check.passed is False and "initialisation" in check.advice


def test_cs231n_reading_of_relative_errors():
    assert gradient_verdict(0.5)[1] is False and "wrong" in gradient_verdict(0.5)[0]
    assert gradient_verdict(1e-3)[1] is False and "suspicious" in gradient_verdict(1e-3)[0]
    assert gradient_verdict(1e-6, kinked=True)[1] is True
    assert gradient_verdict(1e-6, kinked=False)[1] is False
    assert gradient_verdict(1e-9) == ("right (< 1e-7)", True)
    assert gradient_verdict(float("nan"))[1] is False


def test_traps_are_detected():
    relu = ReLU()
    x = np.array([[0.0, 1.0, -2.0, 3e-7]])
    relu.build(x.shape[1:], "float64")
    assert "kink" in gradient_traps(relu, x) and "2 of 4" in gradient_traps(relu, x)["kink"]

    pool = MaxPool2D(2)
    pool.build((2, 2, 1), "float64")
    assert "ties" in gradient_traps(pool, np.array([[[[1.0], [1.0]], [[0.0], [0.5]]]]))
    assert gradient_traps(pool, np.array([[[[1.0], [0.9]], [[0.0], [0.5]]]])) == {}

    dense = Dense(2)
    dense.build((3,), "float32")
    assert "float32" in gradient_traps(dense, np.ones((1, 3)))

    class UnseededDropout(Layer):  # a random mask nobody can fix
        def forward(self, x, training=False):
            self._ensure_built(x)
            self.cache = np.random.default_rng().random(x.shape) > 0.5
            return x * self.cache

        def backward(self, dy, need_input_grad=True):
            return dy * self.cache

    layer = UnseededDropout()
    layer.build((16,), "float64")
    assert "random" in gradient_traps(layer, np.ones((2, 16)))


def test_a_kink_alone_does_not_fail_a_correct_layer():
    # Inputs exactly at LeakyReLU's kink: the doctor re-checks away from it and passes the layer.
    model = minicnn.Sequential([Flatten(), LeakyReLU(0.1), Dense(2)], input_shape=(4, 4, 1), seed=0)
    x = np.zeros((8, 4, 4, 1), np.float32)
    x[:, ::2] = 1.0
    results = diagnose(model, x, np.arange(8) % 2, checks=("gradients",), verbose=False)
    leaky = by_name(results, "gradient of layer 1")[0]
    assert leaky.passed, leaky.advice
    assert "kink" in leaky.details.get("traps", {}) or leaky.number < 1e-7


def test_model_copy_rebuilds_subclasses_with_the_same_weights():
    model = small_model(HalfLeakyReLU)
    clone = model_copy(model, "float64")
    assert type(clone.layers[1]) is HalfLeakyReLU and clone.dtype == np.float64
    np.testing.assert_allclose(clone.layers[0].params["W"], model.layers[0].params["W"])


def test_cli_help():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-m", "minicnn.doctor", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 0 and "--data-dir" in run.stdout


@pytest.mark.parametrize("data", ["random", "cifar"])
def test_cli_end_to_end_with_a_small_stand_in_model(data, tmp_path, monkeypatch, capsys):
    # The documented model takes 10-30 s here; the command's plumbing is the same with a small one.
    from cifar_fixture import make_cifar_folder

    import minicnn.models
    from minicnn.doctor import main

    def small_cifar_model(seed=None):
        model = minicnn.Sequential(
            [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(4), Flatten(), Dense(10)],
            input_shape=(32, 32, 3),
            seed=seed,
        )
        model.layers[-1].params["W"][...] *= 0.1  # Glorot alone starts this one at loss 3.9, not ln 10
        return model

    monkeypatch.setattr(minicnn.models, "cifar10_cnn", small_cifar_model)
    argv = ["--examples", "16", "--lr", "0.01"]
    if data == "cifar":
        make_cifar_folder(tmp_path, rows_per_batch=60, test_rows=10)
        argv += ["--data-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert ("CIFAR-10 training images" in out) == (data == "cifar")
    assert "PASS  overfit 16 examples" in out and "checks passed" in out
