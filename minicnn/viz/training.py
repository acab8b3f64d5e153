"""Pictures of a training run: the curves, and which classes get confused."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..interpret import confusion_matrix
from .figures import _class_name, _figure, _save


# -- how training went ---------------------------------------------------------------------
def _read_history_csv(path) -> dict:
    """A ``history.csv`` (``epoch, loss, accuracy, val_loss, ...``) as a dict of float lists."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"plot_history: {path} has no rows")
    return {
        key: [float(r[key]) if r.get(key) not in ("", None) else math.nan for r in rows]
        for key in rows[0]
        if key is not None
    }


def plot_history(history, path):
    """Draw loss and accuracy per epoch, training and validation, in two panels.

    ``history`` is the dict of lists that ``fit`` returns (``loss``, ``accuracy``, and
    ``val_loss``, ``val_accuracy`` when there was validation data) or the path of a
    ``history.csv`` written by the training script. Epochs are numbered from 1. With
    validation figures, a footnote says why they can lie above the training ones
    (:data:`TRAIN_VS_VALIDATION`: dropout and augmentation are on while training).
    """
    if isinstance(history, (str, Path)):
        history = _read_history_csv(history)
    history = {key: [float(v) for v in values] for key, values in history.items()}
    if not history.get("loss"):
        raise ValueError("plot_history: the history has no 'loss' values")
    n = len(history["loss"])
    epochs = history.get("epoch") or list(range(1, n + 1))
    fig = _figure(10, 4)
    panels = fig.subplots(1, 2)
    for ax, metric in zip(panels, ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
            values = history.get(key)
            if values and not all(math.isnan(v) for v in values):
                ax.plot(
                    epochs[: len(values)],
                    values,
                    style,
                    marker="o" if n <= 30 else None,
                    markersize=4,
                    label=label,
                    clip_on=False,
                )
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if n <= 20:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.5 if n == 1 else min(epochs), max(epochs) + 0.5 if n == 1 else max(epochs))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    title = f"Training history ({n} epoch{'s' if n != 1 else ''})"
    val = [v for v in history.get("val_accuracy") or [] if not math.isnan(v)]
    if val:
        best = int(np.nanargmax(history["val_accuracy"]))
        title += f": best validation accuracy {max(val):.1%} at epoch {epochs[best]:g}"
    fig.suptitle(title, fontsize=12)
    if val:
        fig.supxlabel(TRAIN_VS_VALIDATION, fontsize=8, color="0.3")
    return _save(fig, path)


TRAIN_VS_VALIDATION = (
    "train: averaged over the epoch's steps in training mode (dropout on, and augmentation when used), "
    "while the weights still change;\nvalidation: after the epoch, dropout off, no augmentation. "
    "So validation can lie above training."
)


# -- which classes get confused --------------------------------------------------------------
def plot_confusion_matrix(y_true, y_pred, path, class_names=None, normalize=False):
    """Draw the confusion matrix: true class down, predicted class across, a number per cell.

    Titled with the overall accuracy. ``normalize=True`` divides each row by its total, so
    a cell reads "the fraction of class t predicted as p" and the diagonal is per-class
    accuracy (recall).
    """
    k = len(class_names) if class_names is not None else None
    counts = confusion_matrix(y_true, y_pred, k)
    k = counts.shape[0]
    names = [_class_name(i, class_names) for i in range(k)]
    total = int(counts.sum())
    accuracy = np.trace(counts) / max(total, 1)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    size = max(5.0, 0.62 * k + 2.5)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="Blues", vmin=0, interpolation="nearest")
    threshold = values.max() / 2 if values.max() > 0 else 1
    for t in range(k):
        for p in range(k):
            text = f"{values[t, p]:.2f}" if normalize else f"{counts[t, p]:d}"
            ax.text(
                p,
                t,
                text,
                ha="center",
                va="center",
                fontsize=8 if k <= 12 else 6,
                color="white" if values[t, p] > threshold else "black",
            )
    ax.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(k), names, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, shrink=0.75, label="fraction of the true class" if normalize else "images")
    ax.set_title(
        f"Confusion matrix: accuracy {accuracy:.1%} on {total:,} images" + (" (rows normalised)" if normalize else ""),
        fontsize=11,
    )
    return _save(fig, path)
