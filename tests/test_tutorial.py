"""examples/tutorial.ipynb runs top to bottom, headless, in a fresh kernel, within a couple of minutes;
and it is what examples/make_tutorial.py writes (edit the cells there)."""

import importlib.util
import os
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from cifar_fixture import make_cifar_folder

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
BUDGET_SECONDS = 240


def _generator():
    spec = importlib.util.spec_from_file_location("make_tutorial", ROOT / "examples" / "make_tutorial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_notebook_is_the_generated_one():
    committed = nbformat.read(NOTEBOOK, as_version=4)
    generated = _generator().build()
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in generated.cells], (
        "examples/tutorial.ipynb is out of date: run python examples/make_tutorial.py"
    )
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code"), "commit it without outputs"


@pytest.mark.parametrize("data", ["made-up", "cifar"])
def test_the_tutorial_runs_top_to_bottom(data, tmp_path, monkeypatch):
    # The kernel is a child process: it imports this checkout's minicnn and draws headless.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if data == "cifar":  # a small CIFAR-10 folder in the official layout: 1,000 training images
        make_cifar_folder(tmp_path / "data", rows_per_batch=200, test_rows=200)
        monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))
    else:
        monkeypatch.delenv("MINICNN_DATA", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=BUDGET_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    seconds = time.perf_counter() - start
    assert seconds < BUDGET_SECONDS, f"the tutorial took {seconds:.0f} s"

    text = "\n".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream"
    )
    assert "Tanh: {'x': " in text  # the learner's gradient check ran
    assert "FAIL  initial loss" in text and "not standardised" in text
    assert "PASS  gradient of layer 1 tanh (Tanh)" in text
    assert "test accuracy" in text and "Reading:" in text
    assert "validation accuracy" in text and "validation and" in text  # fit judged on a held-out split
    assert "step 0: loss" in text and "step 4: loss" in text  # the four lines of a step, by hand
    assert ("No CIFAR-10 here" in text) == (data == "made-up")
    assert ("10 classes" in text) == (data == "cifar")
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 2  # filters and max-stimulus patterns


def test_the_test_set_is_read_once_at_the_end_and_the_timing_agrees_with_the_docs():
    cells = _generator().build().cells
    code = [c.source for c in cells if c.cell_type == "code"]
    reads = [i for i, src in enumerate(code) if "x_test" in src and "standardize" not in src]
    assert reads == [len(code) - 1], "only the last code cell may use the test set"
    assert "validation_data=(x_val, y_val)" in "\n".join(code)
    learning = (ROOT / "docs" / "learning.md").read_text()
    assert "well under a minute" in cells[0].source and "runs top to bottom on a CPU in well under a minute" in learning
