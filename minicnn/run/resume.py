"""Resuming the main job: the settings a resumed run must share with the run it continues, the
checks of ``--resume`` and ``--extend`` before anything is loaded or written, and the command that
continues a stopped run.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from .callbacks import ModelCheckpoint, SettingsChanged
from .checkpoint import read_checkpoint
from .recipes import schedule

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


def run_config(args) -> dict:
    """The run's settings (:data:`RUN_KEYS`) as the checkpoint and ``metrics.json`` record them."""
    return {k: getattr(args, k) for k in RUN_KEYS}


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


def how_to_resume(args, argv, comm, interrupted: bool) -> str | None:
    """The command that continues a stopped run from its checkpoint; None where there is nothing to
    say (a run that failed before its first epoch needs no resume, only the error it printed)."""
    checkpoint = Path(args.out) / "model.npz"
    if not interrupted and not ModelCheckpoint.completed_epochs(checkpoint):
        return None
    rerun = " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--resume", "--extend"))
    command = f"{f'mpiexec -n {comm.size} ' if comm else ''}python {sys.argv[0]} --resume {rerun}"
    return ModelCheckpoint.resume_hint(checkpoint, command)
