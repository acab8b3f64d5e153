"""Bad input gets a clear error before any work; files from strangers never run code; nothing is lost."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import host, mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn import CheckpointError, Sequential, TrainingDiverged
from minicnn.callbacks import Callback
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import SGD, Adam

ROOT = Path(__file__).resolve().parents[1]


def small_model(seed=0):
    return Sequential(
        [Conv2D(2, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Flatten(), Dense(3)],
        input_shape=(4, 4, 1),
        seed=seed,
    )


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 4, 1)).astype(np.float32), rng.integers(0, 3, n)


# -- inputs ----------------------------------------------------------------------------------
X, Y = data()
BAD_X = [
    (X[0], r"rank 4, shape \(N, 4, 4, 1\); got rank 3"),
    (X.reshape(8, 16, 1, 1), r"shape \(N, 4, 4, 1\), got \(8, 16, 1, 1\)"),
    (X.astype(str), "real numbers"),
    (X[:0], "empty"),
    (np.where(np.arange(8)[:, None, None, None] == 5, np.nan, X), "example 5 holds NaN or inf"),
    (np.where(np.arange(8)[:, None, None, None] == 2, np.inf, X), "example 2 holds NaN or inf"),
    ([[1.0]], "must be an array"),
]


@pytest.mark.parametrize("x, message", BAD_X, ids=["rank", "shape", "dtype", "empty", "nan", "inf", "list"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_bad_images_are_refused_with_expected_and_received(x, message, method):
    model = small_model()
    before = host(model.layers[0].params["W"]).copy()
    with pytest.raises(ValueError, match=message):
        if method == "fit":
            model.fit(x, Y[: len(x)] if hasattr(x, "__len__") else Y, optimizer=SGD(model), epochs=1, verbose=0)
        elif method == "evaluate":
            model.evaluate(x, Y)
        else:
            model.predict(x)
    np.testing.assert_array_equal(before, host(model.layers[0].params["W"]))


@pytest.mark.parametrize(
    "y, message",
    [
        (Y.astype(np.float32), "integer class ids"),
        (np.eye(3, dtype=np.int64)[Y], "one-hot"),
        (Y[:5], "x has 8 examples but y has 5 labels"),
        (np.where(np.arange(8) == 3, 3, Y), r"labels must be in \[0, 3\), got values from 0 to 3"),
        (np.where(np.arange(8) == 3, -1, Y), r"labels must be in \[0, 3\), got values from -1"),
    ],
    ids=["float", "onehot", "length", "too-big", "negative"],
)
def test_bad_labels_are_refused(y, message):
    model = small_model()
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, optimizer=SGD(model), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(X, y)


def test_forward_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(N, 4, 4, 1\)"):
        small_model().forward(np.zeros((2, 5, 5, 1), np.float32))


def test_bad_validation_data_and_batch_size():
    model = small_model()
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, Y, optimizer=SGD(model), epochs=1, verbose=0, validation_data=(X[:, :2], Y))
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, Y, optimizer=SGD(model), epochs=1, verbose=0, batch_size=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv2D(0, 3), "filters must be a positive int, got 0"),
        (lambda: Conv2D(4, -1), "kernel_size must be positive"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size must be a positive int or a pair"),
        (lambda: Conv2D(4, 3, padding="full"), "padding must be 'same', 'valid' or a non-negative int, got 'full'"),
        (lambda: Conv2D(4, 3, strides=0), "strides must be positive"),
        (lambda: MaxPool2D(0), "pool_size must be positive"),
        (lambda: Dense(-3), "units must be a positive int, got -3"),
        (lambda: Dropout(1.0), r"rate must be in \[0, 1\), got 1.0"),
        (lambda: LeakyReLU(-1), "alpha must be a non-negative number"),
    ],
)
def test_layer_arguments_are_checked_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layers, message",
    [
        (
            [Conv2D(2, 5)],
            r"layer 0 \(conv2d, Conv2D\) on input \(None, 4, 4, 1\).*kernel 5x5 is larger than its padded input 4x4",
        ),
        ([MaxPool2D(2), MaxPool2D(3)], r"layer 1 .*pool 3x3 is larger than its input 2x2"),
        ([Dense(3)], r"layer 0 \(dense, Dense\).*\(features,\).*Flatten"),
    ],
)
def test_impossible_shapes_are_refused_at_build_time(layers, message):
    with pytest.raises(ValueError, match=message):
        Sequential(layers, input_shape=(4, 4, 1))


# -- divergence --------------------------------------------------------------------------------
class SaveEachEpoch(Callback):
    def __init__(self, model, path):
        self.model, self.path = model, path

    def on_epoch_end(self, epoch, logs):
        self.model.save(self.path, extra={"epoch": epoch + 1})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_stops_with_epoch_step_and_advice_and_keeps_checkpoint(tmp_path):
    x, y = data(64)
    model = small_model()
    opt = SGD(model, lr=1e-3)
    path = tmp_path / "model.npz"
    model.fit(x, y, optimizer=opt, epochs=1, verbose=0, callbacks=[SaveEachEpoch(model, path)])
    saved = path.read_bytes()
    opt.lr = 1e30  # guaranteed to blow up
    with pytest.raises(TrainingDiverged, match=r"epoch 2, by step \d+.*learning rate was 1e\+30.*lower"):
        model.fit(
            x * 1e3,
            y,
            optimizer=opt,
            epochs=3,
            initial_epoch=1,
            verbose=0,
            batch_size=8,
            callbacks=[SaveEachEpoch(model, path)],
        )
    assert path.read_bytes() == saved  # the last good checkpoint is untouched
    assert small_model(seed=5).load_weights(path)["epoch"] == 1


# -- checkpoint files ----------------------------------------------------------------------------
def test_checkpoint_gets_ordinary_file_permissions(tmp_path):
    path = tmp_path / "model.npz"
    small_model().save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "model.npz"
    model.save(path, extra={"epoch": 1})

    def crash(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        small_model(seed=9).save(path, extra={"epoch": 2})
    monkeypatch.undo()
    assert small_model(seed=3).load_weights(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind


def test_process_killed_before_rename_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    small_model().save(path, extra={"epoch": 1})
    # A real process that dies (no cleanup, no exception handling) right before the rename.
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_robustness import small_model
os.replace = lambda *a: os._exit(9)
small_model(seed=4).save({str(path)!r}, extra={{"epoch": 2}})
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 9
    assert small_model(seed=3).load_weights(path)["epoch"] == 1


def _params(model):
    return [host(p).copy() for layer in model.layers for p in layer.params.values()]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_damaged_checkpoint_is_refused_and_model_unchanged(tmp_path, damage):
    path = tmp_path / "model.npz"
    small_model(seed=1).save(path, optimizer=Adam(small_model()))
    raw = path.read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) * 2 // 3]
    elif damage == "flip":
        raw = raw[:600] + bytes([raw[600] ^ 0xFF]) + raw[601:]
    elif damage == "empty":
        raw = b""
    else:
        raw = b"definitely not a zip file\n" * 10
    path.write_bytes(raw)
    model = small_model(seed=2)
    before = _params(model)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(model)))


def test_missing_file_and_foreign_npz(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        small_model().load_weights(tmp_path / "nope.npz")
    np.savez(tmp_path / "foreign.npz", W=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minicnn checkpoint"):
        small_model().load_weights(tmp_path / "foreign.npz")


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(CheckpointError, match=re.escape("has dtype |O: only numbers and text are read")):
        small_model().load_weights(path)


def test_optimizer_state_mismatch_is_refused_before_anything_changes(tmp_path):
    path = tmp_path / "model.npz"
    model = small_model(seed=1)
    model.save(path, optimizer=SGD(model, momentum=0.9))
    target = small_model(seed=2)
    before = _params(target)
    with pytest.raises(CheckpointError, match="optimizer state is for 'SGD', not Adam"):
        target.load_weights(path, optimizer=Adam(target))
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(target)))
    small_model(seed=1).save(path)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        target.load_weights(path, optimizer=Adam(target))


def _checkpoint_bytes():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        model = small_model()
        opt = Adam(model)
        x, y = data()
        model.fit(x, y, optimizer=opt, epochs=1, verbose=0)
        model.save(Path(d) / "m.npz", optimizer=opt, extra={"mean": np.ones(3, np.float32), "epoch": 1})
        return (Path(d) / "m.npz").read_bytes()


VALID = _checkpoint_bytes()
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, len(VALID)),
)
def test_fuzz_load_weights_only_raises_checkpoint_error(tmp_path, edits, cut):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(mutated(VALID, edits, cut))
    model = small_model(seed=7)
    opt = Adam(model)
    before = _params(model)
    try:
        model.load_weights(path, optimizer=opt)
    except CheckpointError:
        assert all(np.array_equal(a, b) for a, b in zip(before, _params(model)))  # untouched
        assert opt.iterations == 0


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_checkpoint_error(tmp_path, raw, loader):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(raw)
    result = loader.call("crafted_files", "load_weights_keeping", str(path))  # in a child: a crash fails here
    assert result.is_refusal("CheckpointError"), f"{result.outcome}: {result.error}: {result.message}"


def test_no_unsafe_deserialisation_anywhere_in_the_library():
    """A guard against regressions: no plain pickle.load, allow_pickle=True or tar.extractall."""
    offenders = []
    for path in (ROOT / "minicnn").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"allow_pickle\s*=\s*True", r"pickle\.loads?\(", r"\.extractall\(", r"\.extract\("):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert offenders == []
