"""One row per epoch in a CSV file, rewritten whole every epoch."""

from __future__ import annotations

import csv
from pathlib import Path

from ..outputs import write_atomic
from .base import Callback


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

    def on_epoch_begin(self, epoch, logs=None):
        """Read the rows of earlier epochs once (a resumed run keeps those before ``epoch``)."""
        if self._rows is None:
            self._rows = self._read(before_epoch=epoch) if self.append else []

    def on_epoch_end(self, epoch, logs=None):
        """Add epoch ``epoch``'s row and rewrite the file whole (atomically)."""
        if self._rows is None:  # called without on_epoch_begin: start from what the file holds
            self._rows = self._read(before_epoch=epoch) if self.append else []
        rows = self._rows
        rows.append({"epoch": epoch + 1, **(logs or {})})
        fields = list(rows[-1].keys())

        def write(f):
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

        # Whole or not at all: a full disk keeps the previous file and leaves no temporary (OutputError).
        write_atomic(self.path, write, mode="w")
