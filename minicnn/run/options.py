"""The main job's command line: every option with its default, and every check of a value.

``python examples/train_cifar.py --help`` prints what :func:`build_parser` builds; :func:`parse_args`
checks the options together (argparse exits with status 2, naming the option, the value and what is
allowed) and fills in the defaults that depend on other options and on ``--recipe``.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..datasets import OFFICIAL_MD5, OFFICIAL_URL
from ..datasets.cifar10 import ARCHIVE_NAME
from .outputs import run_files
from .recipes import RECIPES, SCHEDULES

DEFAULT_EPOCHS = 30


def whole_number(minimum: int):
    """An argparse ``type``: a whole number >= ``minimum``. argparse names the option in the error;
    the message names the value and what is allowed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected a whole number >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"got {value}, expected a whole number >= {minimum}")
        return value

    return parse


def number(minimum: float, strict: bool = False):
    """An argparse ``type``: a finite number > ``minimum`` (``strict``), else >= ``minimum``."""
    allowed = f"a number {'>' if strict else '>='} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected {allowed}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"got {text}, expected {allowed}")
        return value

    return parse


def dropout_rates(text: str) -> list[float]:
    """An argparse ``type``: the model's three dropout rates, ``R1,R2,R3``, each in [0, 1)."""
    expected = "three rates in [0, 1) separated by commas, e.g. 0.25,0.25,0.5"
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected {expected}") from None
    if len(rates) != 3 or not all(0 <= r < 1 for r in rates):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected {expected}")
    return rates


def md5_or_none(text: str) -> str:
    """An argparse ``type``: 32 hexadecimal digits, or ``none``."""
    if text.lower() == "none" or (len(text) == 32 and all(c in "0123456789abcdefABCDEF" for c in text)):
        return text
    raise argparse.ArgumentTypeError(f"got {text!r}, expected 32 hexadecimal digits, or 'none' to skip the check")


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """Every option of the script; each help text ends with the option's default. ``description``:
    what ``--help`` prints above the options (the script passes its docstring)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add(
        "--backend",
        choices=["auto", "numpy", "cupy"],
        default="auto",
        help="array backend; auto takes CuPy where a GPU is usable, else NumPy (default: auto)",
    )
    add(
        "--model",
        choices=["course", "resnet", "resnet_cifar"],
        default="course",
        help="course: the documented CNN (minicnn.models.cifar10_cnn); resnet: a small ResNet with batch "
        "normalisation, trained best with --recipe resnet (minicnn.models.resnet8, docs/resnet.md); resnet_cifar: "
        "0.3.0's ResNet (default: course)",
    )
    add(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="a named set of the settings below (epochs, batch, schedule, tricks); options given override it. "
        "default: 30 epochs, batch 64, Adam 2e-3, cosine; fast: 10 epochs, batch 128, Adam 3e-3, linear decay, "
        "label smoothing 0.2, whitened first-layer filters, 2-pixel crops, halved dropout, flip TTA (default: default)",
    )
    add(
        "--epochs",
        metavar="N",
        type=whole_number(1),
        default=None,
        help="total epochs the schedule is planned for (default: the recipe's, 30 or 10; "
        "with --resume: the total of the run it continues)",
    )
    add(
        "--batch-size",
        metavar="N",
        type=whole_number(1),
        default=None,
        help="images per step (default: 64; --recipe fast: 128)",
    )
    add("--optimizer", choices=["adam", "sgd"], help="Adam or Nesterov SGD (default: the recipe's, adam)")
    add(
        "--lr",
        metavar="F",
        type=number(0, strict=True),
        default=None,
        help="peak learning rate (default: the recipe's, 2e-3 / 3e-3; 0.05 with sgd)",
    )
    add(
        "--weight-decay",
        metavar="F",
        type=number(0),
        default=None,
        help="AdamW decay / SGD L2 (default: 0 adam, 5e-4 sgd)",
    )
    add(
        "--warmup-epochs",
        metavar="F",
        type=number(0),
        default=None,
        help="linear warm-up before the decay, in epochs (default: 1 / 0.5)",
    )
    add("--schedule", choices=sorted(SCHEDULES), default=None, help="learning-rate decay (default: cosine / linear)")
    add(
        "--label-smoothing",
        metavar="F",
        type=number(0),
        default=None,
        help="SoftmaxCrossEntropy's label_smoothing, in [0, 1] (default: 0 / 0.2)",
    )
    add(
        "--ema",
        type=number(0),
        default=None,
        metavar="MOMENTUM",
        help="keep an exponential moving average of the weights with this momentum, e.g. 0.99, "
        "and validate, checkpoint and test with it (default: 0, off)",
    )
    add(
        "--ema-start-epoch",
        metavar="F",
        type=number(0),
        default=0.0,
        help="start the average after this many epochs (default: 0)",
    )
    add(
        "--tta",
        choices=["none", "flip", "flip_shift"],
        default=None,
        help="test-time augmentation of the final test evaluation (default: none / flip)",
    )
    add(
        "--whiten-init",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the first convolution from whitened patch filters of 2,000 training images "
        "(minicnn.whitening) (default: off; --recipe fast: on)",
    )
    add(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random crop after --crop-padding pixels of zero padding + horizontal flip (default: on)",
    )
    add(
        "--crop-padding",
        metavar="N",
        type=whole_number(0),
        default=None,
        help="pixels of padding the random crop moves an image by at most (default: 4; --recipe fast: 2)",
    )
    add(
        "--dropout",
        metavar="R1,R2,R3",
        type=dropout_rates,
        default=None,
        help="the rates of the model's three Dropout layers (after each block and after the dense layer; "
        "the layers and parameters stay the same) (default: 0.25,0.25,0.5, the course's; --recipe fast: "
        "0.125,0.125,0.25)",
    )
    add(
        "--val-split",
        metavar="N",
        type=whole_number(0),
        default=None,
        help="training images held out for validation; 0: none (default: 10%% of the training images, "
        "5000 of CIFAR-10's 50000; with --resume: the run's own)",
    )
    add(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="an existing folder with cifar-10-batches-py or the archive, where a download also goes "
        "(default: $MINICNN_DATA, else ~/.cache/minicnn)",
    )
    add("--url", metavar="URL", default=OFFICIAL_URL, help="where to download the archive from (default: %(default)s)")
    add(
        "--md5",
        metavar="HEX|none",
        type=md5_or_none,
        default=OFFICIAL_MD5,
        help="expected MD5 of the archive, or 'none' to skip the check (default: the official %(default)s)",
    )
    add(
        "--out",
        metavar="DIR",
        default="runs/cifar10",
        help="folder for the checkpoint, logs and pictures (default: %(default)s)",
    )
    add(
        "--seed",
        metavar="N",
        type=whole_number(0),
        default=0,
        help="seed of the weights, shuffles, dropout, split (default: 0)",
    )
    add(
        "--train-limit",
        metavar="N",
        type=whole_number(1),
        default=None,
        help="use only the first N training images (default: all)",
    )
    add("--resume", action="store_true", help="continue the run in --out from its model.npz (default: off)")
    add(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a run, replacing its files (default: off: such an --out is "
        "refused, so that no run is lost by a repeated command)",
    )
    add(
        "--extend",
        action="store_true",
        help="with --resume: train to a new --epochs total, the schedule recomputed for it from the "
        "checkpoint's epoch on (default: off; without it --resume refuses a changed --epochs)",
    )
    add(
        "--init-from",
        default=None,
        metavar="PATH",
        help="fine-tune this model instead of training the documented one from scratch: a Keras .keras/.h5 "
        "file or a minicnn checkpoint (.npz); input (32, 32, 3), 10 classes (default: none)",
    )
    add(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw the pictures at the end (default: on)",
    )
    add(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=1,
        help="0: quiet, 1: progress bars (a line per epoch into a file), 2: a line per epoch (default: 1)",
    )
    add(
        "--distributed",
        action="store_true",
        help="data-parallel training over the processes of `mpiexec -n N` (needs the distributed extra); "
        "--batch-size is then the global batch, a multiple of N (default: off)",
    )
    add(
        "--no-test",
        action="store_true",
        help="tuning: evaluate the validation split at the end instead of the test set, which is then never "
        "read (metrics.json: val_accuracy...; needs --val-split > 0) (default: off)",
    )
    add("--explore", action="store_true", help="serve the explorer on --out during training (default: off)")
    add("--explore-port", metavar="N", type=whole_number(0), default=8000, help="its port (default: 8000; 0: any)")
    return p


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """The options, each checked (argparse exits with status 2, naming the option, the value and
    what is allowed); defaults that depend on other options filled in."""
    p = build_parser(description)
    args = p.parse_args(argv)
    if args.dropout is not None and args.init_from:
        p.error("--dropout sets the rates of the documented model; --init-from keeps the given model's: choose one")
    if args.dropout is not None and args.model != "course":
        p.error(f"--dropout sets the rates of the course model's Dropout layers; --model {args.model} has none")
    if args.model != "course" and args.init_from:
        p.error(f"--init-from fine-tunes the given model; --model builds one: leave out --model {args.model}")
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key) is None and not (key == "epochs" and args.resume):  # a resume: the run's own
            setattr(args, key, value)
    no_dropout = args.init_from or args.model != "course"  # a model whose dropout the script does not set
    args.dropout = None if no_dropout else list(args.dropout)  # JSON keeps a list: compared on resume
    if args.lr is None:
        args.lr = 2e-3 if args.optimizer == "adam" else 0.05
    if not 0 <= args.label_smoothing <= 1 or not 0 <= args.ema < 1 or args.ema_start_epoch < 0:
        p.error("--label-smoothing must be in [0, 1], --ema in [0, 1) and --ema-start-epoch >= 0")
    if args.weight_decay is None:
        args.weight_decay = 5e-4 if args.optimizer == "sgd" else 0.0
    if args.no_test and args.val_split == 0:
        p.error("--no-test evaluates the validation split instead of the test set: it needs --val-split > 0")
    if args.extend and not args.resume:
        p.error("--extend goes with --resume (it lengthens the run being resumed)")
    if args.extend and args.epochs is None:
        p.error("--extend needs --epochs N, the new total")
    if args.resume and args.overwrite:
        p.error("--resume continues the run in --out, --overwrite replaces it: choose one")
    held = run_files(args.out)
    if held and not (args.resume or args.overwrite):
        p.error(
            f"--out {args.out} already holds a run ({', '.join(held)}): add --resume to continue it, "
            f"--overwrite to replace it, or give another --out"
        )
    if not args.resume and args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    named = args.data_dir or os.environ.get("MINICNN_DATA")
    if named and not Path(named).expanduser().is_dir():
        option = "--data-dir" if args.data_dir else "$MINICNN_DATA"
        what = "is not a folder" if Path(named).expanduser().exists() else "does not exist"
        p.error(
            f"{option} {named} {what}: give the folder that holds cifar-10-batches-py or {ARCHIVE_NAME}, "
            f"or create it (mkdir -p {named}) for the download to go there"
        )
    if args.whiten_init and args.init_from:
        p.error("--whiten-init starts the first convolution afresh; --init-from keeps the given model's: choose one")
    if args.init_from and not Path(args.init_from).is_file():
        p.error(f"--init-from {args.init_from} does not exist (a .keras/.h5 file or a minicnn .npz checkpoint)")
    return args
