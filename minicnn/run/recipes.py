"""Named training recipes for the documented CIFAR-10 model, and the schedules they name.

A recipe fixes every setting of a run that is not about where the data or the output live:
epochs, batch size, peak learning rate, warm-up, schedule, the tricks. ``examples/train_cifar.py
--recipe NAME`` starts from one and lets any option given override it; ``benchmarks/ablate_recipe.py``
changes one setting at a time. ``docs/recipe.md`` shows what each reaches and why it is so.

    settings = RECIPES["fast"]
    lr_schedule = schedule(settings["schedule"], settings["lr"], settings["epochs"], settings["warmup_epochs"])
    model.fit(x, y, lr_schedule=lr_schedule, batch_size=settings["batch_size"], ...)

``lr=None`` means the optimizer's usual default (Adam 2e-3, Nesterov SGD 0.05).
"""

from __future__ import annotations

from .schedules import linear_decay, one_cycle, warmup_cosine

RECIPES: dict[str, dict] = {
    # 30 epochs: Adam 2e-3, 1-epoch warm-up then cosine, batch 64, crop + flip (80.2% test, JPEG copy).
    "default": dict(
        optimizer="adam",
        epochs=30,
        batch_size=64,
        lr=None,
        warmup_epochs=1.0,
        schedule="cosine",
        label_smoothing=0.0,
        ema=0.0,
        tta="none",
        whiten_init=False,
        crop_padding=4,
        dropout=(0.25, 0.25, 0.5),
    ),
    # 10 epochs: batch 128 (minicnn's speed is flat in it), Adam 3e-3, linear decay to 0, label
    # smoothing 0.2, whitened first-layer filters, and the flip view averaged at test time; ten epochs
    # under-fit the course's regularisation, so crops move images by at most 2 pixels and the
    # dropout rates are halved (the same layers and parameters).
    "fast": dict(
        optimizer="adam",
        epochs=10,
        batch_size=128,
        lr=3e-3,
        warmup_epochs=0.5,
        schedule="linear",
        label_smoothing=0.2,
        ema=0.0,
        tta="flip",
        whiten_init=True,
        crop_padding=2,
        dropout=(0.125, 0.125, 0.25),
    ),
}
# 10 epochs of --model resnet (resnet8; docs/resnet.md): the fast recipe's tricks, with Nesterov SGD
# (0.1, L2 5e-4, 2 epochs of warm-up) instead of Adam, and flip-and-shift TTA (validation: 89.1%
# against Adam's 88.7%; docs/resnet.md).
RECIPES["resnet"] = {
    **RECIPES["fast"],
    "optimizer": "sgd",
    "lr": 0.1,
    "weight_decay": 5e-4,
    "warmup_epochs": 2.0,
    "tta": "flip_shift",
}

# A schedule's name -> (peak, epochs, warm-up epochs) -> lr(t); one-cycle's rise plays the warm-up.
SCHEDULES = {
    "cosine": lambda lr, epochs, warmup: warmup_cosine(lr, epochs, warmup),
    "linear": lambda lr, epochs, warmup: linear_decay(lr, epochs, warmup),
    "one-cycle": lambda lr, epochs, warmup: one_cycle(lr, epochs, pct_start=min(0.9, max(warmup, 1e-3) / epochs)),
}


def schedule(name: str, lr: float, epochs: float, warmup_epochs: float):
    """The learning rate as a function of the fractional epoch, for ``fit(lr_schedule=...)``.

    Raises:
        ValueError: ``name`` is not one of :data:`SCHEDULES`.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](lr, epochs, warmup_epochs)
