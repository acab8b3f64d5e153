"""Callbacks for ``fit``: hooks called as training runs, with Keras's names.

Callback                  the hooks (on_train_begin/end, on_epoch_begin/end, on_train_batch_end), ``self.model``
History                   every epoch's logs, ``history.history`` (what ``fit`` returns)
CSVLogger                 one row per epoch in a CSV file (kept across a resumed run)
ModelCheckpoint           the model saved every epoch (or only its best), atomically; a run's restart point
LearningRateScheduler     ``schedule(epoch, lr) -> lr`` before every epoch
EarlyStopping             stop when a monitored number stops improving (optionally restoring the best weights)
ReduceLROnPlateau         divide the learning rate when a monitored number stops improving
"""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path

from .checkpoint import CheckpointError, load_weights, read_checkpoint
from .outputs import write_atomic


class Callback:
    """Override what you need. ``logs`` at epoch end holds that epoch's metrics, ``lr`` and ``seconds``.

    ``fit`` sets ``self.model`` (``set_model``) before training; a callback ends training by
    setting ``self.model.stop_training = True``, as in Keras.
    """

    model = None

    def set_model(self, model):
        """Called by ``fit`` before training: the model being trained."""
        self.model = model

    def on_train_begin(self, logs: dict | None = None):
        """Called once, before the first epoch."""

    def on_train_end(self, logs: dict | None = None):
        """Called once, after the last epoch (``logs``: the last epoch's)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None):
        """Called before epoch ``epoch`` (counted from 0) starts; ``logs`` is empty."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None):
        """Called after epoch ``epoch`` (counted from 0): ``logs`` holds its metrics, ``lr`` and ``seconds``."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None):
        """Called after every step with that batch's ``loss`` and ``accuracy``. Only callbacks that
        override it are called, since reading the loss costs a GPU sync per step."""


class History(dict):
    """What ``fit`` returns: ``{"loss": [...], "accuracy": [...], ...}`` per epoch, also as
    ``history.history`` (Keras's spelling), with ``history.epoch`` the epochs run."""

    @property
    def history(self) -> dict:
        return self

    @property
    def epoch(self) -> list[int]:
        return list(range(len(self.get("loss", []))))


def _monitored(logs: dict | None, monitor: str, who: str):
    """``logs[monitor]``, or None with no logs; a KeyError naming what the logs hold otherwise."""
    if not logs:
        return None
    if monitor not in logs:
        raise KeyError(f"{who}: monitor={monitor!r} is not in the logs; they hold {sorted(logs)}")
    return float(logs[monitor])


class _Improvement:
    """Is a monitored value better than the best so far? ``mode`` ``"min"``, ``"max"`` or ``"auto"``
    (max for accuracies, min otherwise, as Keras); ``min_delta``: the least change that counts."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.sign = 1.0 if mode == "max" or (mode == "auto" and "acc" in monitor) else -1.0
        self.min_delta, self.best = abs(min_delta), -math.inf

    def better(self, value: float) -> bool:
        return self.sign * value - self.min_delta > self.best

    def take(self, value: float) -> None:
        self.best = self.sign * value

    def best_value(self) -> float:
        return self.sign * self.best


class LearningRateScheduler(Callback):
    """Before every epoch, ``optimizer.learning_rate = schedule(epoch, learning_rate)`` (Keras's;
    a one-argument ``schedule(epoch)`` works too). ``verbose=1`` prints each change."""

    def __init__(self, schedule, verbose: int = 0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _optimizer_of(self.model, "LearningRateScheduler")
        try:
            lr = self.schedule(epoch, optimizer.lr)
        except TypeError:  # schedule(epoch), Keras 1's form
            lr = self.schedule(epoch)
        if not (isinstance(lr, (int, float)) or hasattr(lr, "__float__")) or not float(lr) > 0:
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}; expected lr > 0")
        optimizer.lr = float(lr)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr):.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = _optimizer_of(self.model, "LearningRateScheduler").lr


def _optimizer_of(model, who: str):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(f"{who} needs the model's optimizer: call model.compile(optimizer=...) before fit")
    return optimizer


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs
    (Keras's defaults: ``val_loss``, 0, 0). ``restore_best_weights=True`` puts back the weights of
    the best epoch when it stops (and at the end of training, if one was better than the last);
    ``start_from_epoch`` ignores the first epochs; ``baseline`` is a value to beat."""

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode, self.min_delta, self.baseline = mode, min_delta, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, int(start_from_epoch)
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self.improvement = _Improvement(self.monitor, self.mode, self.min_delta)
        if self.baseline is not None:
            self.improvement.take(float(self.baseline))
        self.wait, self.best_weights, self.best_epoch, self.stopped_epoch = 0, None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if value is None or epoch < self.start_from_epoch:
            return
        if self.improvement.better(value):
            self.improvement.take(value)
            self.wait, self.best_epoch = 0, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:  # Keras stops when wait >= patience after counting this epoch
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by ``min_delta``
    for ``patience`` epochs, then wait ``cooldown`` epochs; never below ``min_lr`` (Keras's defaults)."""

    def __init__(
        self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4, cooldown=0, min_lr=0
    ):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, min_delta, int(cooldown), float(min_lr)

    def on_train_begin(self, logs=None):
        self.improvement = _Improvement(self.monitor, self.mode, self.min_delta)
        self.wait = self.cooldown_left = 0

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if value is None:
            return
        optimizer = _optimizer_of(self.model, "ReduceLROnPlateau")
        if logs is not None:
            logs["lr"] = optimizer.lr
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.improvement.better(value):
            self.improvement.take(value)
            self.wait = 0
        elif self.cooldown_left <= 0:
            self.wait += 1
            if self.wait >= self.patience and optimizer.lr > self.min_lr:
                optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
                self.cooldown_left, self.wait = self.cooldown, 0
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {optimizer.lr:.6g}.")


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` counted from 1, then the logs) to a CSV file.

    With ``append=True`` an existing file is kept (a resumed run), minus any rows from
    epochs at or after the one training restarts at. :meth:`rows` gives every row so far.
    """

    def __init__(self, path, append=False):
        self.path = Path(path)
        self.append = append
        self._rows: list[dict] | None = None

    def rows(self) -> list[dict]:
        """Every epoch's row so far (strings, as read from the file, for earlier runs)."""
        if self._rows is not None:
            return list(self._rows)
        return self._read() if self.append else []  # not cached: on_epoch_begin must still cut

    def _read(self, before_epoch=None) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return [r for r in csv.DictReader(f) if before_epoch is None or int(r["epoch"]) <= before_epoch]

    def on_epoch_begin(self, epoch, logs):
        """Read the rows of earlier epochs once (a resumed run keeps those before ``epoch``)."""
        if self._rows is None:
            self._rows = self._read(before_epoch=epoch) if self.append else []

    def on_epoch_end(self, epoch, logs):
        """Add epoch ``epoch``'s row and rewrite the file whole (atomically)."""
        if self._rows is None:  # called without on_epoch_begin: start from what the file holds
            self._rows = self._read(before_epoch=epoch) if self.append else []
        rows = self._rows
        rows.append({"epoch": epoch + 1, **logs})
        fields = list(rows[-1].keys())

        def write(f):
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

        # Whole or not at all: a full disk keeps the previous file and leaves no temporary (OutputError).
        write_atomic(self.path, write, mode="w")


class SettingsChanged(ValueError):
    """A resumed run's settings differ from the interrupted run's: ``changed`` maps each setting to
    ``(saved, now)``."""

    def __init__(self, changed: dict):
        self.changed = changed
        super().__init__(
            "resuming needs the settings of the interrupted run; these differ (saved, now): "
            + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in changed.items())
        )


class ModelCheckpoint(Callback):
    """After every epoch, save the model to ``filepath``, atomically (Keras's callback, and a run's restart point).

    Keras's form: ``ModelCheckpoint("best.keras", monitor="val_accuracy", save_best_only=True)``; the
    model is the one ``fit`` trains, the file's kind follows its suffix (``.keras``, ``.npz``, and
    ``.weights.h5`` with ``save_weights_only=True``), and ``filepath`` may hold ``{epoch:02d}`` or a
    metric (``{val_loss:.2f}``). minicnn's form, ``ModelCheckpoint(path, model, optimizer, extra, seed)``,
    writes a ``.npz`` with the optimizer's state and ``extra``, which gets ``epoch`` (epochs
    completed) and ``rng_state`` (``seed`` and ``next_epoch``): ``fit`` draws an epoch's randomness
    from ``(seed, epoch)``, so these two numbers are the whole random state a resumed run needs to
    repeat an uninterrupted one. With an optimizer that keeps a weight average (``ema_momentum``), the
    file's weights are the average and the training weights travel in the optimizer state
    (:mod:`minicnn.averaging`).
    """

    def __init__(
        self,
        filepath,
        model=None,
        optimizer=None,
        extra=None,
        seed=None,
        *,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        initial_value_threshold=None,
    ):
        if isinstance(model, str):  # Keras's positional form: ModelCheckpoint(filepath, monitor, ...)
            monitor, model = model, None
        self.path, self.model, self.optimizer = Path(filepath), model, optimizer
        self.extra, self.seed = dict(extra or {}), seed
        self.monitor, self.verbose, self.mode = monitor, verbose, mode
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.improvement = _Improvement(monitor, mode, 0.0)
        if initial_value_threshold is not None:
            self.improvement.take(float(initial_value_threshold))

    def on_epoch_end(self, epoch, logs=None):
        """Save the model after epoch ``epoch`` (``epoch + 1`` completed), or only when it is the best so far."""
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if value is None or not self.improvement.better(value):
                return
            self.improvement.take(value)
        path = Path(str(self.path).format(epoch=epoch + 1, **(logs or {})))
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
            return
        if path.suffix.lower() != ".npz":
            self.model.save(path)
            return
        optimizer = self.optimizer if self.optimizer is not None else getattr(self.model, "optimizer", None)
        rng_state = {"seed": self.seed, "next_epoch": epoch + 1}
        averaged = optimizer.averaged_weights() if optimizer is not None else contextlib.nullcontext()
        with averaged:  # an EMA's average is the model's weights in the file; resume swaps back
            self.model.save(path, optimizer=optimizer, extra={**self.extra, "epoch": epoch + 1, "rng_state": rng_state})

    @staticmethod
    def resume(path, model, optimizer, config: dict, defaults: dict | None = None) -> int:
        """Load an interrupted run's weights and optimizer state from ``path`` into ``model`` and
        ``optimizer``; return the epoch to restart at. ``config``: the settings the run must share
        with the one it continues (compared with the ``config`` saved in ``extra``; ``defaults``
        stands in for settings that a checkpoint older than them lacks)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"cannot resume: {path} does not exist")
        contents = read_checkpoint(path)
        epoch, saved = ModelCheckpoint.run_state(contents[0]["extra"], path)
        ModelCheckpoint.check_settings(saved, config, defaults)  # before anything is loaded
        load_weights(model, path, optimizer=optimizer, contents=contents)
        return epoch

    @staticmethod
    def run_state(extra: dict, path) -> tuple[int, dict]:
        """``(epochs completed, the run's settings)`` from a checkpoint's ``extra``, type-checked:
        CheckpointError naming the file and the field otherwise."""
        epoch, config = extra.get("epoch", 0), extra.get("config", {})
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise CheckpointError(f"{path}: extra field 'epoch' must be an int >= 0, got {str(epoch)[:60]}")
        if not isinstance(config, dict):
            raise CheckpointError(f"{path}: extra field 'config' must be an object, got {str(config)[:60]}")
        return epoch, config

    @staticmethod
    def check_settings(saved: dict, config: dict, defaults: dict | None = None) -> None:
        """Raise ValueError naming every setting in ``config`` that differs from ``saved`` (the
        ``config`` of a checkpoint's ``extra``): a resumed run must share them with its run.
        ``defaults`` stands in for settings that a checkpoint older than them lacks."""
        saved = {**(defaults or {}), **saved}
        changed = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        if changed:
            raise SettingsChanged(changed)

    @staticmethod
    def resume_hint(path, command: str) -> str:
        """What a stopped run tells its user: the epochs the checkpoint at ``path`` holds and
        ``command``, which continues from it (or that there is nothing to resume)."""
        done = ModelCheckpoint.completed_epochs(path)
        if not done:
            return f"{path} holds no completed epoch: nothing to resume."
        return f"{path} holds {done} completed epoch(s); continue with:\n  {command}"

    @staticmethod
    def completed_epochs(path) -> int:
        """Epochs held by the checkpoint at ``path``; 0 when there is none or it is unreadable."""
        try:
            return ModelCheckpoint.run_state(read_checkpoint(path)[0]["extra"], path)[0]
        except CheckpointError:
            return 0
