"""Reading a gradient check: CS231n's thresholds, and the known traps that fake a wrong gradient."""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, to_numpy
from ..layers import LeakyReLU, MaxPool2D, ReLU
from ..layers.im2col import windows

WRONG, SUSPICIOUS, RIGHT = 1e-2, 1e-4, 1e-7  # relative error: above WRONG wrong; below RIGHT right


def gradient_verdict(error: float, kinked: bool = False) -> tuple[str, bool]:
    """CS231n's reading of a relative error: ``(words, acceptable)``."""
    if not math.isfinite(error) or error > WRONG:
        return "wrong (> 1e-2)", False
    if error > SUSPICIOUS:
        return "suspicious (1e-4..1e-2)", False
    if error > RIGHT:
        return (
            "fine for a function with kinks (1e-7..1e-4)"
            if kinked
            else "high for a smooth function (1e-7..1e-4; expect < 1e-7 in float64)"
        ), kinked
    return "right (< 1e-7)", True


def _is_kinked(layer) -> bool:
    inner = layer.sublayers() if hasattr(layer, "sublayers") else []  # a Residual block is kinked inside
    return isinstance(layer, (ReLU, LeakyReLU, MaxPool2D)) or any(_is_kinked(sub) for sub in inner)


def cancelled_biases(layer) -> dict:
    """``{parameter key: why}`` for the biases inside a block (a Residual) that a BatchNormalization
    right after their layer cancels: BN subtracts the batch mean, so adding a constant per channel
    changes nothing, the true gradient is 0 and a gradient check compares rounding noise."""
    inner = getattr(layer, "layers", [])
    return {
        f"{j}_{type(sub).__name__}/b": f"the bias of block layer {j} is cancelled by the BatchNormalization after it"
        for j, (sub, after) in enumerate(zip(inner, inner[1:]))
        if "b" in sub.params and type(after).__name__ == "BatchNormalization"
    }


def gradient_traps(layer, x, eps: float = 1e-6) -> dict:
    """The known ways a correct backward fails a gradient check, found on this layer and input.

    Returns ``{trap: explanation}`` for each that is present:
    ``"float32"`` (the input, the parameters or the output are not float64),
    ``"kink"`` (inputs of a ReLU/LeakyReLU within ``eps`` of 0, where a step of ``eps`` can
    cross the kink), ``"ties"`` (max-pool windows whose two largest values are within
    ``2·eps``: the perturbation can change the winner), ``"random"`` (two identical forwards
    give different outputs and the layer has no ``reseed`` to fix its mask).
    """
    xp = get_array_module(x)
    traps = {}
    dtypes = {str(x.dtype)} | {str(v.dtype) for v in layer.params.values()}
    if dtypes != {"float64"}:
        traps["float32"] = (
            f"arrays in {'/'.join(sorted(dtypes))}: float32 keeps ~7 digits, and a central "
            f"difference with eps=1e-6 loses most of them; check in float64"
        )
    if isinstance(layer, (ReLU, LeakyReLU)):
        near = int((xp.abs(x) <= eps).sum())
        if near:
            traps["kink"] = (
                f"{near} of {x.size} inputs lie within eps={eps:g} of the kink at 0, where the "
                f"function has no derivative; a central difference across it is wrong"
            )
    if isinstance(layer, MaxPool2D):
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        ho, wo, _ = layer.output_shape
        win = windows(x, ph, pw, sh, sw, ho, wo)  # (N, Ho, Wo, ph, pw, C)
        win = xp.moveaxis(win, 5, 3).reshape(*win.shape[:3], win.shape[5], ph * pw)
        top2 = xp.sort(win, axis=-1)[..., -2:] if ph * pw > 1 else None
        if top2 is not None:
            tied = int(((top2[..., 1] - top2[..., 0]) <= 2 * eps).sum())
            if tied:
                traps["ties"] = (
                    f"{tied} pooling windows have their two largest values within 2·eps: a step "
                    f"of eps can change which one wins, and the max has no derivative there"
                )
    if layer.output_shape is not None and not hasattr(layer, "reseed"):
        y1 = to_numpy(layer.forward(x, training=True))
        y2 = to_numpy(layer.forward(x, training=True))
        layer.cache = None
        if y1.shape == y2.shape and not np.array_equal(y1, y2):
            traps["random"] = (
                "two identical forwards differ (a random mask that is not fixed): the central "
                "difference compares two different functions; give the layer a seed and "
                "restart its generator before every forward, as Dropout.reseed does"
            )
    return traps


def _away_from_traps(x, traps, eps, rng):
    """``x`` moved off kinks and ties, so a correct backward can show it is correct."""
    xp = get_array_module(x)
    x = x.copy()
    if "kink" in traps:
        near = xp.abs(x) <= 1e3 * eps
        x[near] = xp.where(x[near] < 0, -1e3 * eps, 1e3 * eps)
    if "ties" in traps:
        x += xp.asarray(rng.uniform(0, 1e-3, x.shape))
    return x
