"""minicnn.run, the main job's room: the pieces examples/train_cifar.py calls, without a run."""

import argparse
import re
import sys
from pathlib import Path

import pytest

from minicnn.run import (
    RUN_KEYS,
    build_parser,
    data_options,
    describe_data,
    dropout_rates,
    how_to_resume,
    md5_or_none,
    number,
    parse_args,
    plan_resume,
    run_config,
    whole_number,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import train_cifar  # noqa: E402


def test_the_script_keeps_its_old_names():
    for name in ("parse_args", "build_parser", "plan_resume", "RUN_KEYS", "LEGACY_CONFIG", "RECIPES", "SCHEDULES"):
        assert hasattr(train_cifar, name), name
    assert train_cifar.RUN_KEYS is RUN_KEYS and train_cifar.plan_resume is plan_resume
    assert vars(train_cifar.parse_args([])) == vars(parse_args([]))


def test_the_option_types_name_the_value_and_what_is_allowed():
    assert whole_number(1)("3") == 3 and number(0, strict=True)("0.5") == 0.5
    for parse, text, message in [
        (whole_number(1), "0", "got 0, expected a whole number >= 1"),
        (number(0, strict=True), "0", "got 0, expected a number > 0"),
        (number(0), "inf", "got inf, expected a number >= 0"),
        (dropout_rates, "0.5,1", "expected three rates in [0, 1)"),
        (md5_or_none, "abc", "expected 32 hexadecimal digits"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            parse(text)
    assert dropout_rates("0.1,0.2,0.3") == [0.1, 0.2, 0.3] and md5_or_none("none") == "none"


def test_the_parser_takes_the_scripts_description():
    assert build_parser("the recipe").description == "the recipe"
    assert parse_args(["--recipe", "fast"], description="x").epochs == 10


def test_data_options_and_the_split_line(tmp_path):
    args = parse_args(["--md5", "none", "--out", str(tmp_path / "run")])
    assert data_options(args)["md5"] is None and data_options(args)["val_split"] == 0.1
    data = {"train": ([0] * 9, None), "val": ([0], None), "test": ([0] * 4, None)}
    note = "data: 9 training, 1 validation (10% held out; --val-split to choose), 4 test images"
    assert describe_data(args, data) == note
    assert args.val_split == 1 and run_config(args)["val_split"] == 1
    assert describe_data(args, data).endswith("(--val-split 1), 4 test images")


def test_no_resume_hint_without_a_checkpoint_unless_interrupted(tmp_path):
    args = parse_args(["--out", str(tmp_path / "run")])
    assert how_to_resume(args, [], None, interrupted=False) is None
    assert "holds no completed epoch: nothing to resume" in how_to_resume(args, [], None, interrupted=True)


def test_resume_without_a_checkpoint_says_so(tmp_path):
    args = parse_args(["--out", str(tmp_path / "run"), "--resume"])
    with pytest.raises(ValueError, match="there is no run to continue"):
        plan_resume(args)
