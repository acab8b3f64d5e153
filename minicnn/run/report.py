"""The main job's last step: the test set evaluated once (one view, and as the recipe's TTA),
``metrics.json``, ``predictor.npz`` (the model with its preprocessing in front) and the pictures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..datasets import CIFAR10_CLASSES
from ..models import with_preprocessing
from .outputs import write_text
from .resume import run_config


def finish(model, data, stats, out, args, backend, rows, comm=None):
    """Evaluate on the test set once (one view, and as the recipe's TTA), write metrics.json, draw the pictures.
    With ``--no-test`` (tuning) the validation split stands in for it: keys ``val_...``, the test set unread."""
    split = "val" if args.no_test else "test"
    x_eval, y_eval = data[split]
    tta = None if args.tta == "none" else args.tta
    single = model.evaluate(x_eval, y_eval, communicator=comm, return_predictions=tta is None)
    result = model.evaluate(x_eval, y_eval, communicator=comm, return_predictions=True, tta=tta) if tta else single
    pred = result.pop("predictions") if comm is None else comm.gather(result.pop("predictions"))
    if comm is not None and not comm.is_root:  # each rank predicted its share; rank 0 writes
        return
    per_class = {
        name: float((pred[y_eval == k] == k).mean()) for k, name in enumerate(CIFAR10_CLASSES) if np.any(y_eval == k)
    }
    seconds = sum(float(r["seconds"]) for r in rows)
    versions = backend.versions()
    if comm is not None:
        versions.update(comm.versions())
    metrics = {
        f"{split}_accuracy": result["accuracy"],
        f"{split}_loss": result["loss"],
        f"{split}_accuracy_single_view": single["accuracy"],
        f"{split}_loss_single_view": single["loss"],
        "evaluated": split,
        "tta": args.tta,
        "recipe": args.recipe,
        "per_class_accuracy": per_class,
        "epochs": len(rows),
        "train_images_processed": len(data["train"][0]) * len(rows),
        "backend": backend.name,
        "train_seconds": seconds,
        "train_images_per_second": len(data["train"][0]) * len(rows) / seconds if seconds else None,
        "final_val_accuracy": float(rows[-1]["val_accuracy"]) if rows and rows[-1].get("val_accuracy") else None,
        "train_images": len(data["train"][0]),
        "config": run_config(args),
        "versions": versions,
        "processes": 1 if comm is None else comm.size,
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    # The same network with its preprocessing in front: it predicts on raw 0..255 pixels.
    with_preprocessing(model, *stats).save(out / "predictor.npz", extra={"class_names": list(CIFAR10_CLASSES)})
    print(
        f"\n{split} accuracy: {result['accuracy']:.4f}  ({split} loss {result['loss']:.4f}, {len(y_eval)} images"
        + (f"; TTA {args.tta}, one view {single['accuracy']:.4f})" if tta else ")")
    )
    print("per class: " + ", ".join(f"{k} {v:.3f}" for k, v in per_class.items()))
    if args.plots:
        from .. import viz

        written = viz.plot_model(
            model,
            out,
            mean=stats[0],
            std=stats[1],
            x_test=x_eval,
            y_test=y_eval,
            y_pred=pred,
            class_names=CIFAR10_CLASSES,
            history=out / "history.csv",
        )
        print("wrote " + ", ".join(str(Path(p).name) for p in written.values()) + f" to {out}/")
