"""What the main job starts from: the data as its options ask for it, the model it names, a model to fine-tune."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..datasets import SplitLeavesNoTraining


def data_options(args) -> dict:
    """The keyword arguments of :func:`minicnn.datasets.cifar10_splits` that the options set."""
    return {
        "url": args.url,
        "md5": None if args.md5.lower() == "none" else args.md5,
        "val_split": 0.1 if args.val_split is None else args.val_split,  # default: 10%
        "seed": args.seed,
        "train_limit": args.train_limit,
    }


@contextlib.contextmanager
def split_as_flags():
    """The library's advice on a split that leaves no training image, in the script's options."""
    try:
        yield
    except SplitLeavesNoTraining as exc:
        as_option = lambda key, value: f"--{key.replace('_', '-')} {value}"  # noqa: E731  (val_split -> --val-split)
        raise ValueError(exc.advice(as_option, ", the script's default")) from None


def describe_data(args, data) -> str:
    """One line on the split; records the validation images held out in ``args.val_split``
    (the checkpoint's config keeps it, so that ``--resume`` holds out the same ones)."""
    held_out = 0 if data["val"] is None else len(data["val"][0])
    if args.val_split is None:
        args.val_split = held_out
        split_note = " (10% held out; --val-split to choose)"
    else:
        split_note = f" (--val-split {args.val_split})"
    train, test = len(data["train"][0]), len(data["test"][0])
    return f"data: {train} training, {held_out} validation{split_note}, {test} test images"


def initial_model(path):
    """A model to fine-tune: a Keras file (minicnn.interop) or a minicnn checkpoint, checked to fit CIFAR-10."""
    from ..interop import load_any

    model = load_any(path)[0]
    if model.input_shape != (32, 32, 3) or model.output_shape != (10,):
        raise ValueError(
            f"--init-from {path}: the model takes {model.input_shape} and gives {model.output_shape}; "
            f"CIFAR-10 needs input (32, 32, 3) and 10 class scores"
        )
    return model.astype("float32")


def named_model(args):
    """The network ``--model`` names (:func:`minicnn.models.model_by_name`), built with ``--seed``,
    the course's with ``--dropout``. ``--resume`` of a run that 0.3.0's ``--model resnet`` started
    continues that network, :func:`~minicnn.models.resnet_cifar` (``resnet`` names resnet8 since 0.4.0)."""
    from .. import models

    if args.model == "course":
        return models.cifar10_cnn(seed=args.seed, dropout=tuple(args.dropout))
    if args.model == "resnet" and args.resume and _trained_resnet_cifar(Path(args.out) / "model.npz"):
        return models.resnet_cifar(seed=args.seed)
    return models.model_by_name(args.model, seed=args.seed)


def _trained_resnet_cifar(checkpoint: Path) -> bool:
    """True if the checkpoint's network has :func:`~minicnn.models.resnet_cifar`'s layers."""
    from ..models import resnet_cifar
    from .checkpoint import read_checkpoint

    def classes(config):
        return [layer["class"] for layer in config["layers"]]

    return classes(read_checkpoint(checkpoint)[0]["model"]) == classes(resnet_cifar().get_config())
