"""``python -m minicnn.doctor``: the checks on the documented CIFAR-10 model (or ``--model``)."""

from __future__ import annotations

import argparse

import numpy as np

from ..backend import BackendError, set_backend
from ..optim import Adam
from .checks import diagnose


def main(argv=None) -> int:
    """``python -m minicnn.doctor``: the checks on the documented model; exit status 1 if one fails."""
    p = argparse.ArgumentParser(
        prog="python -m minicnn.doctor", description="CS231n's sanity checks on the documented CIFAR-10 CNN."
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="CIFAR-10 folder (as load_cifar10 takes it, never downloaded); random data otherwise",
    )
    p.add_argument(
        "--model",
        default="course",
        metavar="course|resnet|resnet_cifar|PATH",
        help="course: the documented CNN; resnet: minicnn.models.resnet8; resnet_cifar: 0.3.0's ResNet; "
        "or a saved model file, "
        "input (32, 32, 3) (default: course)",
    )
    p.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default="numpy",
        help='"numpy" (CPU) or "cupy" (GPU; needs CuPy: pip install -e ".[gpu]") (default: %(default)s)',
    )
    p.add_argument("--examples", type=int, default=64, help="examples to overfit (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        set_backend(args.backend)
    except BackendError as exc:  # no CuPy, no GPU: one line, as the training script says it
        p.exit(2, f"error: {exc}\n")
    from ..models import model_by_name

    try:
        model = model_by_name(args.model, seed=args.seed)
    except ValueError as exc:
        p.error(str(exc))
    if model.input_shape != (32, 32, 3):
        p.error(f"--model {args.model}: takes {model.input_shape}; the doctor feeds CIFAR-10 images (32, 32, 3)")

    rng = np.random.default_rng(args.seed)
    n = max(args.examples, 256)
    if args.data_dir:
        from ..datasets import channel_stats, load_cifar10, standardize

        (x_train, y_train), _ = load_cifar10(args.data_dir, download=False)
        x = standardize(x_train[:n], *channel_stats(x_train))
        y = y_train[:n]
        print(f"{n} CIFAR-10 training images from {args.data_dir}, standardised per channel")
    else:
        x = rng.standard_normal((n, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, n)
        print(f"{n} random images (standard normal) with random labels (no --data-dir)")
    results = diagnose(
        model,
        x,
        y,
        overfit_examples=args.examples,
        seed=args.seed,
        optimizer_factory=lambda m: Adam(m, lr=args.lr),
    )
    return 0 if all(r.passed is not False for r in results) else 1
