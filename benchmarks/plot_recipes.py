"""Validation accuracy against training minutes, one line per run, from the runs' ``history.csv``.

    python benchmarks/plot_recipes.py LABEL=runs/fast/history.csv LABEL=runs/default/history.csv \\
        [--out docs/images/recipes.png] [--target 0.78]

Left: against the cumulative ``seconds`` column (training and validation of each epoch, as
``fit`` logs them), so a run on a busy machine draws a longer line: say so in the caption.
Right: against the epoch, which no other job on the machine can stretch.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_run(path) -> tuple[list[float], list[float], list[int]]:
    """(minutes at the end of each epoch, validation accuracy after it, the epoch) from a ``history.csv``."""
    minutes, accuracy, epochs, total = [], [], [], 0.0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            total += float(row["seconds"])
            minutes.append(total / 60)
            accuracy.append(float(row["val_accuracy"]))
            epochs.append(int(row["epoch"]))
    return minutes, accuracy, epochs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="LABEL=HISTORY.csv")
    p.add_argument("--out", default="docs/images/recipes.png")
    p.add_argument("--target", type=float, default=0.78, help="a horizontal line (the course's accuracy)")
    p.add_argument("--title", default="minicnn on 2 CPU cores: validation accuracy against training time")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_epoch) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120, sharey=True)
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            p.error(f"expected LABEL=HISTORY.csv, got {spec!r}")
        minutes, accuracy, epochs = read_run(path)
        percent = [100 * a for a in accuracy]
        by_time.plot(minutes, percent, marker="o", markersize=3, label=label)
        by_epoch.plot(epochs, percent, marker="o", markersize=3, label=label)
    for ax in (by_time, by_epoch):
        ax.axhline(100 * args.target, color="grey", linestyle="--", linewidth=1, label=f"{100 * args.target:.0f}%")
        ax.grid(alpha=0.3)
    by_time.set_xlabel("training minutes (cumulative, with each epoch's validation)")
    by_epoch.set_xlabel("epoch")
    by_time.set_ylabel("validation accuracy (%)")
    by_epoch.legend(fontsize=7, loc="lower right")
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
