"""``python -m minicnn.explore MODEL [--data-dir DIR] [--port N] [--host 127.0.0.1]``: serve the explorer page.

``python -m minicnn.explore RUN_DIR --watch``: follow a training run as it writes its files (:mod:`.watch`).

``python -m minicnn.explore MODEL --export-page DIR``: write a page that classifies in the browser
with no server (:mod:`.export_page`) instead."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..run.interrupts import signals_as_interrupts
from .api import Explorer
from .server import make_server

LOOPBACK = ("127.0.0.1", "localhost")
WATCH_TEST_IMAGES = 1000  # predicted again after every epoch: about a second for the documented model


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m minicnn.explore",
        description="Serve a local page that shows inside a trained model: every layer's output for an image, "
        "the predictions, how a convolution computes one number, the training run and the filters.",
    )
    p.add_argument(
        "model", type=Path, help="a minicnn checkpoint (model.npz), a run folder that holds one, or a Keras file"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding CIFAR-10 (cifar-10-batches-py or the archive), as the training script takes it: "
        "enables the test images, per-class accuracy and the confusion matrix. Never downloads.",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow a training run: MODEL is its --out folder (it may not exist yet); the page waits for the "
        "first epoch, then shows each new checkpoint, the history so far and the filter timeline",
    )
    p.add_argument(
        "--test-limit",
        type=int,
        default=None,
        metavar="N",
        help=f"use the first N test images (default: all; with --watch {WATCH_TEST_IMAGES:,}, predicted "
        "again after every epoch)",
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument(
        "--export-page",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a self-contained page to DIR (open DIR/index.html from disk, even offline) that classifies "
        "dropped or drawn pictures in the browser, and exit: no server",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "numpy", "cupy"],
        default="numpy",
        help='the array backend: "numpy" (CPU), "cupy" (GPU; needs CuPy) or "auto" (default: %(default)s)',
    )
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    if not 0 <= args.port < 65536:
        p.error(f"--port must be in [0, 65536), got {args.port}")
    if args.test_limit is not None and args.test_limit < 1:
        p.error(f"--test-limit must be a whole number >= 1, got {args.test_limit}")
    if args.watch and args.export_page is not None:
        p.error("--watch serves a page that follows a run; --export-page writes one and exits: choose one")
    if args.watch and args.test_limit is None:
        args.test_limit = WATCH_TEST_IMAGES
    return args


def exposure_warning(host: str) -> str | None:
    """What to say when the page is reachable from other machines (None on loopback)."""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (
        f"warning: listening on {host}: anyone who can reach this machine on that address can use the page "
        "(no password; keep --host 127.0.0.1 unless you mean it)"
    )


def load_test_set(data_dir: Path, input_shape, limit=None):
    """The (first ``limit``) CIFAR-10 test images (uint8) and labels, or None when they do not fit the model."""
    from ..datasets import load_cifar10

    (_, _), (x, y) = load_cifar10(data_dir, download=False)
    x, y = (x[:limit].copy(), y[:limit].copy()) if limit is not None else (x, y)  # a copy frees the rest
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        print(f"the test images are {x.shape[1:]}, the model takes {tuple(input_shape)}: no test images shown")
        return None
    return x, y


def write_page(model, extra, folder: Path) -> int:
    """``--export-page``: the folder written, each file's size said."""
    from .export_page import export_page

    try:
        sizes = export_page(model, extra, folder)
    except (OSError, ValueError) as exc:  # OutputError is an OSError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, size in sizes.items():
        print(f"  {folder / name}  {size:,} bytes")
    print(f"open {(folder / 'index.html').resolve().as_uri()}  (no server needed)")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    import minicnn
    from minicnn.interop import load_any

    try:
        minicnn.set_backend(args.backend)
    except minicnn.backend.BackendError as exc:  # no CuPy, no GPU: one line, as the training script says it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.watch:
        return watch(args)
    if args.model.is_dir():  # a run folder: its checkpoint
        args.model = args.model / "model.npz"
    try:
        model, extra = load_any(args.model)
        serving = args.export_page is None  # the page classifies visitors' pictures: no test set
        wanted = args.data_dir is not None and serving
        test = load_test_set(args.data_dir, model.input_shape, args.test_limit) if wanted else None
    except (OSError, ValueError, ImportError) as exc:  # CheckpointError, KerasFormatError, DatasetError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"loaded {args.model} ({model.count_params():,} parameters)")
    if args.export_page is not None:
        return write_page(model, extra, args.export_page)
    if test is not None:
        print(f"predicting the {len(test[0]):,} test images once ...", flush=True)
    explorer = Explorer(model, extra, test=test, run_dir=args.model.parent, name=args.model.name)
    explorer.timeline = finished_timeline(args.model.parent / "filters.npz")
    print(explorer.note)
    return serve(explorer, args)


def finished_timeline(path: Path):
    """A finished run's filter timeline for the page, or None (none there, or unreadable: said)."""
    from ..run.callbacks import read_filter_timeline
    from .watch import timeline_reply

    if not path.is_file():
        return None
    try:
        return timeline_reply(read_filter_timeline(path))
    except (OSError, ValueError) as exc:
        print(f"warning: no filter timeline shown: {exc}", file=sys.stderr)
        return None


def watch(args) -> int:
    """``--watch``: serve a :class:`~.watch.WatchedRun` of the run folder (a model file's folder)."""
    from .watch import WatchedRun

    folder = args.model.parent if args.model.suffix.lower() == ".npz" else args.model
    try:
        test = load_test_set(args.data_dir, None, args.test_limit) if args.data_dir is not None else None
    except (OSError, ValueError) as exc:  # DatasetError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    explorer = WatchedRun(folder, test=test)
    try:
        state = explorer.state()
        found = f"epoch {state['model_epoch']}" if state["has_model"] else "waiting for the first epoch"
        print(f"watching {folder} ({found}; the page follows each new checkpoint)")
        return serve(explorer, args)
    finally:
        explorer.close()


def serve(explorer, args) -> int:
    """Serve ``explorer`` until Ctrl-C or SIGTERM; 2 when the port cannot be had."""
    try:
        server = make_server(explorer, args.host, args.port, quiet=args.quiet)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
        return 2
    if exposure_warning(args.host):
        print(exposure_warning(args.host), file=sys.stderr)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    print(f"open http://{host}:{server.server_port}/  (Ctrl-C stops it)", flush=True)
    try:
        with signals_as_interrupts():  # SIGTERM and SIGHUP stop it as Ctrl-C does
            server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
