"""What every callback is: the hooks ``fit`` calls, and the History it returns."""

from __future__ import annotations

from typing import Any


class Callback:
    """Override what you need. ``logs`` at epoch end holds that epoch's metrics, ``lr`` and ``seconds``.

    ``fit`` sets ``self.model`` (``set_model``) before training; a callback ends training by
    setting ``self.model.stop_training = True``, as in Keras.
    """

    model: Any = None

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


def call_hook(callbacks, name: str, *args) -> None:
    """Call ``name`` on every callback that has it (plain objects with a few hooks work too)."""
    for cb in callbacks:
        method = getattr(cb, name, None)
        if method is not None:
            method(*args)


def overrides(callback, name: str) -> bool:
    """Does ``callback`` do something in hook ``name`` (not :class:`Callback`'s no-op)? Batch hooks
    read the loss on the host: a GPU sync per step that only a callback that wants it should pay."""
    method = getattr(type(callback), name, None)
    return method is not None and method is not getattr(Callback, name, None)
