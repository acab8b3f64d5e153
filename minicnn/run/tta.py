"""Test-time augmentation (TTA): predict from a few transformed views of each image and average.

A model trained with random flips and crops has learnt that a mirrored or slightly shifted
image is the same class, but its answers on the two views still differ a little; averaging
their probabilities cancels part of that noise (the issue's PyTorch twin: +0.7 points with
the flip alone). ``evaluate(..., tta="flip")`` and ``predict(..., tta="flip")`` use it.

Views of a batch ``x (N, H, W, C)`` (channels last, as every minicnn image)::

    "flip"        x and x mirrored left-right                         2 views
    "flip_shift"  those two, each also moved 2 pixels up-left and     6 views
                  down-right (the gap filled with 0: the data set's
                  mean once images are standardised, as in augment)

The combined prediction is ``mean_v softmax(z_v)``; :func:`log_mean_softmax` returns its log,
which a loss takes as it takes logits (``log_softmax`` of a log-distribution is itself).
"""

from __future__ import annotations

from ..backend import get_array_module
from ..losses import log_softmax

SHIFT = 2  # pixels: half the training crop's 4-pixel padding
MODES = ("flip", "flip_shift")


def check_tta(tta, where: str = "tta"):
    """``None`` or one of :data:`MODES`; anything else raises ValueError naming the choices."""
    if tta is not None and tta not in MODES:
        raise ValueError(f"{where}: tta must be None or one of {', '.join(map(repr, MODES))}, got {tta!r}")
    return tta


def flip(x):
    """Mirror ``(N, H, W, C)`` images left-right (a contiguous copy, as the layers' GEMMs want)."""
    return get_array_module(x).ascontiguousarray(x[:, :, ::-1])


def shift(x, dy: int, dx: int):
    """Move ``(N, H, W, C)`` images ``dy`` rows down and ``dx`` columns right; the gap is 0."""
    xp = get_array_module(x)
    h, w = x.shape[1:3]
    out = xp.zeros_like(x)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def views(x, tta):
    """The views of a batch that ``tta`` names, the unchanged batch first."""
    check_tta(tta)
    if tta is None:
        return [x]
    both = [x, flip(x)]
    if tta == "flip":
        return both
    return both + [shift(v, d, d) for d in (-SHIFT, SHIFT) for v in both]


def log_mean_softmax(logits_of_views):
    """``log(mean_v softmax(z_v))`` of a list of ``(N, K)`` logits, computed from log-probabilities
    (``log-sum-exp`` over the views, shifted by their maximum) so that nothing overflows."""
    xp = get_array_module(logits_of_views[0])
    logp = xp.stack([log_softmax(z) for z in logits_of_views])  # (V, N, K)
    top = logp.max(axis=0)
    return top + xp.log(xp.exp(logp - top).mean(axis=0))
