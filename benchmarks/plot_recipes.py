"""Validation accuracy against training minutes, one line per run, from the runs' ``history.csv``.

    python benchmarks/plot_recipes.py LABEL=runs/fast/history.csv LABEL=runs/default/history.csv \\
        [--out docs/images/recipes.png] [--target 0.78]

The minutes are the cumulative ``seconds`` column (training and validation of each epoch, as
``fit`` logs them), so a run on a busy machine draws a longer line: say so in the caption.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_run(path) -> tuple[list[float], list[float]]:
    """(minutes at the end of each epoch, validation accuracy after it) from a ``history.csv``."""
    minutes, accuracy, total = [], [], 0.0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            total += float(row["seconds"])
            minutes.append(total / 60)
            accuracy.append(float(row["val_accuracy"]))
    return minutes, accuracy


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

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            p.error(f"expected LABEL=HISTORY.csv, got {spec!r}")
        minutes, accuracy = read_run(path)
        ax.plot(minutes, [100 * a for a in accuracy], marker="o", markersize=3, label=label)
    ax.axhline(100 * args.target, color="grey", linestyle="--", linewidth=1, label=f"{100 * args.target:.0f}%")
    ax.set_xlabel("training minutes (cumulative, including each epoch's validation)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
