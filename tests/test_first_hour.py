"""A newcomer's first hour with examples/train_cifar.py (issue 23): every refusal names the option, the
value and what is allowed, a refused run leaves nothing on disk, and --resume never changes the schedule
without being asked."""

import csv
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import run_train, script_args

import minicnn
from minicnn.checkpoint import read_checkpoint, write_checkpoint
from minicnn.layers import Dropout
from minicnn.schedules import warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
run = run_train


def common(cifar_dir, out, *extra):
    return script_args(cifar_dir, out, *extra, batch_size=32, seed=3)


def load_script():
    spec = importlib.util.spec_from_file_location("train_cifar_first_hour", ROOT / "examples" / "train_cifar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(out):
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- option errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option, value, allowed",
    [
        ("--epochs", "0", "got 0, expected a whole number >= 1"),
        ("--batch-size", "-5", "got -5, expected a whole number >= 1"),
        ("--epochs", "two", "got 'two', expected a whole number >= 1"),
        ("--val-split", "-1", "got -1, expected a whole number >= 0"),
        ("--train-limit", "0", "got 0, expected a whole number >= 1"),
        ("--lr", "0", "got 0, expected a number > 0"),
        ("--weight-decay", "-0.001", "got -0.001, expected a number >= 0"),
        ("--warmup-epochs", "nan", "got nan, expected a number >= 0"),
        ("--md5", "abc", "got 'abc', expected 32 hexadecimal digits, or 'none'"),
    ],
)
def test_an_option_error_names_the_option_the_value_and_what_is_allowed(cifar_dir, tmp_path, option, value, allowed):
    out = tmp_path / "out"
    result = run(common(cifar_dir, out, option, value))
    assert result.returncode == 2
    assert f"error: argument {option}: {allowed}" in result.stderr, result.stderr
    assert not out.exists()


def test_help_shows_every_default():
    parser = load_script().build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert "(default: " in action.help, action.option_strings
    text = run(["--help"]).stdout
    text = " ".join(text.split())  # argparse wraps to the terminal's width
    for shown in ["images per step (default: 64; --recipe fast: 128)", "(default: runs/cifar10)", "split (default: 0)"]:
        assert shown in text, shown
    assert "(default: 10% of the training images" in text


def test_extend_without_resume_is_refused(cifar_dir, tmp_path):
    result = run(common(cifar_dir, tmp_path / "out", "--extend", "--epochs", "3"))
    assert result.returncode == 2 and "--extend goes with --resume" in result.stderr
    assert not (tmp_path / "out").exists()


# -- nothing on disk from a run refused before training ---------------------------------------------
def test_a_data_dir_that_does_not_exist_is_named_first_and_nothing_is_created(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data, out = tmp_path / "nonexistent", tmp_path / "out"
    result = run(["--data-dir", data, "--out", out], env=dict(os.environ, HOME=str(home)))
    assert result.returncode == 2
    assert f"error: --data-dir {data} does not exist" in result.stderr, result.stderr
    assert f"mkdir -p {data}" in result.stderr and "download" not in result.stderr.split("does not exist")[0]
    assert not data.exists() and not out.exists() and list(home.iterdir()) == []


def test_a_failed_first_download_leaves_no_cache_folder_and_no_out(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MINICNN_DATA"}
    out = tmp_path / "out"
    result = run(
        ["--backend", "numpy", "--out", out, "--url", (tmp_path / "missing.tar.gz").as_uri()],
        env=dict(env, HOME=str(home)),
    )
    assert result.returncode == 2 and "cannot download" in result.stderr, result.stderr
    assert f"downloading CIFAR-10 (cifar-10-python.tar.gz, 163 MB) into {home / '.cache' / 'minicnn'}" in result.stderr
    assert not (home / ".cache").exists() and not out.exists()


def test_an_unwritable_out_prints_only_its_error(cifar_dir, tmp_path):
    (tmp_path / "a-file").write_text("")
    outs = [tmp_path / "a-file" / "run"] + ([Path("/proc/x")] if Path("/proc/self").is_dir() else [])
    for out in outs:
        result = run(common(cifar_dir, out, "--epochs", "1"))
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot write {out}"), result.stderr
        assert "resume" not in result.stderr and "data:" not in result.stdout


@pytest.mark.parametrize("existing", [False, True])
def test_resume_with_no_run_in_out_is_refused_before_the_data_loads(cifar_dir, tmp_path, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
    result = run(common(cifar_dir, out, "--resume"))
    assert result.returncode == 2
    assert f"--resume: there is no run to continue in --out {out} ({out / 'model.npz'} does not exist)" in result.stderr
    assert "data:" not in result.stdout and "minicnn" not in result.stdout  # refused before the backend and data
    assert (list(out.iterdir()) == []) if existing else not out.exists()  # a folder of the user's stays


def test_cupy_without_a_gpu_leaves_no_out(cifar_dir, tmp_path):
    from conftest import STANDIN_DIR, cupy_mode

    if cupy_mode() == "real":
        pytest.skip("a GPU is usable here, so --backend cupy is not refused")
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p) != STANDIN_DIR]
    out = tmp_path / "out"
    result = run(
        common(cifar_dir, out, "--epochs", "1") + ["--backend", "cupy"],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(parts)),
    )
    assert result.returncode == 2 and "error: backend 'cupy'" in result.stderr, result.stderr
    assert not out.exists()


# -- the validation split on a small training set -------------------------------------------------------
def test_a_split_that_leaves_no_training_image_suggests_val_split_0_and_leaves_nothing(cifar_dir, tmp_path):
    out = tmp_path / "out"
    result = run(common(cifar_dir, out, "--train-limit", "30", "--val-split", "40", "--epochs", "1"))
    assert result.returncode == 2
    assert "--val-split 40 holds out the 30 images --train-limit 30 keeps" in result.stderr, result.stderr
    assert "use --val-split 0 (no validation)" in result.stderr and "e.g. --val-split 3 (10%" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_the_default_split_is_a_tenth_of_the_training_images(cifar_dir, tmp_path):
    out = tmp_path / "out"
    result = run(common(cifar_dir, out, "--train-limit", "100", "--epochs", "1", "--no-plots", "--verbose", "0"))
    assert result.returncode == 0, result.stderr
    assert "data: 90 training, 10 validation (10% held out; --val-split to choose), 60 test images" in result.stdout
    import minicnn

    assert minicnn.load_model(out / "model.npz")[1]["config"]["val_split"] == 10  # a resumed run holds out the same


# -- resume and the schedule ---------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_continues_the_planned_schedule_or_extends_it_only_when_asked(cifar_dir, tmp_path):
    import minicnn

    out = tmp_path / "run"
    args = common(cifar_dir, out, "--val-split", "40", "--no-plots", "--verbose", "0")
    assert run(args + ["--epochs", "2"]).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert minicnn.load_model(out / "model.npz")[1]["config"]["epochs"] == 2

    refused = run(args + ["--resume", "--epochs", "3"])
    assert refused.returncode == 2
    err = " ".join(refused.stderr.split())
    assert f"--resume continues the run in {out} as it was planned: --epochs 2" in err, err
    peak = 2e-3
    jump = f"from {warmup_cosine(peak, 2)(2):.3g} to {warmup_cosine(peak, 3)(2):.3g}"
    assert f"the learning rate at epoch 2 would go {jump}" in err
    assert "add --extend" in err and f"--init-from {out / 'model.npz'} --out NEW_FOLDER" in err
    assert "data:" not in refused.stdout  # refused before the data loads
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched

    again = run(args + ["--resume"])  # no --epochs: the run's own total, already reached
    assert again.returncode == 0, again.stderr
    assert "the checkpoint already has 2 epochs (--epochs 2); evaluating it" in again.stdout
    assert len(rows(out)) == 2

    extended = run(args + ["--resume", "--epochs", "3", "--extend"])
    assert extended.returncode == 0, extended.stderr
    assert f"extending the run from 2 to 3 epochs: the learning rate at epoch 2 goes {jump}" in extended.stdout
    history = rows(out)
    assert len(history) == 3 and warmup_cosine(peak, 2)(2 + 4 / 5) == 0  # the old schedule had ended
    assert minicnn.load_model(out / "model.npz")[1]["config"]["epochs"] == 3
    np.testing.assert_allclose(
        float(history[2]["lr"]), warmup_cosine(peak, 3)(2 + 4 / 5), rtol=1e-6
    )  # 5 steps: 160 images / 32


@pytest.mark.slow
def test_a_run_stopped_in_the_warm_up_takes_a_new_total_and_says_so(cifar_dir, tmp_path):
    import minicnn

    out = tmp_path / "run"
    args = common(cifar_dir, out, "--val-split", "40", "--no-plots", "--verbose", "0")
    assert run(args + ["--epochs", "1"]).returncode == 0  # epoch 1 is the warm-up, whatever the total
    result = run(args + ["--resume", "--epochs", "2"])
    assert result.returncode == 0, result.stderr
    assert "the run stopped at epoch 1 of 1, within the warm-up every total shares" in result.stdout
    assert minicnn.load_model(out / "model.npz")[1]["config"]["epochs"] == 2 and len(rows(out)) == 2


def test_the_library_words_the_same_advice_in_its_own_arguments(cifar_dir):
    """cifar10_splits names its keyword arguments, not the script's options (the script words those)."""
    from minicnn.datasets import SplitLeavesNoTraining, cifar10_splits

    with pytest.raises(SplitLeavesNoTraining) as caught:
        cifar10_splits(cifar_dir, md5=None, val_split=40, train_limit=30)
    message = str(caught.value)
    assert "val_split=40 holds out the 30 images train_limit=30 keeps" in message and "val_split=0" in message
    assert "--" not in message and (caught.value.val_split, caught.value.n) == (40, 30)


def test_whiten_init_and_init_from_are_refused_together(tmp_path):
    model = tmp_path / "model.npz"
    model.write_bytes(b"")
    result = run(["--whiten-init", "--init-from", str(model), "--out", str(tmp_path / "out")])
    assert result.returncode == 2 and "--whiten-init starts the first convolution afresh" in result.stderr
    assert not (tmp_path / "out").exists()


def test_whiten_init_and_crop_padding_are_recorded_in_the_run_and_a_resume_keeps_them(cifar_dir, tmp_path):
    out = tmp_path / "out"
    first = run(common(cifar_dir, out, "--epochs", "2", "--whiten-init", "--crop-padding", "3", "--train-limit", "40"))
    assert first.returncode == 0, first.stderr
    config = minicnn.load_model(out / "model.npz")[1]["config"]
    assert config["whiten_init"] is True and config["crop_padding"] == 3
    changed = run(common(cifar_dir, out, "--resume", "--no-whiten-init", "--crop-padding", "3", "--train-limit", "40"))
    assert changed.returncode != 0 and "whiten" in changed.stderr, changed.stderr
    changed = run(common(cifar_dir, out, "--resume", "--whiten-init", "--train-limit", "40"))  # the default 4
    assert changed.returncode == 2 and "--crop-padding 3 vs 4" in changed.stderr, changed.stderr


def test_dropout_rates_are_checked_recorded_and_kept_on_resume(cifar_dir, tmp_path):
    for bad in ("0.5,0.5", "0.2,0.2,1", "a,b,c"):
        result = run(["--dropout", bad, "--out", str(tmp_path / "refused")])
        assert result.returncode == 2 and f"got '{bad}', expected three rates in [0, 1)" in result.stderr
    model = tmp_path / "given.npz"
    minicnn.models.cifar10_cnn(seed=0).save(model)
    result = run(["--dropout", "0.1,0.1,0.1", "--init-from", str(model), "--out", str(tmp_path / "refused")])
    assert result.returncode == 2 and "--init-from keeps the given model's: choose one" in result.stderr
    out = tmp_path / "out"
    first = run(common(cifar_dir, out, "--epochs", "2", "--dropout", "0.1,0.2,0.3", "--train-limit", "40"))
    assert first.returncode == 0, first.stderr
    trained, extra = minicnn.load_model(out / "model.npz")[:2]
    assert [layer.rate for layer in trained.layers if isinstance(layer, Dropout)] == [0.1, 0.2, 0.3]
    assert extra["config"]["dropout"] == [0.1, 0.2, 0.3]
    changed = run(common(cifar_dir, out, "--resume", "--train-limit", "40"))  # the default rates
    assert changed.returncode == 2 and "--dropout [0.1, 0.2, 0.3] vs [0.25, 0.25, 0.5]" in changed.stderr


def test_a_checkpoint_from_before_crop_padding_and_dropout_resumes_with_what_it_was_trained_with(cifar_dir, tmp_path):
    out = tmp_path / "out"
    first = run(common(cifar_dir, out, "--epochs", "2", "--train-limit", "40"))
    assert first.returncode == 0, first.stderr
    meta, arrays = read_checkpoint(out / "model.npz")
    for key in ("crop_padding", "dropout"):  # as a checkpoint written before the options existed
        del meta["extra"]["config"][key]
    write_checkpoint(out / "model.npz", {**arrays, "__meta__": np.array(json.dumps(meta))})
    resumed = run(common(cifar_dir, out, "--resume", "--epochs", "2", "--train-limit", "40"))
    assert resumed.returncode == 0, resumed.stderr
    refused = run(common(cifar_dir, out, "--resume", "--crop-padding", "2", "--train-limit", "40"))
    assert refused.returncode == 2 and "--crop-padding 4 vs 2" in refused.stderr, refused.stderr
