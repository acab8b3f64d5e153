"""Long runs survive what laptops, clusters and first-time users do to them (issue 14).

Signals (SIGTERM, SIGHUP) are real signals sent to real processes here. A full or read-only disk is a
real tmpfs where this machine lets the tests mount one (as root), else the error is injected at the write.
"""

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import make_cifar_folder, run_train, script_args
from conftest import signals_at_default

import minicnn
from minicnn import checkpoint as checkpoint_module
from minicnn.callbacks import ModelCheckpoint
from minicnn.interrupts import Interrupted, exit_code, pending_signal, signals_as_interrupts

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "examples" / "train_cifar.py")]


run = run_train


def common(cifar_dir, out, epochs):
    return script_args(cifar_dir, out, "--no-plots", epochs=epochs, val_split=40, batch_size=32, seed=3)


def fetch_args(data_dir, out, url):
    """The script's options for a run that must find (or fail to download) its data: NumPy, these folders, ``url``."""
    return script_args(data_dir, out, url=url)


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
@pytest.fixture
def signal_at_default(request):
    """The test's signal at its default action for the test (see ``conftest.signals_at_default``), restored after."""
    signum = request.node.callspec.params["signum"]
    previous = signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
    yield
    signal.signal(signum, previous)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signals_become_interrupted_and_handlers_come_back(signal_at_default, signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as info:
        with signals_as_interrupts():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises long before this ends
    assert isinstance(info.value, Interrupted) and info.value.signum == signum
    assert exit_code(info.value) == code == info.value.exit_code
    assert signal.getsignal(signum) is before
    assert exit_code(KeyboardInterrupt()) == 130  # a plain Ctrl-C


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
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
        assert pending_signal() == signal.SIGTERM  # recorded, nothing raised
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

    def savez_then_signal(f, **arrays):  # half the file is on disk when SIGTERM arrives
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
    proc = subprocess.Popen(
        TRAIN + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=signals_at_default
    )
    deadline = time.time() + 120
    while not (out / "model.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_cleanly_then_resume_gives_the_uninterrupted_weights(
    cifar_dir, straight_run, tmp_path, signum, code
):
    out = tmp_path / "interrupted"
    returncode, err = start_and_signal_in_epoch_2(common(cifar_dir, out, 3) + ["--verbose", "0"], out, signum)
    assert returncode == code, err
    assert f"interrupted ({signal.Signals(signum).name})" in err and "--resume" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [
        "filters.npz",
        "history.csv",
        "model.npz",
        "summary.txt",
    ]  # no temporaries
    assert ModelCheckpoint.completed_epochs(out / "model.npz") >= 1

    resumed = run(common(cifar_dir, out, 3) + ["--verbose", "0", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(straight_run / "model.npz", out / "model.npz")


# -- a full disk, an unwritable --out ------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(path, size, read_only=False):
    """Mount a small tmpfs on ``path`` and yield True, or yield False where this machine forbids mount."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs", str(path)],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill_up(folder, monkeypatch, mounted):
    """Make ``folder`` full: on a real tmpfs, write a filler file until ENOSPC; otherwise make
    every ``os.fsync`` fail with ENOSPC, as a full disk (or NFS) reports it at the flush."""
    if mounted:
        with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\1" * 4096)
        return

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)


def test_full_disk_keeps_every_previous_file_byte_for_byte_and_no_temporary(tmp_path, monkeypatch):
    from minicnn.callbacks import CSVLogger
    from minicnn.outputs import OutputError, write_text

    disk = tmp_path / "disk"
    with tmpfs(disk, "256k") as mounted:
        model = small_model()
        optimizer = minicnn.optim.Adam(model)
        ckpt, log = ModelCheckpoint(disk / "model.npz", model, optimizer), CSVLogger(disk / "history.csv")
        log.on_epoch_begin(0, {})
        log.on_epoch_end(0, {"loss": 1.0})
        ckpt.on_epoch_end(0, {})
        write_text(disk / "metrics.json", "{}\n")
        before = {p.name: p.read_bytes() for p in disk.iterdir()}
        fill_up(disk, monkeypatch, mounted)
        model.layers[0].params["W"][...] += 1  # epoch 2 changed the weights
        for write, name in [
            (lambda: ckpt.on_epoch_end(1, {}), "model.npz"),
            (lambda: log.on_epoch_end(1, {"loss": 0.5}), "history.csv"),
            (lambda: write_text(disk / "metrics.json", '{"a": 1}\n' * 5000), "metrics.json"),
        ]:
            with pytest.raises(OutputError) as info:
                write()
            message = str(info.value)
            assert str(disk / name) in message and "No space left on device (ENOSPC)" in message, message
            assert info.value.errno == errno.ENOSPC
        monkeypatch.undo()
        after = {p.name: p.read_bytes() for p in disk.iterdir() if p.name != "filler"}
        assert after == before  # byte for byte, and no temporary
        assert small_model(seed=7).load_weights(disk / "model.npz")["epoch"] == 1


def test_write_failures_name_the_path_and_the_cause(tmp_path):
    from minicnn.outputs import OutputError, check_writable, write_text

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker / "run", blocker):
        with pytest.raises(OutputError) as info:
            check_writable(out)
        assert str(out) in str(info.value) and ("ENOTDIR" in str(info.value) or "EEXIST" in str(info.value))
    with pytest.raises(OutputError, match=r"a-file/summary\.txt: .*(ENOTDIR|EEXIST)"):
        write_text(blocker / "summary.txt", "")
    check_writable(tmp_path / "new" / "run")  # made, probed, and left empty
    assert list((tmp_path / "new" / "run").iterdir()) == []


def test_read_only_out_is_refused_before_training(cifar_dir, tmp_path):
    cases = [(tmp_path / "a-file" / "run", "ENOTDIR")]  # a path through a regular file
    (tmp_path / "a-file").write_text("")
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as mounted:
        if mounted:
            cases.append((tmp_path / "ro" / "run", "EROFS"))  # a read-only file system, even for root
        for out, code in cases:
            result = run(common(cifar_dir, out, 1) + ["--verbose", "0"])
            assert result.returncode == 1, result.stderr
            assert f"error: cannot write {out}" in result.stderr and code in result.stderr, result.stderr
            assert "Traceback" not in result.stderr and "data:" not in result.stdout  # nothing was loaded


FSYNC_FAILS_AT_SECOND_CHECKPOINT = """
import errno, os, runpy, sys
real_fsync, calls = os.fsync, []
def fsync(fd):   # the second checkpoint's temporary file meets a full disk
    if ".model.npz." in os.readlink(f"/proc/self/fd/{fd}"):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_fsync(fd)
os.fsync = fsync
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_disk_full_during_training_stops_naming_the_checkpoint_and_resume_completes(cifar_dir, straight_run, tmp_path):
    # The checkpoint (weights and Adam's two slots) is 13 MB: a 20 MB disk holds it once, not twice.
    with tmpfs(tmp_path / "disk", "20m") as mounted:
        out = tmp_path / "disk" / "run"
        args = common(cifar_dir, out, 3) + ["--verbose", "0"]
        if mounted:
            result = run(args)
        else:
            result = subprocess.run(
                [sys.executable, "-c", FSYNC_FAILS_AT_SECOND_CHECKPOINT] + TRAIN[1:] + args,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert result.returncode == 1, result.stderr
        assert f"error: cannot write {out / 'model.npz'}: No space left on device (ENOSPC)" in result.stderr
        assert "holds 1 completed epoch(s)" in result.stderr and "--resume" in result.stderr
        assert "Traceback" not in result.stderr
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
        saved = tmp_path / "saved"
        shutil.copytree(out, saved)
    # The checkpoint is epoch 1's, whole: resuming elsewhere ends with the uninterrupted weights.
    resumed = run(common(cifar_dir, saved, 3) + ["--verbose", "0", "--resume"])
    assert resumed.returncode == 0 and "resuming after epoch 1" in resumed.stdout, resumed.stderr
    assert_same_weights(straight_run / "model.npz", saved / "model.npz")


# -- out of (GPU) memory ---------------------------------------------------------------------------
# Stand-ins for CuPy's classes, recognised by module and name: the library never imports CuPy for this.
CupyOutOfMemory = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})
CublasError = type("CUBLASError", (RuntimeError,), {"__module__": "cupy_backends.cuda.libs.cublas"})
CudaRuntimeError = type("CUDARuntimeError", (RuntimeError,), {"__module__": "cupy_backends.cuda.api.runtime"})


def test_out_of_memory_is_recognised_without_cupy():
    from minicnn.backend import is_out_of_memory, requested_bytes

    oom = CupyOutOfMemory("Out of memory allocating 1,073,741,824 bytes (allocated so far: 2,147,483,648 bytes).")
    assert is_out_of_memory(oom) and requested_bytes(oom) == 2**30
    assert is_out_of_memory(type("OutOfMemoryError", (Exception,), {"__module__": "cupy.cuda.memory"})("x"))
    assert is_out_of_memory(CublasError("CUBLAS_STATUS_ALLOC_FAILED"))
    assert is_out_of_memory(CudaRuntimeError("cudaErrorMemoryAllocation: out of memory"))
    assert not is_out_of_memory(CudaRuntimeError("cudaErrorInvalidValue: invalid argument"))
    assert not is_out_of_memory(ValueError("Out of memory allocating 5 bytes"))  # not CuPy's
    try:
        np.empty(2**40, np.float32)  # NumPy's own
    except MemoryError as exc:
        assert is_out_of_memory(exc) and requested_bytes(exc) == 2**42
    assert requested_bytes(MemoryError()) is None


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_cifar_under_test", ROOT / "examples" / "train_cifar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_out_of_gpu_memory_names_the_batch_size_and_the_memory_and_keeps_the_checkpoint(
    cifar_dir, tmp_path, monkeypatch, capsys
):
    from minicnn.layers import Conv2D

    real_forward = Conv2D.forward

    out = tmp_path / "run"

    def forward(self, x, training=False):  # CuPy's allocation fails in epoch 2's first step
        if training and (out / "model.npz").exists():  # epoch 1's checkpoint is written
            raise CupyOutOfMemory("Out of memory allocating 1,610,612,736 bytes (allocated so far: 0 bytes).")
        return real_forward(self, x, training)

    monkeypatch.setattr(Conv2D, "forward", forward)
    with pytest.raises(SystemExit) as info:
        load_script().main(common(cifar_dir, out, 3) + ["--verbose", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    assert "out of GPU memory with batches of 32 (asked for 1,536.0 MiB more)" in err, err
    assert "smaller batch size, e.g. 16, in a new run" in err and "holds 1 completed epoch(s)" in err
    assert sorted(p.name for p in out.iterdir()) == ["filters.npz", "history.csv", "model.npz", "summary.txt"]
    assert ModelCheckpoint.completed_epochs(out / "model.npz") == 1
    minicnn.load_model(out / "model.npz")  # whole and loadable


# -- a damaged data folder ---------------------------------------------------------------------
def test_script_with_a_truncated_batch_says_which_file_and_how_to_recover(tmp_path):
    make_cifar_folder(tmp_path / "data", rows_per_batch=3, test_rows=4)
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_4"
    batch.write_bytes(batch.read_bytes()[:1000])
    result = run(
        [
            *fetch_args(tmp_path / "data", tmp_path / "o", "http://127.0.0.1:9/never-asked"),
        ]
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"error: {batch.parent} is damaged: {batch}: not a CIFAR-10 batch" in result.stderr
    assert "truncated" in result.stderr and f"delete {batch.parent}" in result.stderr


# -- the first run, offline ---------------------------------------------------------------------
@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 whose port is bound but not listening: every connection is refused."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/cifar-10-python.tar.gz"
    sock.close()


def test_offline_first_run_says_where_to_put_the_data(tmp_path, refused_url):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "data").mkdir()  # a --data-dir must exist (the download goes there)
    env = dict(os.environ, HOME=str(home))
    env.pop("MINICNN_DATA", None)
    result = run(
        [
            *fetch_args(tmp_path / "data", tmp_path / "o", refused_url),
        ],
        env=env,
    )
    err = result.stderr
    assert result.returncode == 2 and "Traceback" not in err, err
    assert f"cannot download {refused_url}" in err and "Connection refused" in err
    assert f"put it in {tmp_path / 'data'}" in err and "cifar-10-python.tar.gz" in err and "(163 MB, MD5 " in err
    assert "~/.keras/datasets/cifar-10-batches-py" in err and "torchvision's root" in err
    for place in (home / ".cache" / "minicnn", home / ".keras" / "datasets"):
        assert str(place / "cifar-10-batches-py") in err  # where it looked
    assert not list((tmp_path / "data").iterdir())  # nothing half-downloaded
    assert not (tmp_path / "o").exists()  # nor an empty --out


@pytest.mark.slow
def test_keras_download_in_home_is_found_before_downloading(tmp_path, refused_url):
    home = tmp_path / "home"
    (x, _), _ = make_cifar_folder(home / ".keras" / "datasets", rows_per_batch=12, test_rows=10)
    (tmp_path / "empty").mkdir()
    env = dict(os.environ, HOME=str(home))
    env.pop("MINICNN_DATA", None)
    result = run(
        [
            *fetch_args(tmp_path / "empty", tmp_path / "o", refused_url),
            "--epochs",
            "1",
            "--val-split",
            "10",
            "--batch-size",
            "25",
            "--no-plots",
            "--verbose",
            "0",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"using CIFAR-10 from {home / '.keras' / 'datasets' / 'cifar-10-batches-py'}" in result.stderr
    assert "data: 50 training, 10 validation (--val-split 10), 10 test images" in result.stdout


def test_usual_places_are_searched_in_order(tmp_path, monkeypatch):
    from minicnn.datasets import load_cifar10

    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    keras = make_cifar_folder(tmp_path / "home" / ".keras" / "datasets", rows_per_batch=2, test_rows=2)
    cache = make_cifar_folder(tmp_path / "home" / ".cache" / "minicnn", rows_per_batch=3, test_rows=2)
    (x, _), _ = load_cifar10(tmp_path / "empty", download=False)
    np.testing.assert_array_equal(x, cache[0][0])  # ~/.cache/minicnn before ~/.keras
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    env = make_cifar_folder(tmp_path / "env", rows_per_batch=4, test_rows=2)
    np.testing.assert_array_equal(load_cifar10(tmp_path / "empty", download=False)[0][0], env[0][0])
    torchvision_root = make_cifar_folder(tmp_path / "root", rows_per_batch=1, test_rows=2)
    np.testing.assert_array_equal(load_cifar10(tmp_path / "root", download=False)[0][0], torchvision_root[0][0])
    assert len(keras[0][0]) == 10


# -- output to a file or a pipe ----------------------------------------------------------------------
@pytest.mark.slow
def test_progress_into_a_file_is_one_line_per_epoch(cifar_dir, tmp_path):
    log = tmp_path / "train.log"
    with open(log, "w") as f:  # stdout and stderr into a file, as a batch job's log
        result = subprocess.run(
            TRAIN + common(cifar_dir, tmp_path / "o", 3) + ["--verbose", "1"],
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text  # no progress-bar redraws
    lines = [line for line in text.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"], text
    assert all("val_accuracy" in line and "img/s" in line for line in lines)


def test_verbose_1_means_a_bar_only_on_a_terminal():
    from minicnn.training import effective_verbose

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    assert effective_verbose(1, Stream(True)) == 1
    assert effective_verbose(1, Stream(False)) == 2
    assert effective_verbose(0, Stream(False)) == 0 and effective_verbose(2, Stream(True)) == 2
