"""Following a training run as it writes its files: ``python -m minicnn.explore RUN_DIR --watch``.

:class:`WatchedRun` answers the page as :class:`~minicnn.explore.api.Explorer` does, for whatever
the run folder holds now. Every ``/api/run`` request (the page polls it every second or so) compares
each file's ``(inode, size, mtime)`` with the version shown and reads a changed one again (the other
routes answer for what the last one read, so one poll's drawing comes from one model): ``history.csv``,
``filters.npz`` (:class:`~minicnn.callbacks.FilterTimeline`) and ``model.npz``, whose test-set
predictions are then made again.

Reads are safe while training replaces the files: minicnn writes each one to a temporary file and
renames it over the old (``os.replace``), so one open file is always one whole version. A model or
timeline is first copied through one open file into a private folder, so the checks and the load see
the same bytes. A file that cannot be read (gone, damaged) leaves the previous state shown, with a note,
and is tried again at the next request.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

from ..run.callbacks import read_filter_timeline
from .api import Explorer, read_history
from .wire import ApiError, kernel_tiles

Signature = tuple[int, int, int]
FILES = ("history.csv", "filters.npz", "model.npz")  # history first: the model's epoch is never ahead of it


def signature(path: Path) -> Signature | None:
    """``(inode, size, mtime in ns)``, which a rename or a rewrite changes; None when there is no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def timeline_reply(timeline: dict | None) -> dict | None:
    """A timeline (:func:`~minicnn.callbacks.read_filter_timeline`) as the page takes it: epochs and,
    per epoch, one tile per filter, each scaled on its own as ``/api/filters``'s tiles are."""
    if timeline is None:
        return None
    return {
        "layer": timeline["layer"],
        "epochs": timeline["epochs"].tolist(),
        "tiles": [kernel_tiles(k) for k in timeline["kernels"]],
    }


class WatchedRun:
    """The explorer of a run folder that training is still writing.

    Args:
        run_dir: the training's ``--out`` (it may not exist yet).
        test: ``(x, y)`` uint8 test images and labels, or None; left out when they do not fit the model.
    """

    def __init__(self, run_dir, test=None):
        self.run_dir = Path(run_dir)
        self.test = test
        self.current: Explorer | None = None
        self.version = 0  # models loaded so far: the page redraws when it changes
        self.history: dict | None = None
        self.timeline: dict | None = None
        self.timeline_tiles: dict | None = None  # the timeline as /api/filters sends it, encoded once per read
        self.problem: str | None = None
        self.seen: dict[str, Signature | None] = {}
        self.lock = threading.Lock()  # one refresh at a time: a second request waits, then finds nothing new
        self.model_lock = threading.Lock()  # no_grad and shapes_only are flags of the process: one model at a time
        self._scratch = tempfile.mkdtemp(prefix="minicnn-watch-")
        self._remove = weakref.finalize(self, shutil.rmtree, self._scratch, True)  # also when never closed
        self.refresh()

    def close(self) -> None:
        """Remove the private copies' folder."""
        self._remove()

    # -- reading the folder -----------------------------------------------------------------
    def refresh(self) -> None:
        """Read again every file whose signature changed since it was last read whole."""
        with self.lock:
            problems = []
            for name in FILES:
                now = signature(self.run_dir / name)
                if now is None or now == self.seen.get(name):
                    continue  # unchanged, or not there (yet): what is shown stays
                try:
                    getattr(self, "_load_" + name.split(".")[0])(self.run_dir / name)
                except (OSError, ValueError, csv.Error) as exc:  # CheckpointError is a ValueError: keep the last state
                    said = str(exc).replace(self._scratch, str(self.run_dir))  # name the run's file, not our copy
                    problems.append(f"{name} could not be read ({said}); showing the previous one, trying again")
                    continue
                self.seen[name] = now  # taken before the read: a replace in between only means one more read
            self.problem = "; ".join(problems) or None
            if self.current is not None:
                self.current.history, self.current.timeline = self.history, self.timeline_tiles

    def _private_copy(self, path: Path) -> Path:
        """``path`` copied through one open file (one whole version, even if renamed over meanwhile)."""
        copy = Path(self._scratch) / path.name
        with open(path, "rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return copy

    def _load_history(self, path: Path) -> None:
        self.history = read_history(path)

    def _load_filters(self, path: Path) -> None:
        self.timeline = read_filter_timeline(self._private_copy(path))
        self.timeline_tiles = timeline_reply(self.timeline)

    def _load_model(self, path: Path) -> None:
        from ..interop import load_any

        copy = self._private_copy(path)
        with self.model_lock:  # the old model may be answering a request meanwhile
            model, extra = load_any(copy)
        test = self.test
        if test is not None and tuple(test[0].shape[1:]) != tuple(model.input_shape):
            test = None  # images of another shape: the model cannot take them
        self.current = Explorer(model, extra, test=test, name=f"{self.run_dir.name}/model.npz", lock=self.model_lock)
        self.version += 1

    # -- the replies ------------------------------------------------------------------------------
    def state(self) -> dict:
        """What the page polls for: how far the run is, and which model it is looking at."""
        epochs = len(next(iter(self.history.values()))) if self.history else 0
        started = any((self.run_dir / name).exists() for name in FILES)
        model_epoch = self.current.extra.get("epoch") if self.current is not None else None
        return {
            "watching": True,
            "run_dir": str(self.run_dir),
            "started": started,
            "has_model": self.current is not None,
            "epochs": epochs,
            "model_epoch": model_epoch if isinstance(model_epoch, int) else None,
            "version": self.version,
            "problem": self.problem,
        }

    def _now(self) -> Explorer:
        if self.current is None:
            raise ApiError(f"waiting for the first epoch: {self.run_dir / 'model.npz'} does not exist yet", 404)
        return self.current

    def run(self) -> dict:
        """``GET /api/run``: the history so far and where the run is; the test set's numbers once a model exists."""
        self.refresh()
        if self.current is None:
            empty = {"classes": None, "confusion": None, "per_class": None, "accuracy": None, "test_images": 0}
            return {**empty, "history": self.history, **self.state()}
        return {**self.current.run(), **self.state()}

    def filters(self) -> dict:
        """``GET /api/filters``: the first-layer filters and the timeline of the files the last ``run()`` read
        (not read again here: what the page draws after one poll all comes from one model)."""
        return {**self._now().filters(), "watching": True}

    def info(self) -> dict:
        return {**self._now().info(), "watching": True}

    def images(self, query: dict) -> dict:
        return self._now().images(query)

    def forward(self, spec) -> dict:
        return self._now().forward(spec)

    def explain(self, request) -> dict:
        return self._now().explain(request)

    def stimulus(self, layer, channel) -> dict:
        return self._now().stimulus(layer, channel)
