"""Data-parallel training over MPI: 2 ranks under mpiexec against one process, and failure handling.

Needs mpi4py and an ``mpiexec`` (``pip install -e ".[test,distributed]"`` brings both); skipped
with the reason otherwise.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
from conftest import signals_at_default

from minicnn.datasets import load_cifar10, standardize

ROOT = Path(__file__).resolve().parents[1]


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, 'mpi4py is not installed (pip install -e ".[test,distributed]")'
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    return (found, None) if found else (None, "no mpiexec beside sys.executable or on PATH")


MPIEXEC, SKIP = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=f"distributed tests need MPI: {SKIP}")


def test_import_never_needs_mpi4py():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
        "import minicnn\n"
        "try:\n    minicnn.distributed.Communicator()\nexcept ImportError as exc:\n    print(exc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'pip install -e ".[distributed]"' in result.stdout


def test_shards_cover_every_example_once():
    from minicnn.distributed import Communicator

    for size in (1, 2, 3, 8):
        for n in (0, 1, 5, 8, 13):
            parts = []
            for rank in range(size):
                c = Communicator.__new__(Communicator)  # no MPI needed for the arithmetic
                c.rank, c.size = rank, size
                parts.append(c.shard(np.arange(n)))
            assert np.array_equal(np.concatenate(parts), np.arange(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def mpi_env():
    return dict(
        os.environ,
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    )


def mpirun(args, n=2, timeout=60):
    """``mpiexec -n N python ARGS``, one BLAS thread per rank (2 ranks on 2 cores)."""
    return subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=mpi_env(),
        cwd=ROOT,
    )


def run_worker(mode, out, backend="numpy"):
    result = mpirun([ROOT / "tests" / "distributed_worker.py", mode, out, backend])
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = []
    for r in range(2):
        with np.load(out / f"rank{r}.npz") as f:
            ranks.append({k: f[k] for k in f.files})
        ranks[-1]["observed"] = json.loads(str(ranks[-1]["observed"]))
    return ranks


def assert_same_bits(a, b):
    keys = [k for k in a if k.startswith("layers/")]
    assert keys and keys == [k for k in b if k.startswith("layers/")]
    for k in keys:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _skip_without_cupy(backend):
    from conftest import cupy_mode

    if backend == "cupy" and cupy_mode() == "off":
        pytest.skip("CuPy cases need a usable GPU or the stand-in (--no-cupy-standin was given)")


# "cupy": 2 ranks on the device (a GPU, or the CPU stand-in for CuPy), gradients reduced through
# host memory (Communicator's fallback when CuPy has no NCCL: the stand-in has none).
BACKEND_NAMES = ["numpy", "cupy"]


@needs_mpi
@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
def test_two_ranks_train_the_single_process_model(tmp_path, backend_name):
    """Same global batch on 1 or 2 processes: the same weights (float64, rtol 1e-10), short last batch included.
    The reference is one NumPy process; on a real GPU cuBLAS sums in other orders, hence a looser rtol there."""
    _skip_without_cupy(backend_name)
    r0, r1 = run_worker("exact", tmp_path, backend_name)
    model, history, _ = worker.train("exact")
    from conftest import cupy_mode

    rtol = 1e-7 if backend_name == "cupy" and cupy_mode() == "real" else 1e-10
    for key, layer, name in model.named_parameters():
        np.testing.assert_allclose(r0[f"layers/{key}"], layer.params[name], rtol=rtol, atol=1e-13, err_msg=key)
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):  # reduced training and validation figures
        np.testing.assert_allclose(r0[f"history/{k}"], history[k], rtol=rtol, err_msg=k)
    assert_same_bits(r0, r1)
    assert r0["observed"]["identical"] == [True] * worker.EPOCHS


@needs_mpi
@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
def test_replicas_stay_identical_with_dropout_and_augmentation(tmp_path, backend_name):
    _skip_without_cupy(backend_name)
    r0, r1 = run_worker("random", tmp_path, backend_name)
    assert_same_bits(r0, r1)
    assert r0["observed"]["identical"] == r1["observed"]["identical"] == [True] * worker.EPOCHS
    o0, o1 = r0["observed"], r1["observed"]
    # ... while each rank drew its own dropout masks and augmentations, different every epoch.
    assert o0["dropout_seeds"] != o1["dropout_seeds"] and o0["dropout_seeds"][0] != o0["dropout_seeds"][1]
    assert o0["augment_draws"] != o1["augment_draws"]
    # Global batches of 8 split 4 + 4; the last one holds 1 image: rank 0 gets none, rank 1 gets it.
    steps = -(-worker.N // worker.BATCH)
    assert (
        o0["steps"] == ([4] * (steps - 1)) * worker.EPOCHS and o1["steps"] == ([4] * (steps - 1) + [1]) * worker.EPOCHS
    )
    # ... and a second run draws exactly the same: the run is reproducible.
    (tmp_path / "again").mkdir()
    again = run_worker("random", tmp_path / "again", backend_name)
    assert_same_bits(r0, again[0])
    assert again[1]["observed"]["augment_draws"] == o1["augment_draws"]


@needs_mpi
def test_a_failing_rank_stops_the_whole_job(tmp_path):
    start = time.monotonic()
    result = mpirun([ROOT / "tests" / "distributed_worker.py", "fail", tmp_path], timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - start < 60
    assert "rank 1 fails on purpose" in result.stderr and "[rank 1 of 2] failed" in result.stderr
    assert not list(tmp_path.glob("rank*.npz"))


# -- the training script ------------------------------------------------------------------
TRAIN = ROOT / "examples" / "train_cifar.py"


def assert_same_weights(path_a, path_b):
    """Two checkpoints hold bitwise the same weights and optimizer state."""
    with np.load(path_a) as a, np.load(path_b) as b:
        for k in a.files:
            if k.startswith(("layers/", "optimizer/")):
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def script(cifar_dir, out, epochs, *extra):
    return [
        TRAIN,
        "--distributed",
        "--backend",
        "numpy",
        "--data-dir",
        cifar_dir,
        "--out",
        out,
        "--epochs",
        epochs,
        "--val-split",
        "40",
        "--batch-size",
        "32",
        "--seed",
        "3",
        *extra,
    ]


@needs_mpi
@pytest.mark.slow
def test_train_script_distributed_writes_once_and_resumes(cifar_dir, tmp_path):
    out = tmp_path / "run"
    result = mpirun(script(cifar_dir, out, 1, "--verbose", "2"), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    # Rank 0 alone prints and writes.
    for line in (
        "2 processes, 16 images each per step",
        "Total params: 1,084,234",
        "Epoch 1/1",
        "test accuracy",
        "wrote filters.png",
    ):
        assert text.count(line) == 1, (line, text)
    for name in [
        "model.npz",
        "summary.txt",
        "history.csv",
        "metrics.json",
        "filters.png",
        "stimuli.png",
        "feature_maps.png",
        "curves.png",
        "confusion.png",
    ]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["epochs"] == 1 and "mpi4py" in metrics["versions"]
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 1

    # --resume: every rank loads rank 0's checkpoint; the result equals a straight 2-epoch run.
    resumed = mpirun(script(cifar_dir, out, 2, "--verbose", "0", "--no-plots", "--resume"), timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("resuming after epoch 1") == 1
    straight = tmp_path / "straight"
    assert mpirun(script(cifar_dir, straight, 2, "--verbose", "0", "--no-plots"), timeout=180).returncode == 0
    assert_same_weights(out / "model.npz", straight / "model.npz")
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 2


@needs_mpi
def test_train_script_refuses_a_batch_that_does_not_divide(cifar_dir, tmp_path):
    result = mpirun(script(cifar_dir, tmp_path / "o", 1, "--batch-size", "33"))
    assert result.returncode == 2
    assert "--batch-size 33" in result.stderr and "processes, 2" in result.stderr
    assert result.stderr.count("error:") == 1  # said once, by rank 0
    assert not (tmp_path / "o").exists()


@needs_mpi
@pytest.mark.slow
def test_sigterm_to_mpiexec_stops_every_rank_cleanly_and_resume_gives_the_uninterrupted_weights(cifar_dir, tmp_path):
    # mpiexec (MPICH's hydra) forwards SIGTERM to every rank; they must stop at the same step,
    # exit with 143 without MPI_Abort, and leave epoch 1's checkpoint for --resume.
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", sys.executable]
        + [str(a) for a in script(cifar_dir, out, 2, "--verbose", "0", "--no-plots")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpi_env(),
        cwd=ROOT,
        preexec_fn=signals_at_default,
    )
    deadline = time.time() + 120
    while not (out / "model.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout + stderr
    assert stderr.count("interrupted (SIGTERM)") == 1 and "mpiexec -n 2 " in stderr and "--resume" in stderr
    assert "MPI_Abort" not in stdout + stderr and "failed" not in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["filters.npz", "history.csv", "model.npz", "summary.txt"]

    resumed = mpirun(script(cifar_dir, out, 2, "--verbose", "0", "--no-plots", "--resume"), timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    straight = tmp_path / "straight"
    assert mpirun(script(cifar_dir, straight, 2, "--verbose", "0", "--no-plots"), timeout=180).returncode == 0
    assert_same_weights(out / "model.npz", straight / "model.npz")


@needs_mpi
@pytest.mark.slow
def test_batch_norm_ranks_share_rank_0s_moving_statistics_after_each_epoch(cifar_dir, tmp_path):
    # Each rank normalises its own 16 images; fit then copies rank 0's moving statistics to every
    # rank, so the distributed test evaluation is that of the checkpoint (rank 0's).
    out = tmp_path / "run"
    result = mpirun(script(cifar_dir, out, 1, "--verbose", "0", "--no-plots", "--model", "resnet"), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    import minicnn

    model, extra = minicnn.load_model(out / "model.npz")
    metrics = json.loads((out / "metrics.json").read_text())
    x, y = load_cifar10(cifar_dir, download=False)[1]
    test = model.evaluate(standardize(x, extra["mean"], extra["std"]), y)
    assert test["accuracy"] == pytest.approx(metrics["test_accuracy_single_view"], abs=1e-9)
