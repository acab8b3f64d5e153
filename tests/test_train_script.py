"""End to end: examples/train_cifar.py and examples/visualize.py on a tiny CIFAR-format dataset."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import run_train, script_args
from conftest import signals_at_default

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "examples" / "train_cifar.py")]
PICTURES = ["filters.png", "stimuli.png", "feature_maps.png", "curves.png", "confusion.png"]


run = run_train


def common(cifar_dir, out, epochs, backend="numpy"):
    return script_args(cifar_dir, out, backend=backend, epochs=epochs, val_split=40, batch_size=32, seed=3)


@pytest.mark.slow
def test_one_short_epoch_writes_every_output(cifar_dir, tmp_path):
    out = tmp_path / "run"
    result = run(common(cifar_dir, out, 1) + ["--verbose", "1"])
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "Total params: 1,084,234" in text  # the summary
    assert "Epoch 1/1" in text and "val_accuracy" in text and "test accuracy" in text
    for name in ["model.npz", "summary.txt", "history.csv", "filters.npz", "metrics.json"] + PICTURES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in [
        "test_accuracy",
        "test_loss",
        "per_class_accuracy",
        "epochs",
        "backend",
        "train_seconds",
        "train_images_per_second",
        "config",
        "versions",
    ]:
        assert key in metrics, key
    assert metrics["epochs"] == 1 and metrics["backend"] == "numpy" and 0 <= metrics["test_accuracy"] <= 1
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    import minicnn

    model, extra = minicnn.load_model(out / "model.npz")
    assert model.count_params() == 1_084_234 and extra["epoch"] == 1 and extra["mean"].shape == (3,)
    # predictor.npz carries the preprocessing: raw pixels in, the model's answers out.
    from minicnn.datasets import standardize

    raw = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    predictor = minicnn.models.load_model(out / "predictor.npz")
    expected = model.predict(standardize(raw, extra["mean"], extra["std"]))
    np.testing.assert_allclose(predictor.predict(raw), expected, rtol=1e-4, atol=1e-6)
    assert predictor.saved_extra["class_names"][0] == "airplane"
    # The same command again would replace the finished run: refused, naming both ways on, nothing touched.
    before = {name: (out / name).read_bytes() for name in ("model.npz", "history.csv")}
    again = run(common(cifar_dir, out, 1))
    assert again.returncode == 2 and "already holds a run" in again.stderr, again.stderr
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    assert all((out / name).read_bytes() == data for name, data in before.items())
    assert extra["config"]["seed"] == 3 and extra["rng_state"] == {"seed": 3, "next_epoch": 1}

    # visualize.py redraws the pictures from the checkpoint alone (and the history beside it).
    pics = tmp_path / "pics"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "visualize.py"),
            str(out / "model.npz"),
            "--out",
            str(pics),
            "--data-dir",
            str(cifar_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in PICTURES:
        assert (pics / name).is_file(), name


@pytest.mark.slow
def test_one_short_epoch_on_cupy(cifar_dir, tmp_path):
    """The whole script with ``--backend cupy``: a GPU where there is one, else the CPU stand-in
    for CuPy (tests/standin, first on $PYTHONPATH), which fails on any implicit host copy."""
    from conftest import cupy_mode

    if cupy_mode() == "off":
        pytest.skip("CuPy cases need a usable GPU or the stand-in (--no-cupy-standin was given)")
    out = tmp_path / "run"
    result = run(common(cifar_dir, out, 1, backend="cupy") + ["--verbose", "1"])
    assert result.returncode == 0, result.stderr
    assert "on cupy" in result.stdout and "test accuracy" in result.stdout
    for name in ["model.npz", "summary.txt", "history.csv", "metrics.json"] + PICTURES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "cupy" and "cupy" in metrics["versions"] and 0 <= metrics["test_accuracy"] <= 1
    if cupy_mode() == "standin":
        assert "stand-in" in metrics["versions"]["gpu"]
    import minicnn

    model, extra = minicnn.load_model(out / "model.npz")  # a checkpoint written from the device loads on the host
    assert model.count_params() == 1_084_234 and extra["epoch"] == 1


def weights(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k.startswith(("layers/", "optimizer/"))}


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_the_uninterrupted_weights(cifar_dir, tmp_path):
    straight = tmp_path / "straight"
    assert run(common(cifar_dir, straight, 3) + ["--verbose", "0", "--no-plots"]).returncode == 0

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        TRAIN + common(cifar_dir, out, 3) + ["--verbose", "0", "--no-plots"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=signals_at_default,  # Ctrl-C reaches it even when the tests run in the background
    )
    deadline = time.time() + 120
    while not (out / "model.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # during epoch 2 (epoch 1's checkpoint just landed)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "completed epoch" in err

    resumed = run(common(cifar_dir, out, 3) + ["--verbose", "0", "--no-plots", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout
    a, b = weights(straight / "model.npz"), weights(out / "model.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 3
    # The filter timeline: the interrupted run's epochs kept, the resumed ones added, as if never stopped.
    from minicnn.callbacks import read_filter_timeline

    kept, whole = read_filter_timeline(out / "filters.npz"), read_filter_timeline(straight / "filters.npz")
    assert kept["epochs"].tolist() == whole["epochs"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(kept["kernels"], whole["kernels"])


@pytest.mark.slow
def test_resume_refuses_changed_settings(cifar_dir, tmp_path):
    out = tmp_path / "run"
    assert run(common(cifar_dir, out, 1) + ["--verbose", "0", "--no-plots"]).returncode == 0
    result = run(common(cifar_dir, out, 2) + ["--verbose", "0", "--no-plots", "--resume", "--lr", "0.1"])
    assert result.returncode == 2 and "--lr" in result.stderr


def test_missing_data_is_a_clear_error(tmp_path):
    # No network in tests: point the download at a file that does not exist.
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        TRAIN
        + [
            "--backend",
            "numpy",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "o"),
            "--url",
            (tmp_path / "missing.tar.gz").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "error:" in result.stderr and "download" in result.stderr


@pytest.mark.slow
def test_init_from_a_keras_file_fine_tunes_that_model(cifar_dir, tmp_path):
    pytest.importorskip("h5py")
    import minicnn
    from minicnn.interop import save_keras
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    small = minicnn.Sequential(
        [Conv2D(4, 3, strides=2, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(10)],
        input_shape=(32, 32, 3),
        seed=0,
    )
    save_keras(small, tmp_path / "start.keras")
    out = tmp_path / "run"
    result = run(common(cifar_dir, out, 1) + ["--init-from", str(tmp_path / "start.keras"), "--no-plots"])
    assert result.returncode == 0, result.stderr
    assert f"Total params: {small.count_params():,}" in result.stdout  # that model, not the documented one
    model, extra = minicnn.load_model(out / "model.npz")
    assert [type(l).__name__ for l in model.layers] == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    assert not np.array_equal(model.layers[0].params["W"], small.layers[0].params["W"])  # it trained
    assert extra["config"]["init_from"] == str(tmp_path / "start.keras")
    wrong = minicnn.Sequential([Flatten(), Dense(3)], input_shape=(32, 32, 3), seed=0)
    save_keras(wrong, tmp_path / "wrong.keras")
    result = run(common(cifar_dir, tmp_path / "run2", 1) + ["--init-from", str(tmp_path / "wrong.keras")])
    assert result.returncode == 2 and "10 class scores" in result.stderr


def test_overwrite_replaces_a_run_folder_and_excludes_resume(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "examples"))
    import train_cifar

    (tmp_path / "history.csv").write_text("epoch\n")
    assert train_cifar.parse_args(["--out", str(tmp_path), "--overwrite"]).overwrite
    assert not train_cifar.parse_args(["--out", str(tmp_path / "fresh")]).overwrite
    for argv in (["--out", str(tmp_path)], ["--out", str(tmp_path), "--resume", "--overwrite"]):
        with pytest.raises(SystemExit) as stop:
            train_cifar.parse_args(argv)
        assert stop.value.code == 2
    assert "already holds a run (history.csv)" in capsys.readouterr().err


@pytest.mark.slow
def test_model_resnet_trains_and_a_resume_keeps_its_model(cifar_dir, tmp_path):
    out = tmp_path / "run"
    result = run(common(cifar_dir, out, 1) + ["--verbose", "0", "--model", "resnet"])
    assert result.returncode == 0, result.stderr
    assert "Total params: 1,115,938" in result.stdout  # resnet8
    for name in ["model.npz", "summary.txt", "history.csv", "metrics.json", "predictor.npz"] + PICTURES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["config"]["model"] == "resnet"
    again = run(common(cifar_dir, out, 2) + ["--verbose", "0", "--no-plots", "--resume", "--model", "course"])
    assert again.returncode == 2 and "--model resnet vs course" in again.stderr, again.stderr
    refused = run(common(cifar_dir, tmp_path / "other", 1) + ["--model", "resnet", "--dropout", "0.1,0.1,0.1"])
    assert refused.returncode == 2 and "--model resnet has none" in refused.stderr
