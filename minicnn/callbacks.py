"""Callbacks for ``fit``: hooks called at the start and end of every epoch.

CSVLogger        one row per epoch in a CSV file (kept across a resumed run)
ModelCheckpoint  weights, optimizer state and where to restart, atomically, every epoch
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

from .checkpoint import CheckpointError, load_weights, read_checkpoint
from .outputs import write_atomic


class Callback:
    """Override what you need. ``logs`` at epoch end holds that epoch's metrics, ``lr`` and ``seconds``."""

    def on_epoch_begin(self, epoch: int, logs: dict):
        """Called before epoch ``epoch`` (counted from 0) starts; ``logs`` is empty."""
        pass

    def on_epoch_end(self, epoch: int, logs: dict):
        """Called after epoch ``epoch`` (counted from 0): ``logs`` holds its metrics, ``lr`` and ``seconds``."""
        pass


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
    """After every epoch, save weights, optimizer state and ``extra`` to ``path``, atomically.

    ``extra`` gets ``epoch`` (epochs completed) and ``rng_state`` (``seed`` and
    ``next_epoch``): ``fit`` draws an epoch's randomness from ``(seed, epoch)``, so these two
    numbers are the whole random state a resumed run needs to repeat an uninterrupted one.
    With an optimizer that keeps a weight average (``ema_momentum``), the file's weights are
    the average and the training weights travel in the optimizer state (:mod:`minicnn.averaging`).
    """

    def __init__(self, path, model, optimizer, extra=None, seed=None):
        self.path, self.model, self.optimizer = Path(path), model, optimizer
        self.extra, self.seed = dict(extra or {}), seed

    def on_epoch_end(self, epoch, logs):
        """Save the checkpoint for ``epoch + 1`` completed epochs (atomically)."""
        rng_state = {"seed": self.seed, "next_epoch": epoch + 1}
        averaged = self.optimizer.averaged_weights() if self.optimizer is not None else contextlib.nullcontext()
        with averaged:  # an EMA's average is the model's weights in the file; resume swaps back
            self.model.save(
                self.path, optimizer=self.optimizer, extra={**self.extra, "epoch": epoch + 1, "rng_state": rng_state}
            )

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
