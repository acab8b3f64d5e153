"""Weight averaging: an exponential moving average (EMA) of the weights, kept beside the optimizer.

SGD's weights jitter around a minimum from step to step; their running average sits nearer its
middle, and often scores better than the last step's weights. Keras's optimizers have it as
``use_ema=True, ema_momentum=0.99``; here it is ``Adam(model, ema_momentum=0.99)`` (or ``SGD``).
After each update of a parameter ``p`` its average ``a`` follows it::

    n = steps averaged so far (0 at ``ema_start``; before that ``a = p``)
    m = min(ema_momentum, (1 + n) / (10 + n))     TensorFlow's warm-up of the momentum
    a = m * a + (1 - m) * p

The warm-up lets the average forget the early, poor weights quickly; ``ema_start`` (a step
number) averages only the end of a run. The horizon is about ``1 / (1 - m)`` steps: 0.999 is
1,000 steps, too slow for a 1,760-step run (it then mostly remembers weights from before the
learning rate came down); 0.99 (100 steps) suits short runs.

A :class:`WeightAverage` is a part the optimizer holds (``optimizer.averaging``), not its base
class: the update rules know nothing of it; the optimizer calls :meth:`WeightAverage.update` on
each block of rows it has just updated (still in cache). The average lives in the optimizer's
``"average"`` slot, so ``state_dict()`` and checkpoints carry it and a resumed run continues it
exactly. :meth:`WeightAverage.averaged_weights` (also ``optimizer.averaged_weights()``) swaps it
into the model for a while (``fit`` validates inside it, :class:`ModelCheckpoint`
saves inside it, so a checkpoint's weights *are* the averaged ones, the training weights
riding in the optimizer state until a resume swaps them back).
"""

from __future__ import annotations

import contextlib

from .backend import get_array_module


def check_settings(owner: str, ema_momentum, ema_start) -> None:
    """ValueError naming ``owner`` unless ``ema_momentum`` is None or in (0, 1) and ``ema_start`` an int >= 0."""
    if ema_momentum is not None and not (isinstance(ema_momentum, (int, float)) and 0 < ema_momentum < 1):
        raise ValueError(f"{owner}: ema_momentum must be None or in (0, 1), got {ema_momentum!r}")
    if not isinstance(ema_start, int) or ema_start < 0:
        raise ValueError(f"{owner}: ema_start must be a step number >= 0, got {ema_start!r}")


class WeightAverage:
    """The EMA of ``optimizer``'s parameters, in its ``"average"`` slot (see the module docstring)."""

    slot = "average"

    def __init__(self, optimizer, momentum: float, start: int = 0):
        check_settings(type(optimizer).__name__, momentum, start)
        self.optimizer, self.momentum, self.start = optimizer, float(momentum), start
        self.in_model = False  # True inside averaged_weights(): the slot then holds the training weights

    def update(self, p, avg, work) -> None:
        """Move the average ``avg`` of ``p`` towards it, in place (after ``p``'s update; ``work``: a
        temporary like ``p``). Element-wise, so blocks of rows average alike."""
        n = self.optimizer.iterations - max(self.start, 1)
        if n <= 0:  # not averaging yet: the average is the weights
            avg[...] = p
            return
        m = min(self.momentum, (1 + n) / (10 + n))
        get_array_module(p).subtract(p, avg, out=work)
        work *= p.dtype.type(1 - m)
        avg += work  # a + (1 - m)(p - a) = m a + (1 - m) p

    def swap(self) -> None:
        """Exchange, in place, every parameter with its average (a no-op before the first step)."""
        opt = self.optimizer
        table = opt.slots.get(self.slot, {})
        for key, layer, name in opt._params():
            if key in table:
                p, avg = layer.params[name], table[key]
                tmp = opt.state(key, p)[1]
                tmp[...] = p
                p[...] = avg
                avg[...] = tmp
        if table:
            self.in_model = not self.in_model

    @contextlib.contextmanager
    def averaged_weights(self):
        """The model holds the averaged weights inside the block and its training weights again
        after it (also on an error)."""
        if self.in_model or not self.optimizer.slots.get(self.slot):
            yield
            return
        self.swap()
        try:
            yield
        finally:
            self.swap()

    # -- persistence: the settings beside the optimizer's -----------------------------------
    def hyper(self) -> dict:
        return {"ema_momentum": self.momentum, "ema_start": self.start, "average_in_model": self.in_model}

    def load(self, state: dict) -> None:
        """After the slots are loaded: take the saved settings, and if the checkpoint was written
        inside :meth:`averaged_weights` (the model now holds the average), swap back to train."""
        self.momentum, self.start = float(state["ema_momentum"]), int(state["ema_start"])
        self.in_model = bool(state.get("average_in_model", False))
        if self.in_model:
            self.swap()
