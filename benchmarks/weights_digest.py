"""A fixed-seed training run's weights as one SHA-256, to show a refactoring changed no bit.

    python benchmarks/weights_digest.py          # prints one digest per case

Each case trains on 256 made-up 32x32x3 images for 2 epochs (threads, augmentation, an EMA,
BatchNormalization and a resumed run among them) and hashes every parameter, BN statistic and
optimizer slot. Run it before and after a change: equal digests mean equal bits.
"""

from __future__ import annotations

import hashlib

import numpy as np

import minicnn
from minicnn.datasets import augment
from minicnn.models import cifar10_cnn, resnet_cifar
from minicnn.optim import SGD, Adam


def digest(model, optimizer) -> str:
    h = hashlib.sha256()
    for key, layer, name in model.named_parameters():
        h.update(key.encode() + np.ascontiguousarray(layer.params[name]).tobytes())
    for layer in model.layers:
        for value in getattr(layer, "state", {}).values():
            h.update(np.ascontiguousarray(value).tobytes())
    for key, value in sorted(optimizer.state_dict().items()):
        h.update(key.encode() + (value.tobytes() if isinstance(value, np.ndarray) else repr(value).encode()))
    return h.hexdigest()[:16]


def run(case: str) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    if case == "resnet":
        model = resnet_cifar(width=(8, 16, 16), seed=1)
        opt = SGD(model, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        model = cifar10_cnn(seed=1)
        opt = Adam(model, lr=1e-3, ema_momentum=0.9 if case == "ema" else None)
    threads = 1 if case == "one-thread" else 2
    kw = dict(optimizer=opt, batch_size=64, seed=3, verbose=0, threads=threads, validation_data=(x[:64], y[:64]))
    if case == "resumed":
        minicnn.training.fit(model, x, y, epochs=1, augment=augment, **kw)
        minicnn.training.fit(model, x, y, epochs=2, initial_epoch=1, augment=augment, **kw)
    else:
        minicnn.training.fit(model, x, y, epochs=2, augment=augment if case != "resnet" else None, **kw)
    return digest(model, opt)


if __name__ == "__main__":
    for case in ("one-thread", "two-threads", "ema", "resumed", "resnet"):
        print(f"{case:12s} {run(case)}")
