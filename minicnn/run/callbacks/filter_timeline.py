"""The first convolution's kernels after every epoch, kept in one small ``.npz`` beside the run.

Layout (plain arrays, checked as a checkpoint is before NumPy reads them)::

    filters/epochs     int64 (E,): epochs completed when each snapshot was taken (0: before training)
    filters/kernels    float32 (E, kh, kw, C, F): the first Conv2D's ``W`` at each of them
    filters/layer      int64 (): that layer's position in the model
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ...backend import to_numpy
from ...layers import Conv2D
from ..checkpoint import CheckpointError, check_npz, write_checkpoint
from .base import Callback

MAX_SNAPSHOTS = 100_000  # far more epochs than any run here; a file claiming more is not one of ours
MEMBERS = {"filters/epochs", "filters/kernels", "filters/layer"}


def read_filter_timeline(path) -> dict:
    """``{"epochs": (E,) ints, "kernels": (E, kh, kw, C, F) float32, "layer": int}`` from ``path``.

    The file is untrusted: its zip and array headers are checked in Python first (:func:`check_npz`),
    then every array's kind and shape; anything else raises :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    try:
        check_npz(path, prefixes=("filters/",))
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: not a filter timeline ({exc})") from None
    except Exception as exc:  # zip, npy-header and CRC errors all mean "corrupt"
        raise CheckpointError(f"{path}: not a readable filter timeline ({type(exc).__name__}: {exc})") from None
    if set(arrays) != MEMBERS:
        raise CheckpointError(f"{path}: a filter timeline holds {sorted(MEMBERS)}, got {sorted(arrays)}")
    epochs, kernels, layer = arrays["filters/epochs"], arrays["filters/kernels"], arrays["filters/layer"]
    if epochs.ndim != 1 or epochs.dtype.kind not in "iu" or len(epochs) > MAX_SNAPSHOTS:
        raise CheckpointError(
            f"{path}: epochs must be up to {MAX_SNAPSHOTS} integers, got {epochs.dtype} {epochs.shape}"
        )
    if np.any(epochs < 0) or np.any(np.diff(epochs) <= 0):
        raise CheckpointError(f"{path}: epochs must be increasing and >= 0, got {epochs[:10].tolist()}")
    if kernels.dtype.kind != "f" or kernels.ndim != 5 or len(kernels) != len(epochs):
        raise CheckpointError(
            f"{path}: kernels must be floats (epochs, kh, kw, C, F) with {len(epochs)} epochs, "
            f"got {kernels.dtype} {kernels.shape}"
        )
    if layer.shape != () or layer.dtype.kind not in "iu" or int(layer) < 0:
        raise CheckpointError(f"{path}: layer must be one integer >= 0, got {layer.dtype} {layer.shape}")
    return {"epochs": epochs.astype(np.int64), "kernels": kernels.astype(np.float32), "layer": int(layer)}


class FilterTimeline(Callback):
    """Keep the first Conv2D's kernels after every epoch in ``path`` (rewritten whole, atomically).

    The snapshot before training is epoch 0. With ``append=True`` (a resumed run) the snapshots of
    epochs up to the one training restarts at are kept and the rest dropped, as :class:`CSVLogger`
    keeps rows. With an ``optimizer`` that averages weights, the average is kept, as the checkpoint does.
    """

    def __init__(self, path, model=None, optimizer=None, append=False):
        self.path, self.model, self.optimizer, self.append = Path(path), model, optimizer, append
        self.epochs: list[int] | None = None
        self.kernels: list[np.ndarray] = []

    def _layer(self) -> int:
        for i, layer in enumerate(self.model.layers):
            if isinstance(layer, Conv2D):
                return i
        raise ValueError(f"FilterTimeline: the model has no Conv2D layer (layers: {len(self.model.layers)})")

    def _snapshot(self, epoch: int) -> None:
        averaged = self.optimizer.averaged_weights() if self.optimizer is not None else contextlib.nullcontext()
        with averaged:  # the weights the checkpoint holds
            self.kernels.append(to_numpy(self.model.layers[self._layer()].params["W"]).astype(np.float32))
        assert self.epochs is not None
        self.epochs.append(epoch)
        arrays = {
            "filters/epochs": np.asarray(self.epochs, np.int64),
            "filters/kernels": np.stack(self.kernels),
            "filters/layer": np.asarray(self._layer(), np.int64),
        }
        write_checkpoint(self.path, arrays)  # to a temporary, then renamed: a reader never sees half

    def on_epoch_begin(self, epoch, logs=None):
        """First call: keep a resumed run's earlier snapshots (up to ``epoch``), or take epoch 0's."""
        if self.epochs is not None:
            return
        self.epochs = []
        if self.append and self.path.is_file():
            kept = read_filter_timeline(self.path)
            for e, k in zip(kept["epochs"].tolist(), kept["kernels"]):
                if e <= epoch and k.shape == self.model.layers[self._layer()].params["W"].shape:
                    self.epochs.append(e)
                    self.kernels.append(k)
        if not self.epochs or self.epochs[-1] != epoch:
            self._snapshot(epoch)

    def on_epoch_end(self, epoch, logs=None):
        """Add the kernels after epoch ``epoch`` (``epoch + 1`` completed) and rewrite the file."""
        if self.epochs is None:
            self.on_epoch_begin(epoch)
        self._snapshot(epoch + 1)
