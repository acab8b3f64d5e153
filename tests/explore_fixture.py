"""A tiny trained model, its run folder and a CIFAR-format test set, and an explorer server on a free port."""

import contextlib
import threading

from cifar_fixture import make_cifar_folder

from minicnn import Sequential
from minicnn.callbacks import CSVLogger
from minicnn.datasets import channel_stats, standardize
from minicnn.explore import Explorer, make_server
from minicnn.layers import Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU
from minicnn.optim import Adam


def tiny_run(root):
    """Train a small conv net for two epochs on a fixture CIFAR folder; return (model path, data dir, test arrays)."""
    data_dir = root / "data"
    (x, y), test = make_cifar_folder(data_dir, rows_per_batch=16, test_rows=40)
    mean, std = channel_stats(x)
    model = Sequential(
        [
            Conv2D(4, 3, padding="same"),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 3, padding=1),
            LeakyReLU(0.1),
            Flatten(),
            Dense(10),
        ],
        input_shape=(32, 32, 3),
        seed=0,
    )
    run = root / "run"
    run.mkdir()
    model.fit(
        standardize(x, mean, std),
        y,
        optimizer=Adam(model, lr=3e-3),
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[CSVLogger(run / "history.csv")],
    )
    path = run / "model.npz"
    model.save(path, extra={"mean": mean, "std": std, "class_names": [f"class{k}" for k in range(10)]})
    return path, data_dir, test


@contextlib.contextmanager
def serving(explorer: Explorer):
    """``explorer`` served on 127.0.0.1 at a free port, in a thread; yields the base URL."""
    server = make_server(explorer, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
