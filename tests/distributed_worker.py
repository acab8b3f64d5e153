"""Runs under ``mpiexec`` for tests/test_distributed.py (and in-process, without MPI, as the reference).

    mpiexec -n 2 python tests/distributed_worker.py MODE OUT_DIR [BACKEND]

MODE ``exact``: no dropout, no augmentation, float64 — must match one process with the same global batch.
MODE ``random``: dropout and augmentation on — ranks must draw differently and still stay bit-identical.
MODE ``fail``: rank 1 raises in its third step while rank 0 waits in the gradient Allreduce.
Every rank writes ``OUT_DIR/rank{r}.npz``: final weights, the history, and what it observed.
BACKEND (default ``numpy``): ``cupy`` trains on the device (a GPU, or the tests' CPU stand-in for
CuPy), reducing gradients through host memory when CuPy has no NCCL.
"""

import json
import sys
from pathlib import Path

import numpy as np

import minicnn
from minicnn.datasets import augment as augment_images
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import Adam

N, BATCH, EPOCHS = 49, 8, 2  # 6 full global batches, then one of a single image: one rank gets none


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N + 11, 8, 8, 2))
    y = rng.integers(0, 3, N + 11)
    return (x[:N], y[:N]), (x[N:], y[N:])


def train(mode, communicator=None):
    """Train the small model; returns ``(model, history, observed)``."""
    layers = [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2)]
    if mode == "random":
        layers.append(Dropout(0.3))
    layers += [Flatten(), Dense(3)]
    # Rank r builds its model with seed r and asks fit for seed 5 + 100 r: fit must take rank 0's
    # weights and seed everywhere, so the result is that of one process with seeds 0 and 5.
    rank = 0 if communicator is None else communicator.rank
    model = minicnn.Sequential(layers, input_shape=(8, 8, 2), dtype="float64", seed=rank)
    (x, y), val = data()
    observed = {"identical": [], "dropout_seeds": [], "augment_draws": []}
    steps = []

    def augment(xb, rng):
        steps.append(len(xb))
        if mode == "fail" and communicator is not None and communicator.rank == 1 and len(steps) == 3:
            raise RuntimeError("rank 1 fails on purpose")
        if mode != "random":
            return xb
        observed["augment_draws"].append(int(rng.integers(2**31)))
        return augment_images(xb, rng)

    class Watch:
        def on_epoch_begin(self, epoch, logs):
            observed["dropout_seeds"].append([l.seed for l in model.layers if isinstance(l, Dropout)])

        def on_epoch_end(self, epoch, logs):
            if communicator is not None:  # a collective: every rank runs the callbacks
                observed["identical"].append(communicator.replicas_identical(model))

    history = model.fit(
        x,
        y,
        optimizer=Adam(model, lr=1e-2),
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=5 + 100 * rank,
        validation_data=val,
        verbose=0,
        augment=None if mode == "exact" else augment,
        callbacks=[Watch()],
        communicator=communicator,
    )
    observed["steps"] = steps
    return model, history, observed


def save(path, model, history, observed):
    to_numpy = minicnn.get_backend().to_numpy
    arrays = {f"layers/{key}": to_numpy(layer.params[name]) for key, layer, name in model.named_parameters()}
    arrays.update({f"history/{k}": np.array(v) for k, v in history.items() if k != "seconds"})
    arrays["observed"] = np.array(json.dumps(observed))
    np.savez(path, **arrays)


if __name__ == "__main__":
    from minicnn.distributed import Communicator, abort_on_error

    mode, out = sys.argv[1], Path(sys.argv[2])
    backend = sys.argv[3] if len(sys.argv) > 3 else "numpy"
    comm = Communicator()
    with abort_on_error(comm):
        if minicnn.set_backend(backend).name == "cupy":
            comm.use_local_gpu()
        result = train(mode, comm)
        save(out / f"rank{comm.rank}.npz", *result)
