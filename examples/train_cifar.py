#!/usr/bin/env python
"""Train the documented CIFAR-10 CNN from scratch, evaluate it, and show what it learnt.

    python examples/train_cifar.py --train-limit 10000 --epochs 3 --out runs/quick   # a first try
    python examples/train_cifar.py --backend cupy          # on a GPU
    python examples/train_cifar.py --backend numpy         # on the CPU
    python examples/train_cifar.py --model resnet --recipe resnet   # a small ResNet with batch norm (docs/resnet.md)
    python examples/train_cifar.py --recipe fast           # 10 epochs, lighter regularisation, whitening, flip TTA
    python examples/train_cifar.py --resume                # continue an interrupted run
    python examples/train_cifar.py --explore               # watch it learn: the explorer follows the run
    mpiexec -n 2 python examples/train_cifar.py --distributed   # data-parallel over 2 processes

Everything lands in --out (default runs/cifar10): model.npz (checkpoint), summary.txt,
history.csv, filters.npz (the first layer's kernels every epoch), metrics.json and the pictures
(filters, stimuli, feature maps, curves, confusion). docs/recipe.md describes the options, the
recipe and the accuracy it reaches.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import minicnn
from minicnn.callbacks import CSVLogger, FilterTimeline, ModelCheckpoint
from minicnn.datasets import CIFAR10_CLASSES, cifar10_splits, crop_flip
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import SGD, Adam

# The command line, resuming and the run's safety live in the library (minicnn.run), tested there;
# the names below were this script's own and still work from here.
from minicnn.run import (  # noqa: F401
    DEFAULT_EPOCHS,
    LEGACY_CONFIG,
    RUN_KEYS,
    build_parser,
    data_options,
    describe_data,
    dropout_rates,
    finish,
    how_to_resume,
    initial_model,
    md5_or_none,
    named_model,
    number,
    plan_resume,
    run_config,
    run_safely,
    settings_as_flags,
    split_as_flags,
    whole_number,
)
from minicnn.run import parse_args as parse_options
from minicnn.run.explore import explorer_beside
from minicnn.run.outputs import check_writable, write_text
from minicnn.run.recipes import RECIPES, SCHEDULES, schedule  # noqa: F401  (--recipe's settings; the old names)
from minicnn.run.whitening import init_first_conv_whitened


def parse_args(argv=None):
    """Every option checked, the recipe's defaults filled in (``--help`` lists them)."""
    return parse_options(argv, description=__doc__)


def main(argv=None) -> int:
    """Parse ``argv`` and train; a failure ends with its message and exit status (2: refused,
    1: stopped by the disk, the memory or a diverging loss, 128 + N: signal N)."""
    return run_safely(train, parse_args(argv), argv)


def train(args, comm) -> int:
    """The recipe: data, model, optimizer and schedule, ``fit``, then evaluate and draw."""
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

    # 1. The data: CIFAR-10, 10% of the training images held out for validation, all of it
    #    standardised with the training part's mean and standard deviation.
    with split_as_flags():
        data, mean, std = cifar10_splits(args.data_dir, communicator=comm, **data_options(args))
    x_train, y_train = data["train"]
    say(describe_data(args, data))

    # 2. The model: the documented CNN (or --model's ResNet, or --init-from's model to fine-tune).
    if args.init_from:
        model = initial_model(args.init_from)
    else:
        model = named_model(args)
    if args.whiten_init and not args.resume:  # a resumed run loads its weights instead
        init_first_conv_whitened(model, x_train)

    # 3. The optimizer: Adam (or Nesterov SGD), optionally keeping an average of the weights.
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    average = {"ema_momentum": args.ema or None, "ema_start": int(round(args.ema_start_epoch * steps_per_epoch))}
    if args.optimizer == "adam":
        optimizer = Adam(model, lr=args.lr, weight_decay=args.weight_decay, **average)
    else:
        optimizer = SGD(model, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay, **average)

    # 4. With --resume: the weights, the optimizer's state and the epoch from the checkpoint.
    config = run_config(args)
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

    # 5. fit: warm-up then the recipe's decay; a row of history.csv and a checkpoint after every epoch.
    planned = {**config, "epochs": args.epochs}  # the total the schedule ends at, for --resume
    extra = {"mean": mean, "std": std, "config": planned, "class_names": list(CIFAR10_CLASSES), "backend": backend.name}
    log = CSVLogger(out / "history.csv", append=args.resume)
    timeline = FilterTimeline(out / "filters.npz", model, optimizer, append=args.resume)  # the explorer's slider
    callbacks = [log, ModelCheckpoint(checkpoint, model, optimizer, extra, seed=args.seed), timeline] if root else []
    watched = args.explore and root and initial_epoch < args.epochs  # --explore: the page follows --out
    with explorer_beside(out, args.explore_port, args.data_dir, say) if watched else contextlib.nullcontext():
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

        # 6. Evaluate on the test set (with the recipe's TTA), write metrics.json, draw the pictures.
        with optimizer.averaged_weights():  # the weights the checkpoint holds
            finish(model, data, (mean, std), out, args, backend, log.rows() if root else [], comm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
