"""Redraw the pictures of a saved model.

    python examples/visualize.py runs/cifar10/model.npz [--out DIR] [--data-dir DIR] [--backend auto]
    python examples/visualize.py keras_model.keras      # or a legacy Keras .h5 (needs h5py: the keras extra)

Writes into --out (default: the model file's folder):
    filters.png       the first convolution's kernels
    stimuli.png       max-stimulus patterns of every conv layer (gradient ascent on the input)
    feature_maps.png  what each conv layer outputs for one image (a CIFAR-10 test image with
                      --data-dir, else a synthetic one)
    curves.png        loss and accuracy per epoch, from a history.csv beside the model file
    confusion.png     the test-set confusion matrix (only with --data-dir)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import minicnn
from minicnn import viz
from minicnn.interop import load_any


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Draw a saved minicnn model's filters, max stimuli, feature maps, "
        "training curves and confusion matrix."
    )
    parser.add_argument(
        "model",
        type=Path,
        help="checkpoint written by model.save / examples/train_cifar.py, or a Keras model file (.keras, legacy .h5)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the model file's folder)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding CIFAR-10 (cifar-10-batches-py); enables confusion.png and a real "
        "test image for the feature maps. Never downloads.",
    )
    parser.add_argument("--backend", choices=["auto", "numpy", "cupy"], default="auto")
    parser.add_argument("--image-index", type=int, default=0, help="test image shown in feature_maps.png")
    parser.add_argument("--filters-per-layer", type=int, default=6, help="filters per conv layer in stimuli.png")
    parser.add_argument("--steps", type=int, default=40, help="gradient-ascent steps per max stimulus")
    return parser.parse_args(argv)


def class_names_for(model, extra):
    """The checkpoint's own class names, else CIFAR-10's for a 10-class model, else None (indices)."""
    if "class_names" in extra:
        return [str(n) for n in np.atleast_1d(extra["class_names"])]
    cifar = getattr(minicnn.datasets, "CIFAR10_CLASSES", None)
    if cifar is not None and model.output_shape[-1] == len(cifar):
        return list(cifar)
    return None


def load_test_set(data_dir, mean, std):
    """The CIFAR-10 test set, standardised as the model's training data was."""
    from minicnn.datasets import load_cifar10, standardize

    (_, _), (x_test, y_test) = load_cifar10(data_dir, download=False)
    if mean is None or std is None:
        print("the checkpoint holds no mean/std: standardising the test set with its own statistics")
        mean, std = minicnn.datasets.channel_stats(x_test)
    return standardize(x_test, mean, std), y_test


def main(argv=None) -> int:
    args = parse_args(argv)
    backend = minicnn.set_backend(args.backend)
    model, extra = load_any(args.model)  # a Keras file brings no class names or statistics: extra = {}
    print(f"loaded {args.model} ({model.count_params():,} parameters, backend {backend.name})")
    mean = np.asarray(extra["mean"], dtype=np.float32) if "mean" in extra else None
    std = np.asarray(extra["std"], dtype=np.float32) if "std" in extra else None
    if mean is None or std is None:
        print("no normalisation statistics in the checkpoint: images are shown stretched to their own range")
        mean = std = None
    out = args.out if args.out is not None else args.model.parent

    history = args.model.parent / "history.csv"
    if not history.is_file():
        print(f"no {history}: curves.png skipped")
        history = None

    x_test = y_test = None
    if args.data_dir is not None:
        x_test, y_test = load_test_set(args.data_dir, mean, std)
        if not 0 <= args.image_index < len(x_test):
            sys.exit(f"--image-index must be in [0, {len(x_test)})")
    else:
        print("no --data-dir: confusion.png skipped, feature maps drawn for a synthetic image")

    viz.plot_model(
        model,
        out,
        mean=mean,
        std=std,
        class_names=class_names_for(model, extra),
        history=history,
        x_test=x_test,
        y_test=y_test,
        image_index=args.image_index,
        filters_per_layer=args.filters_per_layer,
        stimuli_steps=args.steps,
        log=print,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
