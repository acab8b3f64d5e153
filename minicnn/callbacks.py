"""Callbacks for ``Sequential.fit``: hooks called at the start and end of every epoch."""
from __future__ import annotations

import csv
import os
from pathlib import Path


class Callback:
    """Override what you need. ``logs`` at epoch end holds that epoch's metrics, ``lr`` and ``seconds``."""

    def on_epoch_begin(self, epoch: int, logs: dict):
        pass

    def on_epoch_end(self, epoch: int, logs: dict):
        pass


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` counted from 1, then the logs) to a CSV file.

    With ``append=True`` an existing file is kept (a resumed run), minus any rows from
    epochs at or after the one training restarts at.
    """

    def __init__(self, path, append=False):
        self.path = Path(path)
        self.append = append
        self._checked = False

    def on_epoch_begin(self, epoch, logs):
        if self._checked:
            return
        self._checked = True
        rows = []
        if self.append and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= epoch]
        self._rows = rows

    def on_epoch_end(self, epoch, logs):
        self._rows.append({"epoch": epoch + 1, **logs})
        fields = list(self._rows[-1].keys())
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self._rows)
        os.replace(tmp, self.path)
