"""Ablation of the fast recipe's tricks, on the validation split only (the test set is never read).

    python benchmarks/ablate_recipe.py --data-dir /tmp/cifar_full --md5 none \\
        --train-images 10000 --epochs 3 --out runs/ablation [--variants fast,no_smoothing,...]

Each variant is the fast recipe (``minicnn.recipes.RECIPES["fast"]``) with one setting changed, trained
from the same initial weights on the first ``--train-images`` of the 45,000 training images
(the validation split is the script's: the same 5,000 held-out images as a full run). After
training, the validation split is scored with one view and with each test-time augmentation,
with the averaged weights when the variant keeps an average. Every variant writes
``OUT/<variant>/history.csv`` (for ``plot_recipes.py``) and one line of ``OUT/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import minicnn
from minicnn.callbacks import CSVLogger
from minicnn.datasets import cifar10_splits, crop_flip
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import Adam
from minicnn.recipes import RECIPES, schedule
from minicnn.whitening import init_first_conv_whitened

# One change each from the fast recipe (RECIPES["fast"]).
VARIANTS = {
    "fast": {},
    "no_smoothing": {"label_smoothing": 0.0},
    "ema_0.99": {"ema": 0.99},
    "ema_0.999": {"ema": 0.999},
    "cosine": {"schedule": "cosine"},
    "one_cycle": {"schedule": "one-cycle"},
    "batch_64_lr_2e-3": {"batch_size": 64, "lr": 2e-3},
    "batch_256_lr_4e-3": {"batch_size": 256, "lr": 4e-3},
    "ema_0.99_from_7": {"ema": 0.99, "ema_start_epoch": 7.0},
    "lr_4e-3": {"lr": 4e-3},
    "no_whitening": {"whiten_init": False},  # the fast recipe before whitening (2026-12-01's ablation)
    "crop_padding_4": {"crop_padding": 4},  # the fast recipe before 2-pixel crops (2026-12-02's ablation)
    "course_dropout": {"dropout": (0.25, 0.25, 0.5)},  # the fast recipe before halved dropout (2026-12-02)
}


def run_variant(name, data, epochs, out, seed, verbose, ttas=(None, "flip")) -> dict:
    settings = {**RECIPES["fast"], **VARIANTS[name]}
    x, y = data["train"]
    model = minicnn.models.cifar10_cnn(seed=seed, dropout=settings["dropout"])
    if settings.get("whiten_init"):
        init_first_conv_whitened(model, x)
    steps = -(-len(x) // settings["batch_size"])
    ema_start = int(round(settings.get("ema_start_epoch", 0.0) * steps))
    optimizer = Adam(model, lr=settings["lr"], ema_momentum=settings["ema"] or None, ema_start=ema_start)
    log = CSVLogger(out / name / "history.csv")
    start = time.perf_counter()
    model.fit(
        x,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=settings["batch_size"],
        validation_data=data["val"],
        verbose=verbose,
        seed=seed,
        augment=crop_flip(settings["crop_padding"]),
        lr_schedule=schedule(settings["schedule"], settings["lr"], epochs, settings["warmup_epochs"]),
        loss=SoftmaxCrossEntropy(label_smoothing=settings["label_smoothing"]),
        callbacks=[log],
    )
    seconds = time.perf_counter() - start
    result = {"variant": name, "epochs": epochs, "train_images": len(x), "steps": steps * epochs, "seconds": seconds}
    with optimizer.averaged_weights():
        for tta in ttas:
            result[f"val_accuracy_{tta or 'single'}"] = model.evaluate(*data["val"], tta=tta)["accuracy"]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--md5", default="none", help="expected MD5 of the archive, or 'none'")
    p.add_argument("--train-images", type=int, default=10000, help="the first N of the 45,000 training images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2)
    p.add_argument("--flip-shift", action="store_true", help="also score the 6-view TTA (3x the flip's cost)")
    args = p.parse_args(argv)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    data, _, _ = cifar10_splits(args.data_dir, md5=None if args.md5.lower() == "none" else args.md5, seed=args.seed)
    x, y = data["train"]
    data["train"] = (x[: args.train_images], y[: args.train_images])
    data.pop("test")  # tuning reads the validation split only
    out = Path(args.out)
    for name in names:
        ttas = (None, "flip", "flip_shift") if args.flip_shift else (None, "flip")
        result = run_variant(name, data, args.epochs, out, args.seed, args.verbose, ttas)
        print(json.dumps(result), flush=True)
        with open(out / "ablation.json", "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
