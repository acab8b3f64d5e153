"""The recipe's tricks: test-time augmentation, the weight average (EMA), and the script's --recipe."""

import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import run_train
from test_longruns import assert_same_weights, start_and_signal_in_epoch_2

import minicnn
from minicnn import Sequential, parallel
from minicnn.callbacks import ModelCheckpoint
from minicnn.layers import Dense, Flatten
from minicnn.losses import log_softmax, softmax
from minicnn.optim import SGD, Adam
from minicnn.recipes import RECIPES, SCHEDULES, schedule
from minicnn.tta import flip, log_mean_softmax, shift, views

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import train_cifar  # noqa: E402


def small_model(seed=0):
    return Sequential([Flatten(), Dense(8), Dense(3)], input_shape=(4, 5, 2), dtype="float64", seed=seed)


def images(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 5, 2)), rng.integers(0, 3, n)


# -- test-time augmentation ---------------------------------------------------------------
def test_views_are_the_flip_and_the_zero_filled_shifts():
    x = np.arange(2 * 3 * 4 * 1, dtype=float).reshape(2, 3, 4, 1)
    np.testing.assert_array_equal(flip(x)[:, :, 0], x[:, :, 3])
    moved = shift(x, 1, -1)  # one row down, one column left
    np.testing.assert_array_equal(moved[:, 1:, :3], x[:, :2, 1:])
    assert not moved[:, 0].any() and not moved[:, :, 3].any()
    assert [v.shape for v in views(x, "flip_shift")] == [x.shape] * 6
    assert len(views(x, None)) == 1 and len(views(x, "flip")) == 2
    with pytest.raises(ValueError, match="tta must be None or one of 'flip', 'flip_shift', got 'mirror'"):
        views(x, "mirror")


def test_log_mean_softmax_is_the_log_of_the_mean_probability_even_for_huge_logits():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 4)) * 3, rng.standard_normal((5, 4)) * 3
    np.testing.assert_allclose(np.exp(log_mean_softmax([a, b])), (softmax(a) + softmax(b)) / 2, rtol=1e-12)
    huge = log_mean_softmax([a * 1e4, b * 1e4])
    assert np.isfinite(huge).all() and np.allclose(np.exp(huge).sum(axis=1), 1)
    np.testing.assert_allclose(log_softmax(huge), huge, atol=1e-12)  # a loss may take it as logits


def test_evaluate_and_predict_with_flip_tta_average_the_two_views():
    model = small_model()
    x, y = images()
    probs = model.predict(x, tta="flip")
    expected = (model.predict(x) + model.predict(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(probs, expected, rtol=1e-10)
    result = model.evaluate(x, y, tta="flip", return_predictions=True)
    np.testing.assert_array_equal(result["predictions"], expected.argmax(axis=1))
    assert result["accuracy"] == pytest.approx((expected.argmax(axis=1) == y).mean())
    assert result["loss"] == pytest.approx(-np.log(expected[np.arange(len(y)), y]).mean())
    with pytest.raises(ValueError, match="evaluate: tta must be"):
        model.evaluate(x, y, tta="flips")


# -- the weight average -------------------------------------------------------------------
def ema_by_hand(weights, momentum, start):
    """The documented rule over the weights after each step (steps counted from 1)."""
    avg = None
    for t, w in enumerate(weights, start=1):
        n = t - max(start, 1)
        if n <= 0:
            avg = w.copy()
        else:
            m = min(momentum, (1 + n) / (10 + n))
            avg = m * avg + (1 - m) * w
    return avg


class _InlineTasks:
    """Stands in for a ShardedModel's threads: the optimizer's blocks of rows, called in order."""

    def call(self, tasks):
        return [task() for task in tasks]


@pytest.mark.parametrize("start", [0, 3])
@pytest.mark.parametrize("threads", [None, "blocks"])
def test_ema_follows_the_documented_rule(start, threads):
    model = small_model()
    opt = SGD(model, lr=0.1, momentum=0.9, ema_momentum=0.8, ema_start=start)
    rng = np.random.default_rng(1)
    history = {key: [] for key, _, _ in model.named_parameters()}
    for _ in range(12):
        for _, layer, name in model.named_parameters():
            layer.grads[name] = rng.standard_normal(layer.params[name].shape)
        (parallel.ShardedOptimizer(opt, _InlineTasks()) if threads else opt).step()
        for key, layer, name in model.named_parameters():
            history[key].append(layer.params[name].copy())
    for key in history:
        np.testing.assert_allclose(opt.slots["average"][key], ema_by_hand(history[key], 0.8, start), rtol=1e-12)


def test_averaged_weights_swaps_in_and_back_and_leaves_a_plain_optimizer_alone():
    model = small_model()
    opt = Adam(model, lr=0.1, ema_momentum=0.5)
    x, y = images()
    model.fit(x, y, optimizer=opt, epochs=2, batch_size=4, verbose=0, seed=0)
    trained = [layer.params[name].copy() for _, layer, name in model.named_parameters()]
    averages = [opt.slots["average"][key].copy() for key, _, _ in model.named_parameters()]
    assert not all(np.array_equal(a, b) for a, b in zip(trained, averages))
    with opt.averaged_weights():
        inside = [layer.params[name].copy() for _, layer, name in model.named_parameters()]
    after = [layer.params[name] for _, layer, name in model.named_parameters()]
    for a, b, c, d in zip(inside, averages, after, trained):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)
    plain = SGD(small_model(), lr=0.1)
    with plain.averaged_weights():
        pass
    assert "ema_momentum" not in plain.state_dict()
    with pytest.raises(ValueError, match="ema_momentum must be None or in"):
        SGD(small_model(), ema_momentum=1.0)


def test_fit_validates_with_the_average():
    x, y = images(12)
    runs = {}
    for ema in (None, 0.5):
        model = small_model()
        opt = Adam(model, lr=0.05, ema_momentum=ema)
        hist = model.fit(x, y, optimizer=opt, epochs=1, batch_size=4, validation_data=(x, y), verbose=0, seed=0)
        with opt.averaged_weights():
            runs[ema] = (hist["val_loss"][0], model.evaluate(x, y)["loss"])
    assert runs[0.5][0] == runs[0.5][1] and runs[None][0] == runs[None][1]
    assert runs[0.5][0] != runs[None][0]


def test_checkpoint_holds_the_average_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    x, y = images(16)

    def build():
        model = small_model()
        return model, Adam(model, lr=0.05, ema_momentum=0.7)

    straight, opt = build()
    straight.fit(x, y, optimizer=opt, epochs=3, batch_size=4, verbose=0, seed=5)

    first, opt1 = build()
    path = tmp_path / "model.npz"
    first.fit(
        x, y, optimizer=opt1, epochs=1, batch_size=4, verbose=0, seed=5, callbacks=[ModelCheckpoint(path, first, opt1)]
    )
    loaded = minicnn.load_model(path)[0]  # the file's weights are the average
    for key, layer, name in loaded.named_parameters():
        np.testing.assert_array_equal(layer.params[name], opt1.slots["average"][key])

    resumed, opt2 = build()
    start = ModelCheckpoint.resume(path, resumed, opt2, {})
    assert start == 1 and not opt2.average_in_model
    resumed.fit(x, y, optimizer=opt2, epochs=3, batch_size=4, verbose=0, seed=5, initial_epoch=start)
    for (key, a, name), (_, b, _) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(a.params[name], b.params[name])
        np.testing.assert_array_equal(opt.slots["average"][key], opt2.slots["average"][key])

    with pytest.raises(
        minicnn.CheckpointError, match="saved with ema_momentum=0.7, this optimizer has ema_momentum=None"
    ):
        small_model().load_weights(path, optimizer=Adam(small_model(), lr=0.05))


# -- the script's recipes -----------------------------------------------------------------
def test_a_recipe_fixes_the_settings_and_explicit_options_override_it():
    fast = train_cifar.parse_args(["--recipe", "fast"])
    assert (fast.epochs, fast.batch_size, fast.lr, fast.schedule, fast.label_smoothing, fast.tta) == (
        10,
        128,
        3e-3,
        "linear",
        0.2,
        "flip",
    )
    assert (fast.whiten_init, fast.crop_padding, fast.dropout) == (True, 2, [0.125, 0.125, 0.25])
    mixed = train_cifar.parse_args(["--recipe", "fast", "--epochs", "4", "--label-smoothing", "0", "--tta", "none"])
    assert (mixed.epochs, mixed.label_smoothing, mixed.tta, mixed.batch_size) == (4, 0.0, "none", 128)
    assert train_cifar.parse_args(["--recipe", "fast", "--crop-padding", "4"]).crop_padding == 4
    default = train_cifar.parse_args([])
    assert (default.recipe, default.epochs, default.batch_size, default.lr, default.schedule) == (
        "default",
        30,
        64,
        2e-3,
        "cosine",
    )
    assert (default.label_smoothing, default.ema, default.tta, default.crop_padding) == (0.0, 0.0, "none", 4)
    assert default.dropout == [0.25, 0.25, 0.5]  # the course's


def test_every_setting_of_a_recipe_is_an_option_of_the_script():
    options = vars(train_cifar.parse_args([]))
    for name, settings in RECIPES.items():
        assert set(settings) <= set(options), f"{name}: {set(settings) - set(options)} are not options"
        assert settings["schedule"] in SCHEDULES
    assert train_cifar.RECIPES is RECIPES  # the script's old names still work


def test_schedule_by_name_and_an_unknown_name_lists_the_known_ones():
    linear = schedule("linear", 3e-3, 10, 0.5)
    assert linear(0.5) == pytest.approx(3e-3) and linear(10) == 0.0
    assert schedule("cosine", 2e-3, 30, 1.0)(30) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"expected one of \['cosine', 'linear', 'one-cycle'\], got 'step'"):
        schedule("step", 1e-3, 10, 0.0)


@pytest.mark.slow
def test_fast_recipe_with_ema_records_both_test_figures_and_resumes_exactly(cifar_dir, tmp_path):
    def args(out, epochs):
        return [
            "--recipe", "fast", "--data-dir", str(cifar_dir), "--out", str(out), "--epochs", str(epochs),
            "--val-split", "8", "--batch-size", "8", "--ema", "0.9", "--no-plots", "--verbose", "0",
        ]  # fmt: skip

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_train(args(straight, 3)).returncode == 0
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["recipe"] == "fast" and metrics["tta"] == "flip" and metrics["epochs"] == 3
    assert 0 <= metrics["test_accuracy_single_view"] <= 1
    assert metrics["train_images_processed"] == 3 * metrics["train_images"]
    assert metrics["config"]["label_smoothing"] == 0.2 and metrics["config"]["ema"] == 0.9
    assert metrics["config"]["crop_padding"] == 2 and metrics["config"]["whiten_init"]
    returncode, err = start_and_signal_in_epoch_2(args(split, 3), split, signal.SIGTERM)
    assert returncode == 143, err
    resumed = run_train(args(split, 3) + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(straight / "model.npz", split / "model.npz")


def test_no_test_evaluates_the_validation_split_and_records_no_test_figure(cifar_dir, tmp_path):
    out = tmp_path / "tune"
    args = ["--recipe", "fast", "--data-dir", cifar_dir, "--out", out, "--epochs", "1", "--val-split", "16",
            "--batch-size", "8", "--no-plots", "--verbose", "0", "--no-test"]  # fmt: skip
    done = run_train(args)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated"] == "val" and not any(key.startswith("test_") for key in metrics)
    last = float((out / "history.csv").read_text().splitlines()[-1].split(",")[4])  # the epoch's val_accuracy
    assert metrics["val_accuracy_single_view"] == pytest.approx(last)  # the same images, the same weights
    assert "val accuracy:" in done.stdout and "test accuracy" not in done.stdout
    refused = run_train(args[:-1] + ["--val-split", "0", "--no-test", "--overwrite"])
    assert refused.returncode == 2 and "--no-test" in refused.stderr and "--val-split" in refused.stderr


def test_plot_recipes_draws_validation_against_cumulative_minutes(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import plot_recipes

    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n1,2,0.3,1.5,0.5,1e-3,60\n2,1,0.6,1,0.7,0,90\n"
    )
    assert plot_recipes.read_run(history) == ([1.0, 2.5], [0.5, 0.7], [1, 2])
    out = tmp_path / "recipes.png"
    assert plot_recipes.main([f"fast={history}", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
