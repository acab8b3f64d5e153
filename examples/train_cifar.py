#!/usr/bin/env python
"""Train the documented CIFAR-10 CNN from scratch, evaluate it, and show what it learnt.

    python examples/train_cifar.py --backend cupy          # on a GPU
    python examples/train_cifar.py --backend numpy         # on the CPU
    python examples/train_cifar.py --resume                # continue an interrupted run
    mpiexec -n 2 python examples/train_cifar.py --distributed   # data-parallel over 2 processes

Everything lands in --out (default runs/cifar10): model.npz (checkpoint), summary.txt,
history.csv, metrics.json and the pictures (filters, stimuli, feature maps, curves,
confusion). See README.md for the recipe and the accuracy it reaches.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

import minicnn
from minicnn import CheckpointError, TrainingDiverged
from minicnn.callbacks import Callback, CSVLogger
from minicnn.distributed import abort_on_error
from minicnn.datasets import (CIFAR10_CLASSES, OFFICIAL_MD5, OFFICIAL_URL, DatasetError, augment, channel_stats, load_cifar10,
                              standardize)
from minicnn.optim import SGD, Adam

# The settings that a resumed run must share with the run it continues.
RUN_KEYS = ("optimizer", "lr", "batch_size", "augment", "val_split", "seed", "train_limit", "weight_decay",
            "warmup_epochs")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["auto", "numpy", "cupy"], default="auto")
    p.add_argument("--epochs", type=int, default=30, help="total epochs, also after --resume (default 30)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3 adam, 0.05 sgd)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="AdamW decay / SGD L2 (default: 5e-4 adam... see README)")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine decay")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random crop after 4-pixel padding + horizontal flip (default on)")
    p.add_argument("--val-split", type=int, default=5000, help="training images held out for validation")
    p.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py or the archive "
                   "(default $MINICNN_DATA or ~/.cache/minicnn)")
    p.add_argument("--url", default=OFFICIAL_URL, help="where to download the archive from")
    p.add_argument("--md5", default=OFFICIAL_MD5, help="expected MD5 of the archive, or 'none' to skip the check")
    p.add_argument("--out", default="runs/cifar10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--resume", action="store_true", help="continue from --out/model.npz")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="draw the pictures at the end (default on)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="1: progress bars, 2: a line per epoch")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over the processes of `mpiexec -n N` (needs the distributed extra); "
                        "--batch-size is then the global batch, a multiple of N")
    args = p.parse_args(argv)
    if args.lr is None:
        args.lr = 2e-3 if args.optimizer == "adam" else 0.05
    if args.weight_decay is None:
        args.weight_decay = 5e-4 if args.optimizer == "sgd" else 0.0
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.val_split < 0 or (args.train_limit is not None and args.train_limit < 1):
        p.error("--val-split must be >= 0 and --train-limit >= 1")
    return args


def lr_schedule(peak: float, epochs: int, warmup: float):
    """Linear warm-up to ``peak`` over ``warmup`` epochs, then a cosine decay to 0 at ``epochs``."""
    def schedule(t: float) -> float:
        if t < warmup:
            return peak * (t + 1e-3) / warmup
        return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (t - warmup) / max(epochs - warmup, 1e-9))))
    return schedule


def load_data(args, comm=None):
    """Training/validation/test arrays, standardised with statistics of the training part only."""
    md5 = None if str(args.md5).lower() == "none" else args.md5
    if comm is not None and not comm.is_root:
        comm.barrier()                    # distributed: rank 0 downloads and extracts first, alone
    (x_train, y_train), (x_test, y_test) = load_cifar10(args.data_dir, url=args.url, md5=md5)
    if comm is not None and comm.is_root:
        comm.barrier()
    if args.train_limit:
        x_train, y_train = x_train[:args.train_limit], y_train[:args.train_limit]
    if args.val_split >= len(x_train):
        raise ValueError(f"--val-split {args.val_split} leaves no training images (there are {len(x_train)})")
    # A fixed, seeded split: a resumed run holds out exactly the same images.
    order = np.random.default_rng([args.seed, 2**31 - 1]).permutation(len(x_train))
    val_idx, train_idx = order[:args.val_split], order[args.val_split:]
    mean, std = channel_stats(x_train[train_idx])
    data = {"train": (standardize(x_train[train_idx], mean, std), y_train[train_idx]),
            "val": (standardize(x_train[val_idx], mean, std), y_train[val_idx]) if args.val_split else None,
            "test": (standardize(x_test, mean, std), y_test)}
    return data, mean, std


class Checkpoint(Callback):
    """After every epoch: weights, optimizer state, statistics and where to restart, atomically."""

    def __init__(self, path, model, optimizer, extra):
        self.path, self.model, self.optimizer, self.extra = path, model, optimizer, extra

    def on_epoch_end(self, epoch, logs):
        # Epoch e+1 is complete. Its randomness is a function of (seed, epoch), so the
        # seed and the next epoch number are the whole RNG state a resumed run needs.
        self.model.save(self.path, optimizer=self.optimizer,
                        extra={**self.extra, "epoch": epoch + 1, "rng_state": {"seed": self.extra["config"]["seed"],
                                                                                "next_epoch": epoch + 1}})


def versions(backend, comm=None):
    info = {"minicnn": minicnn.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if comm is not None:
        import mpi4py
        info["mpi4py"] = mpi4py.__version__
        info["mpi"] = comm.MPI.Get_library_version().splitlines()[0].strip()
    if backend.name == "cupy":
        info["cupy"] = backend.xp.__version__
        info["gpu"] = backend.xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    comm = None
    if args.distributed:
        from minicnn.distributed import Communicator
        comm = Communicator()
        if args.batch_size % comm.size:     # every rank sees this alike, so all exit here; rank 0 says why
            if comm.is_root:
                print(f"error: --batch-size {args.batch_size} is the global batch and must be a multiple of the "
                      f"number of processes, {comm.size} (e.g. --batch-size {args.batch_size // comm.size * comm.size or comm.size})",
                      file=sys.stderr)
            return 2
    # Distributed: an error on any rank ends the whole job (MPI_Abort) instead of leaving the others waiting.
    with abort_on_error(comm):
        try:
            code = train(args, argv, comm)
        except (DatasetError, CheckpointError, ValueError, minicnn.backend.BackendError) as exc:
            print(f"error{'' if comm is None or comm.size == 1 else f' (rank {comm.rank})'}: {exc}", file=sys.stderr)
            code = 2
        if code:
            sys.exit(code)
    return 0


def train(args, argv, comm) -> int:
    root = comm is None or comm.is_root       # rank 0 alone prints and writes files
    say = print if root else (lambda *a, **k: None)
    out = Path(args.out)
    if root:
        out.mkdir(parents=True, exist_ok=True)
    backend = minicnn.set_backend(args.backend)
    if comm is not None and backend.name == "cupy":
        comm.use_local_gpu()                  # one GPU per process on each machine
    config = {k: getattr(args, k) for k in RUN_KEYS}
    say(f"minicnn {minicnn.__version__} on {backend.name}; output in {out}/"
        + (f"; {comm.size} processes, {args.batch_size // comm.size} images each per step" if comm else ""))

    data, mean, std = load_data(args, comm)
    x_train, y_train = data["train"]
    say(f"data: {len(x_train)} training, {0 if data['val'] is None else len(data['val'][0])} validation, "
        f"{len(data['test'][0])} test images")

    model = minicnn.models.cifar10_cnn(seed=args.seed)
    if args.optimizer == "adam":
        optimizer = Adam(model, lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = SGD(model, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    checkpoint_path = out / "model.npz"
    initial_epoch = 0
    if args.resume:
        if not checkpoint_path.is_file():
            print(f"error: --resume but {checkpoint_path} does not exist", file=sys.stderr)
            return 2
        extra = model.load_weights(checkpoint_path, optimizer=optimizer)
        saved = extra.get("config", {})
        changed = {k: (saved.get(k), config[k]) for k in RUN_KEYS if saved.get(k) != config[k]}
        if changed:
            print("error: --resume needs the settings of the interrupted run; these differ (saved, now): "
                  + ", ".join(f"--{k.replace('_', '-')} {a} vs {b}" for k, (a, b) in changed.items()), file=sys.stderr)
            return 2
        initial_epoch = int(extra["epoch"])
        say(f"resuming after epoch {initial_epoch} from {checkpoint_path}")
        if initial_epoch >= args.epochs:
            say(f"the checkpoint already has {initial_epoch} epochs (--epochs {args.epochs}); evaluating it")

    summary = model.summary()
    say(summary)
    if root:
        (out / "summary.txt").write_text(summary + "\n")

    extra = {"mean": mean, "std": std, "config": config, "class_names": list(CIFAR10_CLASSES),
             "backend": backend.name}
    callbacks = [CSVLogger(out / "history.csv", append=args.resume), Checkpoint(checkpoint_path, model, optimizer, extra)]
    if not root:
        callbacks = []
    try:
        if initial_epoch < args.epochs:
            model.fit(x_train, y_train, optimizer=optimizer, epochs=args.epochs, batch_size=args.batch_size,
                      validation_data=data["val"], verbose=args.verbose, initial_epoch=initial_epoch, seed=args.seed,
                      augment=augment if args.augment else None, callbacks=callbacks,
                      lr_schedule=lr_schedule(args.lr, args.epochs, args.warmup_epochs), communicator=comm)
    except KeyboardInterrupt:
        done = _saved_epoch(checkpoint_path)
        say(f"\ninterrupted. {checkpoint_path} holds {done} completed epoch(s); continue with:\n"
            f"  {f'mpiexec -n {comm.size} ' if comm else ''}python {sys.argv[0]} --resume --out {out} --epochs {args.epochs} "
            + " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"),
            file=sys.stderr)
        return 130
    except TrainingDiverged as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finish(model, data, out, args, backend, mean, std, comm)
    return 0


def _saved_epoch(path) -> int:
    try:
        from minicnn.checkpoint import read_checkpoint
        return int(read_checkpoint(path)[0]["extra"].get("epoch", 0))
    except (CheckpointError, KeyError):
        return 0


def finish(model, data, out, args, backend, mean, std, comm=None):
    """Evaluate on the test set, write metrics.json and the pictures."""
    import csv

    x_test, y_test = data["test"]
    # One pass over the test set gives the figures and the predicted classes.
    test = model.evaluate(x_test, y_test, communicator=comm, return_predictions=True)
    pred = test.pop("predictions")
    if comm is not None:                    # each rank predicted its share; rank 0 gathers and writes
        pred = comm.gather(pred)
        if not comm.is_root:
            return
    per_class = {name: float((pred[y_test == k] == k).mean()) for k, name in enumerate(CIFAR10_CLASSES)
                 if np.any(y_test == k)}
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train_seconds = sum(float(r["seconds"]) for r in rows)
    images = len(data["train"][0]) * len(rows)
    metrics = {
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "per_class_accuracy": per_class,
        "epochs": len(rows), "backend": backend.name, "train_seconds": train_seconds,
        "train_images_per_second": images / train_seconds if train_seconds else None,
        "final_val_accuracy": float(rows[-1]["val_accuracy"]) if rows and rows[-1].get("val_accuracy") else None,
        "train_images": len(data["train"][0]), "config": {k: getattr(args, k) for k in RUN_KEYS},
        "versions": versions(backend, comm), "processes": 1 if comm is None else comm.size,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"\ntest accuracy: {test['accuracy']:.4f}  (test loss {test['loss']:.4f}, {len(y_test)} images)")
    print("per class: " + ", ".join(f"{k} {v:.3f}" for k, v in per_class.items()))
    if not args.plots:
        return
    from minicnn import viz
    written = viz.plot_model(model, out, mean=mean, std=std, x_test=x_test, y_test=y_test, y_pred=pred,
                             class_names=CIFAR10_CLASSES, history=out / "history.csv")
    print("wrote " + ", ".join(str(Path(p).name) for p in written.values()) + f" to {out}/")


if __name__ == "__main__":
    sys.exit(main())
