"""``python -m minicnn.profile``: one training step of the documented model (or another), profiled."""

from __future__ import annotations

import argparse

from ..backend import BackendError, set_backend
from .table import report
from .timing import profile_model


def main(argv=None) -> int:
    """``python -m minicnn.profile``: print the per-layer profile of ``--model`` (default: the documented one)."""
    p = argparse.ArgumentParser(
        prog="python -m minicnn.profile",
        description="Per-layer profile of one training step of the documented CIFAR-10 CNN (or --model).",
    )
    p.add_argument(
        "--model",
        default="course",
        metavar="course|resnet|resnet_cifar|PATH",
        help="course: the documented CNN; resnet: minicnn.models.resnet8; resnet_cifar: 0.3.0's ResNet; "
        "or a saved model file (default: course)",
    )
    p.add_argument("--batch-size", type=int, default=128, metavar="N")
    p.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default="numpy",
        help='"numpy" (CPU) or "cupy" (GPU; needs CuPy: pip install -e ".[gpu]") (default: %(default)s)',
    )
    p.add_argument("--repeats", type=int, default=5, metavar="N", help="timed steps after one warm-up (median)")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        p.error("--batch-size and --repeats must be positive")
    try:
        set_backend(args.backend)
    except BackendError as exc:  # no CuPy, no GPU: one line, as the training script says it
        p.exit(2, f"error: {exc}\n")
    from ..models import model_by_name

    try:
        model = model_by_name(args.model, seed=0)
    except ValueError as exc:
        p.error(str(exc))
    rows = profile_model(model, batch_size=args.batch_size, repeats=args.repeats)
    print(report(rows))
    return 0
