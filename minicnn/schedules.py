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
