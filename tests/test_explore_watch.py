"""Watching a run: the filter timeline callback, ``WatchedRun`` reloading what changed, ``/api/run`` and
``/api/filters`` while a run is in progress, and ``python -m minicnn.explore RUN_DIR --watch``."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from explore_fixture import serving, tiny_run
from test_explore import call, start_command

import minicnn
from minicnn.callbacks import FilterTimeline, read_filter_timeline
from minicnn.checkpoint import write_checkpoint
from minicnn.explore import Explorer, WatchedRun
from minicnn.explore.__main__ import parse_args
from minicnn.interop import load_any
from minicnn.layers import Conv2D, Dense, Flatten, ReLU
from minicnn.layers.base import grad_enabled
from minicnn.optim import Adam


def small_model(seed=0):
    return minicnn.Sequential([Conv2D(3, 3), ReLU(), Flatten(), Dense(10)], input_shape=(6, 6, 3), seed=seed)


def small_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 6, 6, 3)).astype(np.float32), rng.integers(0, 10, 16)


def fit(model, path, epochs, initial_epoch=0, append=False):
    x, y = small_data()
    timeline = FilterTimeline(path, model, append=append)
    optimizer = Adam(model, lr=1e-2)
    model.fit(
        x,
        y,
        optimizer=optimizer,
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=8,
        verbose=0,
        seed=0,
        callbacks=[timeline],
    )


# -- the timeline file ---------------------------------------------------------------------------
def test_the_timeline_holds_every_epoch_and_a_resume_keeps_the_earlier_ones(tmp_path):
    path = tmp_path / "filters.npz"
    model = small_model()
    start = model.layers[0].params["W"].copy()
    fit(model, path, 3)
    first = read_filter_timeline(path)
    assert first["epochs"].tolist() == [0, 1, 2, 3] and first["layer"] == 0
    assert first["kernels"].shape == (4, 3, 3, 3, 3) and first["kernels"].dtype == np.float32
    np.testing.assert_array_equal(first["kernels"][0], start)  # epoch 0: the random start
    np.testing.assert_array_equal(first["kernels"][-1], model.layers[0].params["W"])
    assert not np.allclose(first["kernels"][1], first["kernels"][0])  # it learnt something each epoch
    # Resumed after epoch 2 (the third epoch lost): epochs 0-2 kept as written, 3-6 from this run.
    fit(model, path, 6, initial_epoch=2, append=True)
    resumed = read_filter_timeline(path)
    assert resumed["epochs"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(resumed["kernels"][:3], first["kernels"][:3])
    # A fresh run in the same place starts a new timeline.
    fit(small_model(seed=1), path, 1)
    assert read_filter_timeline(path)["epochs"].tolist() == [0, 1]


def hostile(tmp_path, arrays, name="filters.npz"):
    path = tmp_path / name
    write_checkpoint(path, arrays)
    return path


GOOD = {
    "filters/epochs": np.arange(2),
    "filters/kernels": np.zeros((2, 3, 3, 3, 4), np.float32),
    "filters/layer": np.asarray(0),
}


def refused_in_child(loader, path, message):
    """The reader, run on hostile bytes in the loader's child process (a crash or a hang fails this
    test alone): refused with a CheckpointError whose message matches and names the file."""
    result = loader.call("crafted_files", "read_timeline", str(path))
    assert result.is_refusal("CheckpointError"), result
    assert re.search(message, result.message) and path.name in result.message, result.message


@pytest.mark.parametrize(
    "change, message",
    [
        ({"filters/epochs": np.array([0, 0])}, "increasing"),
        ({"filters/epochs": np.array([-1, 0])}, ">= 0"),
        ({"filters/epochs": np.arange(2.0)}, "integers"),
        ({"filters/kernels": np.zeros((3, 3, 3, 3, 4), np.float32)}, "with 2 epochs"),
        ({"filters/kernels": np.zeros((2, 9), np.float32)}, "kernels must be floats"),
        ({"filters/layer": np.asarray([0, 1])}, "layer must be one integer"),
        ({"filters/extra": np.zeros(1)}, "a filter timeline holds"),
        ({"layers/00_Conv2D/W": np.zeros(1)}, "unexpected member"),
    ],
)
def test_a_hostile_or_wrong_timeline_is_refused(tmp_path, loader, change, message):
    refused_in_child(loader, hostile(tmp_path, {**GOOD, **change}), message)


def test_a_timeline_with_objects_or_a_forged_header_is_refused_before_numpy_reads_it(tmp_path, loader):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"filters/epochs": np.array([{"a": 1}], dtype=object)})  # would unpickle on load
    refused_in_child(loader, pickled, "only numbers and text")
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(forged, "w", zipfile.ZIP_DEFLATED) as z:  # claims 10^12 floats in a few bytes
        z.writestr(
            "filters/kernels.npy",
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (10**12,), }",
        )
    refused_in_child(loader, forged, "malformed|declares")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    refused_in_child(loader, tmp_path / "junk.npz", "not a readable filter timeline")


# -- the watched folder ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("watch"))


def save_changed(model_path, target, scale, epoch):
    """The fixture's model with its weights scaled, saved (atomically) as ``target`` with ``epoch``."""
    model, extra = load_any(model_path)
    for layer in model.layers:
        for p in layer.params.values():
            p *= scale
    model.save(target, extra={**extra, "epoch": epoch})
    return model


def tiles(reply):
    return [base64.b64decode(t) for t in reply["tiles"]]


def test_a_watched_folder_waits_then_reloads_each_changed_file(run, tmp_path):
    model_path, _, test = run
    folder = tmp_path / "run"
    watched = WatchedRun(folder, test=test)
    state = watched.run()
    assert (state["watching"], state["started"], state["has_model"], state["epochs"]) == (True, False, False, 0)
    with pytest.raises(Exception, match="waiting for the first epoch"):
        watched.filters()
    folder.mkdir()
    shutil.copy(model_path.parent / "history.csv", folder / "history.csv")
    state = watched.run()
    assert state["started"] and not state["has_model"] and state["epochs"] == 2 and state["version"] == 0
    save_changed(model_path, folder / "model.npz", 1.0, epoch=2)
    state = watched.run()
    assert state["has_model"] and state["version"] == 1 and state["model_epoch"] == 2 and state["accuracy"] is not None
    before = watched.filters()
    assert before["epoch"] == 2 and before["timeline"] is None
    assert watched.run()["version"] == 1  # nothing changed: nothing read again
    # The training replaces the checkpoint (os.replace): the next poll loads it and predicts again.
    changed = save_changed(model_path, folder / "model.npz", -1.0, epoch=3)
    state = watched.run()
    assert state["version"] == 2 and state["model_epoch"] == 3
    assert tiles(watched.filters()) != tiles(before)  # as the last run() read them
    got = watched.forward({"index": 0})["probs"]
    np.testing.assert_allclose(got, changed.predict(watched.current.standardise(test[0][:1]))[0], rtol=1e-5)
    # A damaged file keeps what is shown, says so, and is read again at the next poll.
    (folder / "model.npz").write_bytes(b"half a file")
    state = watched.run()
    assert state["version"] == 2 and state["model_epoch"] == 3 and "model.npz could not be read" in state["problem"]
    assert str(folder / "model.npz") in state["problem"]  # the run's file, not the private copy
    assert watched.forward({"index": 0})["probs"] == got
    assert "could not be read" in watched.run()["problem"]  # tried again, still damaged
    save_changed(model_path, folder / "model.npz", 1.0, epoch=4)
    state = watched.run()
    assert state["version"] == 3 and state["model_epoch"] == 4 and state["problem"] is None
    watched.close()


def test_api_run_and_filters_over_http_while_a_run_grows(run, tmp_path):
    model_path, _, test = run
    folder = tmp_path / "run"
    folder.mkdir()
    watched = WatchedRun(folder, test=test)
    with serving(watched) as base:
        status, reply = call(base, "/api/run")
        assert status == 200 and reply["has_model"] is False and reply["history"] is None
        status, reply = call(base, "/api/filters")
        assert status == 404 and "waiting for the first epoch" in reply["error"]
        assert call(base, "/api/model")[0] == 404
        # A run as train_cifar.py writes it: history, checkpoint, timeline.
        shutil.copy(model_path.parent / "history.csv", folder / "history.csv")
        model = save_changed(model_path, folder / "model.npz", 1.0, epoch=2)
        kernels = np.stack([model.layers[0].params["W"] * s for s in (0.5, 1.0, 2.0)])
        write_checkpoint(folder / "filters.npz", {**GOOD, "filters/epochs": np.arange(3), "filters/kernels": kernels})
        status, reply = call(base, "/api/run")
        assert status == 200 and reply["has_model"] and reply["epochs"] == 2 and len(reply["history"]["loss"]) == 2
        assert reply["test_images"] == 40 and len(reply["per_class"]) == 10
        status, reply = call(base, "/api/filters")
        assert status == 200 and reply["watching"] and reply["timeline"]["epochs"] == [0, 1, 2]
        assert len(reply["timeline"]["tiles"]) == 3 and len(reply["timeline"]["tiles"][1]) == 4
        assert reply["timeline"]["tiles"][1] == reply["tiles"]  # epoch 1's snapshot is these very weights
        # A hostile timeline is refused: the last good one stays.
        (folder / "filters.npz").write_bytes(b"PK\x03\x04 not really")
        assert "filters.npz could not be read" in call(base, "/api/run")[1]["problem"]
        status, reply = call(base, "/api/filters")
        assert status == 200 and reply["timeline"]["epochs"] == [0, 1, 2]
    watched.close()


def test_a_finished_run_answers_with_its_state_and_timeline(run):
    model_path, _, test = run
    model, extra = load_any(model_path)
    reply = Explorer(model, extra, test=test, run_dir=model_path.parent).run()
    assert (reply["watching"], reply["has_model"], reply["epochs"], reply["test_images"]) == (False, True, 2, 40)


def test_the_watch_command_starts_before_the_first_epoch(run, tmp_path):
    _, data_dir, _ = run
    folder = tmp_path / "not-yet"
    proc, base = start_command(folder, "--watch", "--data-dir", data_dir)
    try:
        status, reply = call(base, "/api/run")
        assert status == 200 and reply["watching"] and not reply["started"] and reply["run_dir"] == str(folder)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out, err
    assert parse_args([str(folder), "--watch"]).test_limit == 1000
    assert parse_args([str(folder), "--watch", "--test-limit", "5"]).test_limit == 5
    with pytest.raises(SystemExit):
        parse_args([str(folder), "--watch", "--export-page", str(tmp_path)])


def test_a_finished_run_folder_shows_its_timeline(run, tmp_path):
    model_path, _, _ = run
    folder = tmp_path / "finished"
    shutil.copytree(model_path.parent, folder)
    write_checkpoint(folder / "filters.npz", GOOD)
    proc, base = start_command(folder)
    try:
        status, reply = call(base, "/api/filters")
        assert status == 200 and reply["timeline"]["epochs"] == [0, 1] and len(reply["timeline"]["tiles"][0]) == 4
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_explore_beside_a_run_warns_and_goes_on_when_the_explorer_cannot_start(tmp_path):
    from minicnn.run.explore import explorer_beside

    said = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with explorer_beside(tmp_path / "run", taken.getsockname()[1], tmp_path, say=said.append) as address:
            assert address is None
    assert len(said) == 1 and said[0].startswith("warning: the explorer did not start"), said


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_the_explorer_process_goes_when_the_training_is_killed():
    """--explore's process is told to stop when the training dies, even by SIGKILL (no orphan left)."""
    code = (
        "import os, signal, subprocess, sys; from minicnn.run.explore import _lower_priority; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=_lower_priority); "
        "print(p.pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the explorer's process outlived the killed training")


def test_reading_while_training_replaces_the_files_never_sees_half_of_one(run, tmp_path):
    """A writer replaces model.npz and history.csv as training does (atomically), as fast as it can,
    while the reader polls: every read is whole, and every model shown is one of those written."""
    model_path, _, test = run
    folder = tmp_path / "busy"
    folder.mkdir()
    shutil.copy(model_path.parent / "history.csv", folder / "history.csv")
    kernels, files = {}, {}
    for epoch, scale in ((0, -1.0), (1, 1.0)):  # two checkpoints, made before the writer starts
        kernels[epoch] = save_changed(model_path, folder / "model.npz", scale, epoch=epoch).layers[0].params["W"].copy()
        files[epoch] = (folder / "model.npz").read_bytes()
    history = (folder / "history.csv").read_bytes()
    watched = WatchedRun(folder, test=test)
    stop = threading.Event()

    def replace(name, data):
        """As training writes: a temporary file, then renamed over the old one."""
        (folder / f".{name}.tmp").write_bytes(data)
        os.replace(folder / f".{name}.tmp", folder / name)

    def write():
        epoch = 1
        while not stop.is_set():
            epoch = 1 - epoch
            replace("model.npz", files[epoch])
            replace("history.csv", history)

    failures = []

    def ask():  # a page's requests meanwhile: the old model answers while the new one loads
        while not stop.is_set():
            try:
                assert abs(sum(watched.forward({"index": 0})["probs"]) - 1) < 1e-5
            except Exception as exc:
                failures.append(repr(exc))

    writer, asker = threading.Thread(target=write), threading.Thread(target=ask)
    writer.start()
    asker.start()
    try:
        versions = set()
        for _ in range(3000):  # until a few versions were read, the writer given time between polls
            time.sleep(0.002)
            if len(versions) >= 4:
                break
            state = watched.run()
            assert state["problem"] is None and state["epochs"] == 2, state["problem"]
            shown = watched.current.model.layers[0].params["W"]
            np.testing.assert_array_equal(shown, kernels[state["model_epoch"]])
            versions.add(state["version"])
    finally:
        stop.set()
        writer.join()
        asker.join()
        watched.close()
    assert len(versions) > 1  # it did read new versions while they were being replaced
    assert not failures, failures[:3]
    assert grad_enabled()  # no_grad is one flag of the process: the shared lock kept its uses apart
