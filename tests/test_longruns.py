"""Long runs survive what laptops, clusters and first-time users do to them (issue 14).

Signals (SIGTERM, SIGHUP) are real signals sent to real processes here.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import checkpoint as checkpoint_module
from minicnn.callbacks import ModelCheckpoint
from minicnn.interrupts import Interrupted, exit_code, pending_signal, signals_as_interrupts

from cifar_fixture import make_cifar_folder

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "examples" / "train_cifar.py")]


def run(args, **kw):
    return subprocess.run(TRAIN + args, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    make_cifar_folder(root, rows_per_batch=40, test_rows=60)
    return root


def common(cifar_dir, out, epochs):
    return ["--backend", "numpy", "--data-dir", str(cifar_dir), "--out", str(out), "--epochs", str(epochs),
            "--val-split", "40", "--batch-size", "32", "--seed", "3", "--no-plots"]


def weights(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k.startswith(("layers/", "optimizer/"))}


def assert_same_weights(a_path, b_path):
    a, b = weights(a_path), weights(b_path)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def small_model(seed=0):
    from minicnn.layers import Conv2D, Dense, Flatten
    return minicnn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=seed)


# -- signals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signals_become_interrupted_and_handlers_come_back(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as info:
        with signals_as_interrupts():
            os.kill(os.getpid(), signum)
            time.sleep(5)                               # the handler raises long before this ends
    assert isinstance(info.value, Interrupted) and info.value.signum == signum
    assert exit_code(info.value) == code == info.value.exit_code
    assert signal.getsignal(signum) is before
    assert exit_code(KeyboardInterrupt()) == 130       # a plain Ctrl-C


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)     # as under nohup
    try:
        with signals_as_interrupts():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_deferred_signal_is_recorded_and_a_second_one_raises():
    with signals_as_interrupts(defer=True):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert pending_signal() == signal.SIGTERM          # recorded, nothing raised
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert pending_signal() is None


def test_sigterm_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    model = small_model()
    optimizer = minicnn.optim.Adam(model)
    path = tmp_path / "model.npz"
    ModelCheckpoint(path, model, optimizer).on_epoch_end(0, {})
    old = path.read_bytes()
    real_savez = np.savez

    def savez_then_signal(f, **arrays):      # half the file is on disk when SIGTERM arrives
        real_savez(f, **arrays)
        f.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez_then_signal)
    with pytest.raises(Interrupted), signals_as_interrupts():
        ModelCheckpoint(path, model, optimizer).on_epoch_end(1, {})
    assert path.read_bytes() == old and sorted(os.listdir(tmp_path)) == ["model.npz"]


@pytest.fixture(scope="module")
def straight_run(cifar_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    result = run(common(cifar_dir, out, 3) + ["--verbose", "0"])
    assert result.returncode == 0, result.stderr
    return out


def start_and_signal_in_epoch_2(args, out, signum):
    """Start the script, send ``signum`` once epoch 1's checkpoint has landed; return (returncode, stderr)."""
    proc = subprocess.Popen(TRAIN + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "model.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_cleanly_then_resume_gives_the_uninterrupted_weights(
        cifar_dir, straight_run, tmp_path, signum, code):
    out = tmp_path / "interrupted"
    returncode, err = start_and_signal_in_epoch_2(common(cifar_dir, out, 3) + ["--verbose", "0"], out, signum)
    assert returncode == code, err
    assert f"interrupted ({signal.Signals(signum).name})" in err and "--resume" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "model.npz", "summary.txt"]   # no temporaries
    assert ModelCheckpoint.completed_epochs(out / "model.npz") >= 1

    resumed = run(common(cifar_dir, out, 3) + ["--verbose", "0", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(straight_run / "model.npz", out / "model.npz")
