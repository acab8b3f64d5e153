"""Callbacks that watch a number and act on the run: the learning rate, or when to stop."""

from __future__ import annotations

import math

from .base import Callback


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
