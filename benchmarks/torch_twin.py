"""The same network in PyTorch: a twin of each minicnn layer and model, and the timed reps.

PyTorch is a benchmark-only dependency: nothing here imports it at module level;
``import_torch()`` returns it, or None when it is not installed.
"""

from __future__ import annotations

import numpy as np
from harness import Stopwatch

import minicnn
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU

TORCH_MISSING = "PyTorch is a benchmark-only dependency: pip install torch==2.13.0"


def import_torch():
    """``torch``, or None when it is not importable (a benchmark-only dependency)."""
    try:
        import torch

        return torch
    except ImportError:
        return None


def torch_layer(torch, layer):
    """The PyTorch (NCHW) module that computes what the minicnn ``layer`` computes."""
    nn = torch.nn
    if isinstance(layer, Conv2D):
        pt, pb, pl, pr = layer.pads
        if pt != pb or pl != pr:
            raise NotImplementedError(f"{layer.describe()}: asymmetric padding has no nn.Conv2d twin")
        return nn.Conv2d(layer.input_shape[-1], layer.filters, layer.kernel_size, layer.strides, padding=(pt, pl))
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.alpha)
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, MaxPool2D):
        return nn.MaxPool2d(layer.pool_size, layer.strides)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.rate)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Dense):
        return nn.Linear(layer.input_shape[0], layer.units)
    raise NotImplementedError(f"no PyTorch twin for {type(layer).__name__}")


def torch_model(torch, model, device):
    """The same stack of layers in PyTorch, in train mode.

    Flatten sees NCHW rather than NHWC, so the dense layer's inputs are ordered differently:
    that changes which weight meets which pixel, not the amount of work.
    """
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch_layer(torch, l) for l in model.layers]).to(device).train()


def to_torch(torch, a, device, requires_grad=False):
    """A minicnn array as a PyTorch tensor, NHWC images turned to NCHW (contiguous)."""
    a = minicnn.get_backend().to_numpy(a)
    if a.ndim == 4:
        a = a.transpose(0, 3, 1, 2)
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return t.requires_grad_(requires_grad)


def torch_device(torch, backend):
    if backend.name == "cupy":
        if not torch.cuda.is_available():
            raise SystemExit("--backend cupy --compare torch needs a CUDA build of PyTorch; this one has no CUDA")
        return torch.device("cuda")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# One timed repeat of each PyTorch workload (minicnn's are in bench.py)
# ---------------------------------------------------------------------------------------------
def torch_layer_rep(module, x, dy, sync):
    for p in module.parameters():
        p.grad = None  # as optimizer.zero_grad(set_to_none=True) leaves them
    x.grad = None
    clock = Stopwatch(sync)
    y = module(x)
    fwd = clock.lap()
    y.backward(dy)
    return fwd, clock.lap()


def torch_loss_rep(torch, logits, labels, sync):
    logits.grad = None
    clock = Stopwatch(sync)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    fwd = clock.lap()
    loss.backward()
    return fwd, clock.lap()


def torch_adam_rep(opt, sync):
    clock = Stopwatch(sync)
    opt.step()
    return 0.0, clock.lap()


def torch_train_rep(torch, model, opt, x, y, sync, steps=1):
    """``steps`` training steps in a row, the time per step: as a training loop runs them, and as
    minicnn's ``fit`` repeat runs its batches (one step alone after the other library ran is slower)."""
    clock = Stopwatch(sync)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (clock.lap() / steps,)


def torch_infer_rep(torch, model, x, sync, steps=1):
    """``steps`` eval-mode forwards in a row, the time per forward."""
    clock = Stopwatch(sync)
    with torch.inference_mode():
        for _ in range(steps):
            model(x)
    return (clock.lap() / steps,)
