"""Smoke test of benchmarks/bench.py: it runs with tiny settings and prints its sections.

Nothing here is timed: the figures are not checked, only that the script works, also
without PyTorch (a benchmark-only dependency, absent in CI).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"
TINY = [
    "--batch-size",
    "4",
    "--repeats",
    "1",
    "--warmup",
    "0",
    "--memory-batch-size",
    "4",
    "--memory-steps",
    "1",
    "--settle",
    "0",
]

# Runs the script with `import torch` failing, whether or not torch is installed.
NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; "
    "sys.argv = [sys.argv[1]] + sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run(args, block_torch=False):
    env = dict(os.environ, MINICNN_BACKEND="numpy", MPLBACKEND="Agg")
    cmd = [sys.executable] + (["-c", NO_TORCH] if block_torch else []) + [str(BENCH)] + args
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_all_sections_and_json(tmp_path):
    out_json = tmp_path / "bench.json"
    out = run(TINY + ["--json", str(out_json)])
    for section in (
        "minicnn benchmark",
        "machine :",
        "BLAS",
        "== Per layer, batch 4",
        "conv 3→16 3×3",  # minicnn.profile.describe, the one label of a layer
        "dense 256→10",
        "Adam step",
        "== Whole model",
        "train step",
        "inference",
        "== Peak memory",
        "minicnn",
    ):
        assert section in out, f"missing {section!r} in:\n{out}"
    assert "PyTorch" not in out.split("== Peak memory")[0]  # no comparison was asked for
    report = json.loads(out_json.read_text())
    assert set(report) >= {"machine", "config", "layers", "model", "memory"}
    assert len(report["layers"][0]["rows"]) == 17 + 2  # 17 layers, loss, Adam
    assert report["model"][0]["batch_size"] == 4
    assert report["model"][0]["train"]["minicnn"]["images_per_s"] > 0
    assert report["memory"]["libraries"]["minicnn"]["peak_rss_mib"] > 0


def test_batch_sizes_and_switches():
    out = run(
        ["--batch-size", "2,3", "--batch-size", "4", "--repeats", "1", "--warmup", "0", "--no-layers", "--no-memory"]
    )
    assert "Per layer" not in out and "Peak memory" not in out
    model_rows = [l.split() for l in out.split("== Whole model")[1].splitlines() if l.split()[1:3] == ["train", "step"]]
    assert [r[0] for r in model_rows] == ["2", "3", "4"]


def test_compare_torch_without_torch():
    out = run(TINY + ["--compare", "torch", "--no-memory"], block_torch=True)
    assert "PyTorch is a benchmark-only dependency: pip install torch==2.13.0" in out
    assert "torch   : not installed" in out
    assert "== Per layer" in out and "== Whole model" in out
    assert "minicnn/PyTorch" not in out


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed (benchmark-only)")
def test_compare_torch():
    out = run(TINY + ["--compare", "torch", "--threads", "1"])
    assert "torch fwd" in out and "minicnn/PyTorch" in out
    memory = out.split("== Peak memory")[1]
    assert "minicnn" in memory and "PyTorch" in memory and "failed" not in memory


def test_the_conv_forward_variants_agree_with_im2col_in_float64():
    spec = importlib.util.spec_from_file_location(
        "conv_forward_variants", ROOT / "benchmarks" / "conv_forward_variants.py"
    )
    variants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variants)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3))
    W = rng.standard_normal((3, 3, 3, 4))
    fns = variants.variants(x, W, variants.work_arrays(2, 6, 3, 4, dtype=np.float64))
    reference = fns["im2col"]().copy()
    naive = np.zeros_like(reference)  # the definition: every output pixel, every kernel position
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for a in range(3):
        for b in range(3):
            naive += padded[:, a : a + 6, b : b + 6] @ W[a, b]
    np.testing.assert_allclose(reference, naive, rtol=1e-12, atol=1e-12)
    for name in ("winograd", "shifted"):
        np.testing.assert_allclose(fns[name](), naive, rtol=1e-10, atol=1e-10, err_msg=name)


def test_the_onnxruntime_anchor_runs_and_agrees():
    """benchmarks/onnx_anchor.py with tiny settings: it runs and minicnn and onnxruntime give the same
    probabilities (the figures are not checked)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the test extra installs it)")
    pytest.importorskip("onnx", reason="onnx not installed (the test extra installs it)")
    argv = ["--batch-size", "2", "--batches", "1", "--rounds", "1", "--threads", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "onnx_anchor.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "predict / onnxruntime:" in result.stdout
    gap = float(result.stdout.rsplit("max |difference|", 1)[1].split()[0])
    assert gap < 1e-5


def test_compare_keras_skips_cleanly_where_keras_cannot_be_imported(tmp_path):
    """``--compare keras`` with a Keras that fails to import: a note, and the rest of the report."""
    (tmp_path / "keras.py").write_text("raise ImportError('no Keras for this test')\n")
    out = run(["--batch-size", "4", "--repeats", "1", "--warmup", "0", "--no-layers", "--no-memory"]
              + ["--compare", "keras", "--keras-path", str(tmp_path), "--settle", "0"])  # fmt: skip
    assert "== Anchors" in out and "keras: skipped: Keras 3 on JAX not usable here" in out
    assert "no Keras for this test" in out and "minicnn/keras" not in out and "== Whole model" in out


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_compare_onnxruntime():
    pytest.importorskip("onnx", reason="onnx not installed (the test extra installs it)")
    out = run(["--batch-size", "4", "--repeats", "1", "--warmup", "0", "--no-layers", "--no-memory"]
              + ["--compare", "onnxruntime", "--threads", "1", "--settle", "0"])  # fmt: skip
    assert "GEMM    :" in out and "onnxruntime: onnxruntime" in out and "minicnn/onnxruntime" in out
    assert "minicnn/PyTorch" not in out  # torch not asked for


def test_compare_keras_where_keras_is_installed():
    """The Keras 3 anchor for real, where ``$MINICNN_KERAS_PATH`` (or this environment) has Keras and JAX."""
    path = os.environ.get("MINICNN_KERAS_PATH")
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        PYTHONPATH=os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH")) if p),
    )
    probe = subprocess.run([sys.executable, "-c", "import keras, jax"], env=env, capture_output=True)
    if probe.returncode:
        pytest.skip("Keras 3 and JAX not importable (set MINICNN_KERAS_PATH)")
    out = run(["--batch-size", "4", "--repeats", "1", "--warmup", "0", "--no-layers", "--no-memory"]
              + ["--compare", "keras", "--threads", "1", "--settle", "0"])  # fmt: skip
    assert "keras: Keras 3" in out and out.count("minicnn/keras") == 2  # fit and predict


def test_compare_refuses_an_unknown_library():
    env = dict(os.environ, MINICNN_BACKEND="numpy")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--compare", "torch,tf"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--compare takes torch, keras, onnxruntime" in proc.stderr


def test_compare_trees_runs_two_versions_side_by_side(tmp_path):
    """benchmarks/compare_trees.py with this tree standing in for the older one, tiny settings."""
    shutil.copytree(ROOT / "minicnn", tmp_path / "minicnn_before", ignore=shutil.ignore_patterns("__pycache__"))
    argv = ["--before", str(tmp_path), "--rounds", "1", "--images", "8", "--threads", "1"]
    env = dict(os.environ, MINICNN_BACKEND="numpy")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_trees.py"), *argv],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "minicnn_before" in proc.stdout and "    fit: before" in proc.stdout and "predict: before" in proc.stdout


def test_the_ceiling_times_the_real_products_of_every_layer():
    """benchmarks/ceiling.py: both formulations of each convolution's products compute the same
    arrays (so the faster one it keeps does the real work), and a small run prints every layer."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("ceiling", ROOT / "benchmarks" / "ceiling.py")
        ceiling = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ceiling)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from minicnn.layers import Conv2D
    from minicnn.models import cifar10_cnn

    model = cifar10_cnn(seed=0)
    rng = np.random.default_rng(0)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            products = ceiling.conv_products(layer, 2, rng, input_grad=i > 0)
            assert set(products) == ({"fwd", "dW", "dx", "agree"} if i else {"fwd", "dW", "agree"})
            assert products["agree"]() < 1e-5, layer.describe()  # float32 rounding
    script = ROOT / "benchmarks" / "ceiling.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--batch-size", "32", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("conv 3→16", "conv 16→32", "conv 32→32", "conv 32→64", "dense 4096→256", "dense 256→10"):
        assert name in out
    assert "body in 2 shards of 16, head in 2 halves of 16" in out and "a ceiling of" in out
