"""The tools around the library (doctor, profile, explorer) meet a user's slips as the training script does."""

import pytest

import minicnn
from minicnn.layers import Dense, Flatten
from minicnn.models import Sequential


@pytest.mark.parametrize("tool", ["minicnn.doctor.cli", "minicnn.profile.cli", "minicnn.explore.__main__"])
def test_the_tools_say_in_one_line_that_a_backend_is_missing(tool, monkeypatch, capsys, tmp_path):
    import importlib

    from minicnn.backend import BackendError

    def unavailable(name):
        raise BackendError("CuPy is not installed: pip install -e '.[gpu]'")

    module = importlib.import_module(tool)
    monkeypatch.setattr(minicnn, "set_backend", unavailable)
    if hasattr(module, "set_backend"):
        monkeypatch.setattr(module, "set_backend", unavailable)
    argv = [str(tmp_path), "--backend", "cupy"] if tool.startswith("minicnn.explore") else ["--backend", "cupy"]
    try:
        code = module.main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: CuPy is not installed: pip install -e '.[gpu]'"


def test_the_explorer_takes_a_run_folder(tmp_path, capsys):
    from minicnn.explore.__main__ import main

    Sequential([Flatten(input_shape=(4, 4, 3)), Dense(10)], seed=0).save(tmp_path / "model.npz")
    assert main([str(tmp_path), "--export-page", str(tmp_path / "page")]) == 0
    assert f"loaded {tmp_path / 'model.npz'}" in capsys.readouterr().out
