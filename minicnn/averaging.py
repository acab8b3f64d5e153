"""Weight averaging: an exponential moving average (EMA) of the weights, kept by the optimizer.

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

The average lives in the optimizer's ``"average"`` slot, so ``state_dict()`` and checkpoints
carry it and a resumed run continues it exactly. :meth:`WeightAveraging.averaged_weights`
swaps it into the model for a while (``fit`` validates inside it, :class:`ModelCheckpoint`
saves inside it, so a checkpoint's weights *are* the averaged ones, the training weights
riding in the optimizer state until a resume swaps them back).
"""

from __future__ import annotations

import contextlib

from .backend import get_array_module


class WeightAveraging:
    """The EMA part of :class:`minicnn.optim.Optimizer` (a mixin: it uses the optimizer's slots)."""

    def _init_averaging(self, ema_momentum, ema_start):
        if ema_momentum is not None and not (isinstance(ema_momentum, (int, float)) and 0 < ema_momentum < 1):
            raise ValueError(f"{type(self).__name__}: ema_momentum must be None or in (0, 1), got {ema_momentum!r}")
        if not isinstance(ema_start, int) or ema_start < 0:
            raise ValueError(f"{type(self).__name__}: ema_start must be a step number >= 0, got {ema_start!r}")
        self.ema_momentum = None if ema_momentum is None else float(ema_momentum)
        self.ema_start = ema_start
        self.average_in_model = False  # True inside averaged_weights(): the slot then holds the training weights

    @property
    def average_slots(self) -> tuple:
        return () if self.ema_momentum is None else ("average",)

    def average(self, p, avg, work):
        """Move the average ``avg`` of ``p`` towards it, in place (after ``p``'s update; ``work``: a
        temporary like ``p``). Element-wise, so blocks of rows average alike. No-op without EMA."""
        if self.ema_momentum is None or avg is None:
            return
        n = self.iterations - max(self.ema_start, 1)
        if n <= 0:  # not averaging yet: the average is the weights
            avg[...] = p
            return
        m = min(self.ema_momentum, (1 + n) / (10 + n))
        tmp = work
        get_array_module(p).subtract(p, avg, out=tmp)
        tmp *= p.dtype.type(1 - m)
        avg += tmp  # a + (1 - m)(p - a) = m a + (1 - m) p

    def swap_average(self):
        """Exchange, in place, every parameter with its average (a no-op without one)."""
        table = self.slots.get("average", {})
        for key, layer, name in self._params():
            if key in table:
                p, avg = layer.params[name], table[key]
                tmp = self.state(key, p)[1]
                tmp[...] = p
                p[...] = avg
                avg[...] = tmp
        if table:
            self.average_in_model = not self.average_in_model

    @contextlib.contextmanager
    def averaged_weights(self):
        """``with optimizer.averaged_weights(): model.evaluate(...)``: the model holds the averaged
        weights inside the block and its training weights again after it (also on an error).
        Without an average (no EMA, no step yet) the model is left as it is."""
        if self.average_in_model or not self.slots.get("average"):
            yield
            return
        self.swap_average()
        try:
            yield
        finally:
            self.swap_average()

    # -- persistence ---------------------------------------------------------------
    def _averaging_hyper(self) -> dict:
        if self.ema_momentum is None:
            return {}
        return {
            "ema_momentum": self.ema_momentum,
            "ema_start": self.ema_start,
            "average_in_model": self.average_in_model,
        }

    def _check_averaging_state(self, state: dict):
        saved = state.get("ema_momentum")
        if (saved is None) != (self.ema_momentum is None):
            raise ValueError(
                f"optimizer state was saved {'without' if saved is None else f'with ema_momentum={saved}'}, "
                f"this optimizer has ema_momentum={self.ema_momentum}"
            )

    def _load_averaging_state(self, state: dict):
        """After the slots are loaded: take the saved settings, and if the checkpoint was written
        inside :meth:`averaged_weights` (the model now holds the average), swap back to train."""
        if self.ema_momentum is None:
            return
        self.ema_momentum, self.ema_start = float(state["ema_momentum"]), int(state["ema_start"])
        self.average_in_model = bool(state.get("average_in_model", False))
        if self.average_in_model:
            self.swap_average()
