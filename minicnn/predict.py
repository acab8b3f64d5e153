"""``python -m minicnn.predict MODEL PICTURE... [--top K] [--backend ...]``: a trained model's top classes
for your own pictures.

Each picture is read as the explorer reads an upload: turned upright, cut at its centre to the
model's aspect ratio and resized to its input (:func:`~minicnn.datasets.image_files.read_image`),
then prepared as in training (:func:`~minicnn.datasets.model_inputs.pixels_to_inputs`). Errors end
in one line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PICTURES_PER_BATCH = 64  # decoded and predicted together: a long list never sits in memory at once


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m minicnn.predict",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print a trained model's top classes for each picture, with their probabilities.\n\n"
        "A picture is cut at its centre to the model's aspect ratio and resized to its input (the output\n"
        "says so), then prepared as in training: by the model's own first layers, else with the mean and\n"
        "std a minicnn checkpoint keeps. Class names come from the checkpoint, else CIFAR-10's for a\n"
        "model of 10 classes, else the class numbers. Errors: one line on stderr, exit status 2.",
        epilog="example:\n  python -m minicnn.predict runs/cifar10/model.npz cat.jpg dog.png --top 3",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a minicnn checkpoint (.npz) or a Keras .keras/.h5 file")
    p.add_argument("pictures", type=Path, nargs="+", metavar="PICTURE", help=".jpg, .png, .bmp or .gif files")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many classes to print per picture (3)")
    p.add_argument("--backend", choices=["auto", "numpy", "cupy"], default="numpy", help="(default numpy)")
    args = p.parse_args(argv)
    if args.top < 1:
        p.error(f"--top must be a whole number >= 1, got {args.top}")
    return args


def top_classes(probs: np.ndarray, names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one row of probabilities, most probable first (ties: lower index)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(names[i], float(probs[i])) for i in order]


def main(argv=None) -> int:
    args = parse_args(argv)
    import minicnn
    from minicnn.datasets.image_files import read_image
    from minicnn.datasets.model_inputs import class_names, picture_format, pixels_to_inputs
    from minicnn.models import load_model

    try:
        for path in [args.model, *args.pictures]:
            if not path.is_file():
                raise FileNotFoundError(f"{path} {'is not a file' if path.exists() else 'does not exist'}")
        minicnn.set_backend(args.backend)  # a BackendError (RuntimeError) says how to install CuPy
        model = load_model(args.model)  # CheckpointError, KerasFormatError: ValueErrors naming the file
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        size, color_mode = picture_format(model)
        extra = getattr(model, "saved_extra", {})  # a checkpoint's extra; {} for a Keras file
        prepare, note = pixels_to_inputs(model, extra)
        names = class_names(model, extra)
    except ValueError as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 2
    h, w = size
    print(f"{args.model}: input {h}x{w} {color_mode}, {len(names)} classes; {note}")
    for start in range(0, len(args.pictures), PICTURES_PER_BATCH):
        chunk = args.pictures[start : start + PICTURES_PER_BATCH]
        pixels, notes = [], []
        for path in chunk:
            try:
                picture, how = read_image(path, size, color_mode, crop_to_aspect_ratio=True, upright=True)
            except ValueError as exc:  # DatasetError names the file
                print(f"error: {exc}", file=sys.stderr)
                return 2
            pixels.append(picture)
            notes.append(how)
        probs = model.predict(prepare(np.stack(pixels)))
        for path, how, row in zip(chunk, notes, probs):
            print(f"{path}" + (f" ({how})" if how else "") + ":")
            shown = top_classes(row, names, args.top)
            width = max(len(name) for name, _ in shown)
            for name, p in shown:
                print(f"  {name:<{width}}  {p:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
