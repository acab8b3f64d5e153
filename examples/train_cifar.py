#!/usr/bin/env python
"""Train the documented CIFAR-10 CNN from scratch, evaluate it, and show what it learnt.

    python examples/train_cifar.py --train-limit 10000 --epochs 3 --out runs/quick   # a first try
    python examples/train_cifar.py --backend cupy          # on a GPU
    python examples/train_cifar.py --backend numpy         # on the CPU
    python examples/train_cifar.py --model resnet          # a small ResNet with batch norm (docs/resnet.md)
    python examples/train_cifar.py --recipe fast           # 10 epochs, lighter regularisation, whitening, flip TTA
    python examples/train_cifar.py --resume                # continue an interrupted run
    mpiexec -n 2 python examples/train_cifar.py --distributed   # data-parallel over 2 processes

Everything lands in --out (default runs/cifar10): model.npz (checkpoint), summary.txt,
history.csv, metrics.json and the pictures (filters, stimuli, feature maps, curves,
confusion). docs/recipe.md describes the options, the recipe and the accuracy it reaches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

import minicnn
from minicnn import CheckpointError, TrainingDiverged
from minicnn.callbacks import CSVLogger, ModelCheckpoint, SettingsChanged
from minicnn.checkpoint import read_checkpoint
from minicnn.datasets import (
    CIFAR10_CLASSES,
    OFFICIAL_MD5,
    OFFICIAL_URL,
    DatasetError,
    SplitLeavesNoTraining,
    cifar10_splits,
    crop_flip,
)
from minicnn.datasets.cifar10 import ARCHIVE_NAME
from minicnn.distributed import abort_on_error
from minicnn.interrupts import exit_code, signal_name, signals_as_interrupts
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import with_preprocessing
from minicnn.optim import SGD, Adam
from minicnn.outputs import OutputError, check_writable, new_folders, remove_empty, run_files, write_text
from minicnn.recipes import RECIPES, SCHEDULES, schedule  # --recipe's settings (an option given overrides one)
from minicnn.whitening import init_first_conv_whitened

# The settings that a resumed run must share with the run it continues.
RUN_KEYS = (
    "model",
    "optimizer",
    "lr",
    "batch_size",
    "augment",
    "val_split",
    "seed",
    "train_limit",
    "weight_decay",
    "warmup_epochs",
    "init_from",
    "schedule",
    "label_smoothing",
    "ema",
    "ema_start_epoch",
    "whiten_init",
    "crop_padding",
    "dropout",
)
DEFAULT_EPOCHS = 30
# What checkpoints written before a setting existed were trained with (so they still resume).
LEGACY_CONFIG = {
    "model": "course",
    "schedule": "cosine",
    "label_smoothing": 0.0,
    "ema": 0.0,
    "ema_start_epoch": 0.0,
    "whiten_init": False,
    "crop_padding": 4,
    "dropout": [0.25, 0.25, 0.5],
}


# -- the command line: every option with its default; every check of a value in this section -------
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


def build_parser() -> argparse.ArgumentParser:
    """Every option of the script; each help text ends with the option's default."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add(
        "--backend",
        choices=["auto", "numpy", "cupy"],
        default="auto",
        help="array backend; auto takes CuPy where a GPU is usable, else NumPy (default: auto)",
    )
    add(
        "--model",
        choices=["course", "resnet"],
        default="course",
        help="course: the documented CNN (minicnn.models.cifar10_cnn); resnet: a small ResNet with batch "
        "normalisation (minicnn.models.resnet_cifar, docs/resnet.md) (default: course)",
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
    add("--optimizer", choices=["adam", "sgd"], default="adam", help="Adam or Nesterov SGD (default: adam)")
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
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked (argparse exits with status 2, naming the option, the value and
    what is allowed); defaults that depend on other options filled in."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.dropout is not None and args.init_from:
        p.error("--dropout sets the rates of the documented model; --init-from keeps the given model's: choose one")
    if args.dropout is not None and args.model == "resnet":
        p.error("--dropout sets the rates of the course model's Dropout layers; --model resnet has none")
    if args.model == "resnet" and args.init_from:
        p.error("--init-from fine-tunes the given model; --model builds one: leave out --model resnet")
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key) is None and not (key == "epochs" and args.resume):  # a resume: the run's own
            setattr(args, key, value)
    no_dropout = args.init_from or args.model == "resnet"  # a model whose dropout the script does not set
    args.dropout = None if no_dropout else list(args.dropout)  # JSON keeps a list: compared on resume
    if args.lr is None:
        args.lr = 2e-3 if args.optimizer == "adam" else 0.05
    if not 0 <= args.label_smoothing <= 1 or not 0 <= args.ema < 1 or args.ema_start_epoch < 0:
        p.error("--label-smoothing must be in [0, 1], --ema in [0, 1) and --ema-start-epoch >= 0")
    if args.weight_decay is None:
        args.weight_decay = 5e-4 if args.optimizer == "sgd" else 0.0
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


@contextlib.contextmanager
def settings_as_flags():
    """The library names a resumed run's changed settings; this script's user knows them as flags."""
    try:
        yield
    except SettingsChanged as exc:
        differ = ", ".join(f"--{k.replace('_', '-')} {a} vs {b}" for k, (a, b) in exc.changed.items())
        raise ValueError(
            f"--resume needs the settings of the interrupted run; these differ (saved, now): {differ}"
        ) from None


def plan_resume(args, say=print) -> int:
    """Check ``--resume`` against the checkpoint in ``--out`` before anything is loaded or written;
    fill in ``--epochs`` and ``--val-split`` from it; return the epochs it has completed.

    A resumed run continues the schedule the run was planned with: its warm-up and cosine decay
    end at the run's own ``--epochs``. A different ``--epochs`` is refused (saying what it would
    do to the learning rate) unless ``--extend`` asks for the schedule to be recomputed, or the run
    stopped within the warm-up, which is the same for every total (then it says so and goes on).
    """
    checkpoint = Path(args.out) / "model.npz"
    if not checkpoint.is_file():
        raise ValueError(
            f"--resume: there is no run to continue in --out {args.out} ({checkpoint} does not exist); "
            "leave out --resume to start one, or give the --out of the run to continue"
        )
    done, config = ModelCheckpoint.run_state(read_checkpoint(checkpoint)[0]["extra"], checkpoint)
    if args.val_split is None and "val_split" in config:
        args.val_split = config["val_split"]
    with settings_as_flags():
        ModelCheckpoint.check_settings(config, {k: getattr(args, k) for k in RUN_KEYS}, LEGACY_CONFIG)
    planned = config.get("epochs")
    if planned is None:  # a checkpoint from before the total was recorded
        if args.epochs is None:
            raise ValueError(
                f"--resume: {checkpoint} does not record the total epochs of its run; "
                "pass the run's own --epochs N to continue its schedule"
            )
        return done
    if args.epochs is None:
        args.epochs = planned
    if args.epochs == planned:
        return done
    if done <= args.warmup_epochs:  # every rate used so far is the warm-up's, the same for any total
        say(
            f"the run stopped at epoch {done} of {planned}, within the warm-up every total shares: it continues "
            f"as a run of --epochs {args.epochs}, exactly as one started with it"
        )
        return done
    rate_now, rate_then = (
        schedule(args.schedule, args.lr, e, args.warmup_epochs)(done) for e in (planned, args.epochs)
    )
    change = f"the learning rate at epoch {done} would go from {rate_now:.3g} to {rate_then:.3g}"
    if not args.extend:
        raise ValueError(
            f"--resume continues the run in {args.out} as it was planned: --epochs {planned} (its warm-up and "
            f"cosine decay end there; {done} done). --epochs {args.epochs} would recompute that schedule: {change}. "
            f"To do that deliberately, add --extend; or start a new run from these weights with a fresh "
            f"schedule: --init-from {checkpoint} --out NEW_FOLDER --epochs N"
        )
    if args.epochs <= done:
        raise ValueError(f"--extend --epochs {args.epochs}: the run in {args.out} already has {done} epochs")
    say(f"extending the run from {planned} to {args.epochs} epochs: {change.replace('would go', 'goes')}")
    return done


def main(argv=None) -> int:
    """Parse ``argv``, train, and turn every failure into its message and exit status (2: refused,
    1: stopped by the disk, the memory or a diverging loss, 128 + N: signal N)."""
    args = parse_args(argv)
    comm = None
    if args.distributed:
        from minicnn.distributed import Communicator

        comm = Communicator()
        if args.batch_size % comm.size:  # every rank sees this alike, so all exit here; rank 0 says why
            if comm.is_root:
                print(
                    f"error: --batch-size {args.batch_size} is the global batch and must be a multiple of the "
                    f"number of processes, {comm.size} "
                    f"(e.g. --batch-size {comm.size * max(1, args.batch_size // comm.size)})",
                    file=sys.stderr,
                )
            return 2
    out = Path(args.out)
    made = new_folders(out)  # removed again if the run stops before writing anything into them
    # Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt; under mpiexec all ranks stop at the same step.
    with abort_on_error(comm), signals_as_interrupts(defer=comm is not None and comm.size > 1):
        why = None  # why a run stopped (followed by how to resume it)
        try:
            code = train(args, comm)
        except KeyboardInterrupt as exc:  # the last completed epoch's checkpoint stays as it is
            code = exit_code(exc)  # 128 + the signal: 130, 143 (SIGTERM), 129 (SIGHUP)
            why = f"interrupted ({signal_name(exc)})." if comm is None or comm.is_root else None
        except OutputError as exc:  # disk full, read-only --out: every file already there is whole
            code, why = 1, f"error: {exc}"
        except TrainingDiverged as exc:  # the last good checkpoint stays (a resumed run would diverge again)
            print(f"\nerror: {exc}", file=sys.stderr)
            code = 1
        except (DatasetError, CheckpointError, ValueError, minicnn.backend.BackendError) as exc:
            print(f"error{'' if comm is None or comm.size == 1 else f' (rank {comm.rank})'}: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:  # out of (GPU) memory: which batch, how much, what to do
            if not minicnn.backend.is_out_of_memory(exc):
                raise
            code, why = 1, f"error: {minicnn.backend.describe_out_of_memory(exc, args.batch_size)}"
        if code and (comm is None or comm.is_root):
            remove_empty(made)
        if why:
            print(f"\n{why}", file=sys.stderr)
            hint = how_to_resume(args, argv, comm, interrupted=code > 128)
            if hint:
                print(hint, file=sys.stderr)
        if code:
            sys.exit(code)
    return 0


def how_to_resume(args, argv, comm, interrupted: bool) -> str | None:
    """The command that continues a stopped run from its checkpoint; None where there is nothing to
    say (a run that failed before its first epoch needs no resume, only the error it printed)."""
    checkpoint = Path(args.out) / "model.npz"
    if not interrupted and not ModelCheckpoint.completed_epochs(checkpoint):
        return None
    rerun = " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--resume", "--extend"))
    command = f"{f'mpiexec -n {comm.size} ' if comm else ''}python {sys.argv[0]} --resume {rerun}"
    return ModelCheckpoint.resume_hint(checkpoint, command)


def train(args, comm) -> int:
    """The run: check what can be refused, load the data, build the model and the optimizer, fit
    (from the checkpoint with ``--resume``), then :func:`finish`."""
    root = comm is None or comm.is_root  # rank 0 alone prints and writes files
    say = print if root else (lambda *a, **k: None)
    out = Path(args.out)
    # Everything that can be refused is checked before anything is loaded or written.
    initial_epoch = plan_resume(args, say) if args.resume else 0
    backend = minicnn.set_backend(args.backend)
    if comm is not None and backend.name == "cupy":
        comm.use_local_gpu()  # one GPU per process on each machine
    if root:
        check_writable(out)  # a read-only or full --out stops the run now, not in an hour
    say(
        f"minicnn {minicnn.__version__} on {backend.name}; output in {out}/"
        + (f"; {comm.size} processes, {args.batch_size // comm.size} images each per step" if comm else "")
    )
    try:
        data, mean, std = cifar10_splits(
            args.data_dir,
            url=args.url,
            md5=None if args.md5.lower() == "none" else args.md5,
            val_split=0.1 if args.val_split is None else args.val_split,  # default: 10%
            seed=args.seed,
            train_limit=args.train_limit,
            communicator=comm,
        )
    except SplitLeavesNoTraining as exc:  # the library's advice, in this script's options
        as_option = lambda key, value: f"--{key.replace('_', '-')} {value}"  # noqa: E731  (val_split -> --val-split)
        raise ValueError(exc.advice(as_option, ", the script's default")) from None
    x_train, y_train = data["train"]
    held_out = 0 if data["val"] is None else len(data["val"][0])
    if args.val_split is None:
        args.val_split = held_out
        split_note = " (10% held out; --val-split to choose)"
    else:
        split_note = f" (--val-split {args.val_split})"
    say(f"data: {len(x_train)} training, {held_out} validation{split_note}, {len(data['test'][0])} test images")

    # The recipe: the documented model (or --model's), Adam (or Nesterov SGD), warm-up then the recipe's decay.
    if args.init_from:
        model = initial_model(args.init_from)
    elif args.model == "resnet":
        model = minicnn.models.resnet_cifar(seed=args.seed)
    else:
        model = minicnn.models.cifar10_cnn(seed=args.seed, dropout=tuple(args.dropout))
    if args.whiten_init and not args.resume:  # a resumed run loads its weights instead
        init_first_conv_whitened(model, x_train)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    average = {"ema_momentum": args.ema or None, "ema_start": int(round(args.ema_start_epoch * steps_per_epoch))}
    if args.optimizer == "adam":
        optimizer = Adam(model, lr=args.lr, weight_decay=args.weight_decay, **average)
    else:
        optimizer = SGD(model, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay, **average)
    config = {k: getattr(args, k) for k in RUN_KEYS}
    checkpoint = out / "model.npz"
    if args.resume:
        with settings_as_flags():
            initial_epoch = ModelCheckpoint.resume(checkpoint, model, optimizer, config, LEGACY_CONFIG)
        say(f"resuming after epoch {initial_epoch} of {args.epochs} from {checkpoint}")
    if initial_epoch >= args.epochs:
        say(f"the checkpoint already has {initial_epoch} epochs (--epochs {args.epochs}); evaluating it")
    summary = "\n".join(model.summary_lines())
    say(summary)
    if root:
        write_text(out / "summary.txt", summary + "\n")
    planned = {**config, "epochs": args.epochs}  # the total the schedule ends at, for --resume
    extra = {"mean": mean, "std": std, "config": planned, "class_names": list(CIFAR10_CLASSES), "backend": backend.name}
    log = CSVLogger(out / "history.csv", append=args.resume)
    callbacks = [log, ModelCheckpoint(checkpoint, model, optimizer, extra, seed=args.seed)] if root else []
    if initial_epoch < args.epochs:
        model.fit(
            x_train,
            y_train,
            optimizer=optimizer,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=data["val"],
            verbose=args.verbose,
            initial_epoch=initial_epoch,
            seed=args.seed,
            augment=crop_flip(args.crop_padding) if args.augment else None,
            callbacks=callbacks,
            communicator=comm,
            lr_schedule=schedule(args.schedule, args.lr, args.epochs, args.warmup_epochs),
            loss=SoftmaxCrossEntropy(label_smoothing=args.label_smoothing),
        )
    with optimizer.averaged_weights():  # the weights the checkpoint holds
        finish(model, data, (mean, std), out, args, backend, log.rows() if root else [], comm)
    return 0


def initial_model(path):
    """A model to fine-tune: a Keras file (minicnn.interop) or a minicnn checkpoint, checked to fit CIFAR-10."""
    from minicnn.interop import load_any

    model = load_any(path)[0]
    if model.input_shape != (32, 32, 3) or model.output_shape != (10,):
        raise ValueError(
            f"--init-from {path}: the model takes {model.input_shape} and gives {model.output_shape}; "
            f"CIFAR-10 needs input (32, 32, 3) and 10 class scores"
        )
    return model.astype("float32")


def finish(model, data, stats, out, args, backend, rows, comm=None):
    """Evaluate on the test set once (one view, and as the recipe's TTA), write metrics.json, draw the pictures."""
    x_test, y_test = data["test"]
    tta = None if args.tta == "none" else args.tta
    single = model.evaluate(x_test, y_test, communicator=comm)
    test = model.evaluate(x_test, y_test, communicator=comm, return_predictions=True, tta=tta) if tta else None
    test = test or model.evaluate(x_test, y_test, communicator=comm, return_predictions=True)
    pred = test.pop("predictions") if comm is None else comm.gather(test.pop("predictions"))
    if comm is not None and not comm.is_root:  # each rank predicted its share; rank 0 writes
        return
    per_class = {
        name: float((pred[y_test == k] == k).mean()) for k, name in enumerate(CIFAR10_CLASSES) if np.any(y_test == k)
    }
    seconds = sum(float(r["seconds"]) for r in rows)
    versions = backend.versions()
    if comm is not None:
        versions.update(comm.versions())
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_accuracy_single_view": single["accuracy"],
        "test_loss_single_view": single["loss"],
        "tta": args.tta,
        "recipe": args.recipe,
        "per_class_accuracy": per_class,
        "epochs": len(rows),
        "train_images_processed": len(data["train"][0]) * len(rows),
        "backend": backend.name,
        "train_seconds": seconds,
        "train_images_per_second": len(data["train"][0]) * len(rows) / seconds if seconds else None,
        "final_val_accuracy": float(rows[-1]["val_accuracy"]) if rows and rows[-1].get("val_accuracy") else None,
        "train_images": len(data["train"][0]),
        "config": {k: getattr(args, k) for k in RUN_KEYS},
        "versions": versions,
        "processes": 1 if comm is None else comm.size,
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    # The same network with its preprocessing in front: it predicts on raw 0..255 pixels.
    with_preprocessing(model, *stats).save(out / "predictor.npz", extra={"class_names": list(CIFAR10_CLASSES)})
    print(
        f"\ntest accuracy: {test['accuracy']:.4f}  (test loss {test['loss']:.4f}, {len(y_test)} images"
        + (f"; TTA {args.tta}, one view {single['accuracy']:.4f})" if tta else ")")
    )
    print("per class: " + ", ".join(f"{k} {v:.3f}" for k, v in per_class.items()))
    if args.plots:
        from minicnn import viz

        written = viz.plot_model(
            model,
            out,
            mean=stats[0],
            std=stats[1],
            x_test=x_test,
            y_test=y_test,
            y_pred=pred,
            class_names=CIFAR10_CLASSES,
            history=out / "history.csv",
        )
        print("wrote " + ", ".join(str(Path(p).name) for p in written.values()) + f" to {out}/")


if __name__ == "__main__":
    sys.exit(main())
