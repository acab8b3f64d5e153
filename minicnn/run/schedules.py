"""Learning-rate schedules: functions of the fractional epoch ``t`` (``epoch + step / steps``).

Pass one to ``fit(..., lr_schedule=...)``; ``fit`` sets ``optimizer.lr`` from it before
every step, so a schedule is smooth within an epoch and a resumed run continues it exactly.
"""

from __future__ import annotations

import math


def warmup_cosine(peak: float, epochs: float, warmup: float = 1.0):
    """Linear warm-up from ~0 to ``peak`` over ``warmup`` epochs, then a cosine decay to 0 at ``epochs``.

    Why: Adam's first steps use moment estimates from a handful of batches, so a full-size
    step then can throw the weights far off; the warm-up lets the estimates settle. The
    cosine then spends most of the run at a large rate and anneals smoothly at the end.
    """
    if peak <= 0 or epochs <= 0 or warmup < 0:
        raise ValueError(f"warmup_cosine: need peak > 0, epochs > 0, warmup >= 0; got {peak}, {epochs}, {warmup}")

    def schedule(t: float) -> float:
        if t < warmup:
            return peak * (t + 1e-3) / warmup
        progress = min(1.0, (t - warmup) / max(epochs - warmup, 1e-9))
        return 0.5 * peak * (1 + math.cos(math.pi * progress))

    return schedule


def exponential(initial: float, factor: float):
    """``initial * factor ** floor(t)``: the course's "x0.9 per epoch" decay (``factor=0.9``)."""
    if initial <= 0 or not 0 < factor <= 1:
        raise ValueError(f"exponential: need initial > 0 and 0 < factor <= 1; got {initial}, {factor}")
    return lambda t: initial * factor ** math.floor(t)


def linear_decay(peak: float, epochs: float, warmup: float = 0.0):
    """Linear warm-up from ~0 to ``peak`` over ``warmup`` epochs, then a straight line to 0 at ``epochs``.

    Why: within a fixed budget the last epochs gain most from a small rate, and a straight
    line spends less of the run near zero than the cosine's long tail does; it is the
    schedule of the fast recipe (the issue's measurements: 10 epochs, Adam 3e-3).
    """
    if peak <= 0 or epochs <= 0 or not 0 <= warmup < epochs:
        raise ValueError(
            f"linear_decay: need peak > 0, epochs > 0, 0 <= warmup < epochs; got {peak}, {epochs}, {warmup}"
        )

    def schedule(t: float) -> float:
        if t < warmup:
            return peak * (t + 1e-3) / warmup
        return peak * max(0.0, (epochs - t) / (epochs - warmup))

    return schedule


def one_cycle(
    peak: float, epochs: float, pct_start: float = 0.25, div_factor: float = 25.0, final_div_factor: float = 1e4
):
    """PyTorch's ``OneCycleLR`` (``anneal_strategy="cos"``) as a function of the epoch: a cosine rise
    from ``peak / div_factor`` to ``peak`` over the first ``pct_start`` of the run, then a cosine
    fall to ``peak / (div_factor * final_div_factor)`` at ``epochs``.

    Why: the low start plays the warm-up's part, the long stay near the peak explores, and the
    run ends at almost zero within the fixed budget (Smith's "super-convergence").
    """
    if peak <= 0 or epochs <= 0 or not 0 < pct_start < 1 or div_factor <= 0 or final_div_factor <= 0:
        raise ValueError(
            f"one_cycle: need peak > 0, epochs > 0, 0 < pct_start < 1 and positive div factors; "
            f"got {peak}, {epochs}, {pct_start}, {div_factor}, {final_div_factor}"
        )
    start, end, rise = peak / div_factor, peak / (div_factor * final_div_factor), pct_start * epochs

    def schedule(t: float) -> float:
        if t < rise:
            return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * t / rise))
        progress = min(1.0, (t - rise) / (epochs - rise))
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule
