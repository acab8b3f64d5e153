"""The model saved every epoch (or only its best), and a run's restart point."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..checkpoint import CheckpointError, load_weights, read_checkpoint
from .base import Callback
from .monitors import _Improvement, _monitored


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
