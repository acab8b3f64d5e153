"""minicnn benchmark suite: per-layer times, whole-model throughput and peak memory.

    python benchmarks/bench.py [--backend numpy|cupy] [--batch-size N ...] [--compare torch,keras,onnxruntime]
                               [--repeats R] [--warmup W] [--layers/--no-layers]
                               [--memory/--no-memory] [--threads T] [--json PATH]

Everything is measured on the documented CIFAR-10 CNN (``minicnn.models.cifar10_cnn``),
input ``(B, 32, 32, 3)`` NHWC float32, on random data (speed does not depend on the values).

* Per layer: ``forward(training=True)`` and ``backward`` of every layer at its own shapes.
* Whole model: a training step (forward, softmax cross-entropy forward + backward, model
  backward, Adam step) and inference (``forward(training=False)``), in images/second.
* Peak memory of a short training run, each library in its own child process
  (``--_memory-child minicnn|torch``): peak RSS on the CPU, pool / allocator high-water on a GPU.

Times are medians over ``--repeats`` after ``--warmup`` untimed runs; the device is
synchronised before each clock reading. With ``--compare torch`` the same network is built in
PyTorch (native NCHW, train mode, Adam) and timed *alternately* with minicnn, one repeat of
each in turn, so that background noise hits both alike. ``--compare keras`` adds Keras 3 on JAX
(training and inference; the network minicnn saves as ``.keras``, in its own process:
``keras_child.py``, with ``--keras-path``) and ``--compare onnxruntime`` onnxruntime (inference; the
network minicnn exports with ``model.save("x.onnx")``), alternating in the same rounds (anchors.py).
The header prints NumPy's BLAS kernel and a float32 GEMM peak measured here.

The code is split by concern (see README.md): harness.py (machine, threads, timing),
torch_twin.py (the PyTorch twin), memory.py (the peak-memory children), report.py (the tables),
workload.py (shapes, settings, data); this file parses the options, times layers and model, and
writes the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

# The sibling modules, also when this file is run with runpy.run_path (sys.path[0] is then not here).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from anchors import KERAS_PATH_ENV, KerasAnchor, onnx_runner
from harness import (
    Stopwatch,
    alternate,
    machine_info,
    minicnn_sync,
    print_header,
    setup_threads,
    torch_sync_for,
)
from memory import bench_memory, memory_child, print_memory_table
from report import print_anchor_table, print_layer_table, print_model_table
from torch_twin import (
    TORCH_MISSING,
    import_torch,
    to_torch,
    torch_adam_rep,
    torch_device,
    torch_infer_rep,
    torch_layer_rep,
    torch_loss_rep,
    torch_model,
    torch_train_rep,
)
from workload import EPS, LR, random_batch

import minicnn  # noqa: E402
from minicnn.losses import SoftmaxCrossEntropy  # noqa: E402
from minicnn.models import cifar10_cnn  # noqa: E402
from minicnn.optim import Adam  # noqa: E402
from minicnn.profile import describe  # noqa: E402  (the one label of a layer)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default="numpy",
        help="minicnn backend; with cupy, PyTorch runs on CUDA (default: numpy)",
    )
    p.add_argument(
        "--batch-size",
        action="append",
        metavar="N",
        help="batch size(s) for the layer and model timings; repeat the flag or give a comma list (default: 32,128)",
    )
    p.add_argument(
        "--compare",
        action="append",
        metavar="LIBS",
        help="also time the same network in torch, keras (Keras 3 on JAX) and/or onnxruntime (inference), "
        "alternately with minicnn; a comma list or the flag repeated",
    )
    p.add_argument(
        "--keras-path",
        metavar="DIR",
        help=f"where Keras 3 and JAX are installed, if not in this environment (default: ${KERAS_PATH_ENV})",
    )
    p.add_argument("--repeats", type=int, default=10, help="timed repeats; medians are reported (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before timing (default: 2)")
    p.add_argument(
        "--layers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-layer forward/backward table (default: on)",
    )
    p.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="peak memory of a short training run in a child process (default: on)",
    )
    p.add_argument(
        "--memory-batch-size", type=int, default=128, metavar="N", help="batch size of the memory run (default: 128)"
    )
    p.add_argument(
        "--memory-steps", type=int, default=20, metavar="N", help="training steps of the memory run (default: 20)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="CPU threads for NumPy's BLAS and torch.set_num_threads "
        "(default: what NumPy's BLAS uses, else os.cpu_count())",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=0.15,
        metavar="S",
        help="seconds to pause when switching between minicnn and PyTorch, so that the "
        "other library's idle threads stop spinning (default: 0.15)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the random data")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--_memory-child", dest="memory_child", choices=("minicnn", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = []
    for item in args.batch_size or ["32,128"]:
        for part in item.split(","):
            if part.strip():
                sizes.append(int(part))
    if not sizes or min(sizes) < 1:
        p.error(f"--batch-size must be positive ints, got {args.batch_size}")
    args.compare = [c.strip() for item in args.compare or [] for c in item.split(",") if c.strip()]
    if set(args.compare) - set(ANCHORS):
        p.error(f"--compare takes {', '.join(ANCHORS)}, got {','.join(args.compare)}")
    args.batch_sizes = list(dict.fromkeys(sizes))  # unique, in the given order
    if args.repeats < 1 or args.warmup < 0 or args.settle < 0:
        p.error("--repeats must be >= 1, --warmup and --settle >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# Per-layer timings
# ---------------------------------------------------------------------------------------------
def layer_inputs(model, x):
    """Each layer's input during one training forward pass (realistic activations)."""
    inputs = [x, *model.activations(x, training=True)[:-1]]
    for layer in model.layers:
        layer.cache = None
    return inputs


def minicnn_layer_rep(layer, x, dy, need_input_grad=True):
    clock = Stopwatch(minicnn_sync)
    layer.forward(x, training=True)
    fwd = clock.lap()
    layer.backward(dy, need_input_grad=need_input_grad)
    return fwd, clock.lap()


def bench_layers(batch, args, backend, torch=None, device=None) -> dict:
    """Forward/backward of every layer of the documented model, then the loss and an Adam step.

    Per layer, all repeats of one library run in a block (after its warm-up), then the other's.
    """
    model = cifar10_cnn(seed=args.seed)
    x, labels = random_batch(batch, args.seed, backend)
    inputs = layer_inputs(model, x)
    rng = np.random.default_rng(args.seed + 1)
    tmodel = torch_model(torch, model, device) if torch is not None else None
    tsync = torch_sync_for(torch, device) if torch is not None else None

    def row(runners, **fields):
        med = alternate(runners, args.repeats, args.warmup, args.settle, interleave=False)
        times = {"minicnn_fwd_ms": med["minicnn"][0] * 1e3, "minicnn_bwd_ms": med["minicnn"][1] * 1e3}
        if "torch" in med:
            times.update(torch_fwd_ms=med["torch"][0] * 1e3, torch_bwd_ms=med["torch"][1] * 1e3)
        return {**fields, **times}

    rows = []
    for i, (layer, x_in) in enumerate(zip(model.layers, inputs)):
        out_shape = (batch,) + tuple(layer.output_shape)
        dy = backend.asarray(rng.standard_normal(out_shape, dtype=np.float32))
        # Layer 0 gets no input gradient, in training and here, in both libraries.
        runners = {"minicnn": lambda l=layer, a=x_in, d=dy, g=i > 0: minicnn_layer_rep(l, a, d, g)}
        if tmodel is not None:
            tx = to_torch(torch, x_in, device, requires_grad=i > 0)
            tdy = to_torch(torch, dy, device)
            runners["torch"] = lambda m=tmodel[i], a=tx, d=tdy: torch_layer_rep(m, a, d, tsync)
        rows.append(
            row(
                runners, index=i, name=layer.name, layer=describe(layer), output_shape=list(out_shape), input_grad=i > 0
            )
        )

    # The two pieces of a training step that are not layers.
    logits = model.forward(x, training=True)
    model.backward(logits * logits.dtype.type(1e-3))  # any gradient: it fills grads for Adam
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model, lr=LR, eps=EPS)
    runners = {"minicnn": lambda: minicnn_loss_rep(loss_fn, logits, labels)}
    if tmodel is not None:
        tlogits = to_torch(torch, logits, device, requires_grad=True)
        tlabels = to_torch(torch, labels, device)
        runners["torch"] = lambda: torch_loss_rep(torch, tlogits, tlabels, tsync)
    rows.append(row(runners, index=None, name="loss", layer="softmax CE loss", output_shape=[], input_grad=True))

    runners = {"minicnn": lambda: minicnn_adam_rep(opt)}
    if tmodel is not None:
        topt = torch.optim.Adam(tmodel.parameters(), lr=LR, eps=EPS)
        for p in tmodel.parameters():
            p.grad = torch.randn_like(p)
        runners["torch"] = lambda: torch_adam_rep(topt, tsync)
    rows.append(row(runners, index=None, name="optimizer", layer="Adam step", output_shape=[], input_grad=True))
    return {"batch_size": batch, "rows": rows}


def minicnn_loss_rep(loss_fn, logits, labels):
    clock = Stopwatch(minicnn_sync)
    loss_fn.forward(logits, labels)
    fwd = clock.lap()
    loss_fn.backward()
    return fwd, clock.lap()


def minicnn_adam_rep(opt):
    clock = Stopwatch(minicnn_sync)
    opt.step()
    return 0.0, clock.lap()


# ---------------------------------------------------------------------------------------------
# Whole-model throughput
# ---------------------------------------------------------------------------------------------
def minicnn_train_rep(model, loss_fn, opt, x, y):
    clock = Stopwatch(minicnn_sync)
    logits = model.forward(x, training=True)
    loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    opt.step()
    return (clock.lap(),)


def minicnn_infer_rep(model, x):
    clock = Stopwatch(minicnn_sync)
    with minicnn.no_grad():
        model.forward(x, training=False)
    return (clock.lap(),)


def minicnn_sharded_rep(sharded, loss_fn, sharded_opt, x, y):
    """The step fit runs on NumPy: train_step on parallel.execution's sharded model and optimizer."""
    with minicnn.parallel.one_blas_thread():
        return minicnn_train_rep(sharded, loss_fn, sharded_opt, x, y)


def minicnn_fit_rep(model, opt, x, y, batch, threads):
    """One epoch of ``fit`` over ``FIT_BATCHES`` batches: what a user's call costs, per batch."""
    clock = Stopwatch(minicnn_sync)
    model.fit(x, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0, seed=0, threads=threads)
    return (clock.lap() / FIT_BATCHES,)


def minicnn_predict_rep(model, x, batch, threads):
    clock = Stopwatch(minicnn_sync)
    model.predict(x, batch_size=batch, threads=threads)
    return (clock.lap() / FIT_BATCHES,)


FIT_BATCHES = 4  # batches per fit/predict repeat
ANCHORS = ("torch", "keras", "onnxruntime")


def bench_model(batch, args, backend, torch=None, device=None, notes=None) -> dict:
    """Training-step and inference throughput (images/s) of the whole model: the raw step (one
    pass over the batch), the step ``fit`` runs (NumPy: shards on ``--threads`` threads), and
    ``fit``/``predict`` themselves, against PyTorch's step."""
    model = cifar10_cnn(seed=args.seed)
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(model, lr=LR, eps=EPS)
    x, y = random_batch(batch, args.seed, backend)
    xs, ys = random_batch(batch * FIT_BATCHES, args.seed + 1, np)  # host data (np.asarray)
    train = {"minicnn": lambda: minicnn_train_rep(model, loss_fn, opt, x, y)}
    infer = {"minicnn": lambda: minicnn_infer_rep(model, x)}
    sharded = minicnn.parallel.ShardedModel(model, args.threads)  # its threads stop at close(), below
    if backend.name == "numpy":
        sharded_opt = minicnn.parallel.ShardedOptimizer(opt, sharded)
        train["minicnn-shards"] = lambda: minicnn_sharded_rep(sharded, loss_fn, sharded_opt, x, y)
    train["minicnn-fit"] = lambda: minicnn_fit_rep(model, opt, xs, ys, batch, args.threads)
    infer["minicnn-predict"] = lambda: minicnn_predict_rep(model, xs, batch, args.threads)
    if torch is not None:
        tsync = torch_sync_for(torch, device)
        tmodel = torch_model(torch, model, device)
        topt = torch.optim.Adam(tmodel.parameters(), lr=LR, eps=EPS)
        tx, ty = to_torch(torch, x, device), to_torch(torch, y, device)
        train["torch"] = lambda: torch_train_rep(torch, tmodel, topt, tx, ty, tsync, FIT_BATCHES)
        infer["torch"] = lambda: torch_infer_rep(torch, tmodel, tx, tsync, FIT_BATCHES)
    keras = None
    if "keras" in args.compare and backend.name == "numpy":
        keras = KerasAnchor.start(model, batch, args.seed, args.threads, args.keras_path)
        if keras is None:
            notes["keras"] = KerasAnchor.last_note
        else:
            notes["keras"] = f"Keras {keras.info['keras']} on {keras.info['backend']}, its own process"
            train["keras"], infer["keras"] = keras.runner("train"), keras.runner("infer")
    if "onnxruntime" in args.compare and backend.name == "numpy":
        infer["onnxruntime"], notes["onnxruntime"] = onnx_runner(model, x, args.threads)
        if infer["onnxruntime"] is None:
            del infer["onnxruntime"]
    result = {"batch_size": batch}
    med = alternate(train, args.repeats, args.warmup, args.settle)
    result["train"] = {name: {"step_ms": m[0] * 1e3, "images_per_s": batch / m[0]} for name, m in med.items()}
    if torch is not None:
        tmodel.eval()
    med = alternate(infer, args.repeats, args.warmup, args.settle)
    result["inference"] = {name: {"step_ms": m[0] * 1e3, "images_per_s": batch / m[0]} for name, m in med.items()}
    sharded.close()
    if keras is not None:
        keras.close()
    return result


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    setup_threads(args)
    if args.memory_child:
        torch = import_torch() if args.memory_child == "torch" else None
        if torch is not None:
            torch.set_num_threads(args.threads)
        print(json.dumps(memory_child(args)))
        return 0

    backend = minicnn.set_backend(args.backend)
    torch = device = None
    if "torch" in args.compare:
        torch = import_torch()
        if torch is None:
            print(f"note: --compare torch skipped: {TORCH_MISSING}\n")
        else:
            torch.set_num_threads(args.threads)
            device = torch_device(torch, backend)
    compare = torch is not None

    info = machine_info(args, backend, torch)
    print_header(info, args)
    report = {
        "machine": info,
        "config": {k: v for k, v in vars(args).items() if k != "memory_child"},
        "layers": [],
        "model": [],
        "memory": None,
    }

    if args.layers:
        for batch in args.batch_sizes:
            result = bench_layers(batch, args, backend, torch, device)
            print_layer_table(result, compare)
            report["layers"].append(result)

    notes: dict = {}
    report["model"] = [bench_model(batch, args, backend, torch, device, notes) for batch in args.batch_sizes]
    print_model_table(report["model"], compare)
    if set(args.compare) - {"torch"}:
        print_anchor_table(report["model"], [a for a in args.compare if a != "torch"], notes)
        report["anchors"] = notes

    if args.memory:
        report["memory"] = bench_memory(args, compare)
        print_memory_table(report["memory"], gpu=backend.name == "cupy")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
