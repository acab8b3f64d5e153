"""Dropout: randomly silence units while training."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from .base import Array, Layer, grad_enabled, registered

_IDENTITY = object()  # the cache of a forward that dropped nothing


@registered
class Dropout(Layer):
    r"""Inverted dropout.

    Training: each element is kept with probability ``1 - rate`` and scaled by
    ``1 / (1 - rate)``, so its expected value is unchanged and inference needs no
    rescaling: ``y = x * mask``, ``mask = (u >= rate) / (1 - rate)``, ``u ~ U[0, 1)``.
    Inference (``training=False``): the identity.

    Shapes: ``x``, ``y``, ``dy`` share one shape. Cache: ``mask`` (same shape, x's dtype),
    or a marker for the identity (``training=False``), or nothing under :func:`minicnn.no_grad`.
    Backward: ``y`` is ``x`` times a constant mask, so ``dx = dy * mask``.

    The mask comes from a generator on the current device seeded by ``seed``: the same
    seed gives the same masks, which gradient checks (and reproducible runs) rely on.
    ``reseed(seed)`` restarts the stream.

    Args:
        rate: fraction of units dropped, in ``[0, 1)``.
        seed: int or None (a fresh random stream).
    """

    config_keys = ("rate",)

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.reseed(seed)

    def twin(self) -> Dropout:
        """:meth:`Layer.twin` with a generator of its own: threads never draw from one together."""
        t = super().twin()
        assert isinstance(t, Dropout)
        t.reseed(self.seed)
        return t

    def reseed(self, seed):
        """Restart the mask generator from ``seed`` (None: a fresh random seed); ``fit`` reseeds per epoch."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = int(seed)
        self._backend = get_backend()
        self.generator = self._backend.rng(self.seed)  # a new one per reseed

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        if not training or self.rate == 0:
            self.cache = _IDENTITY if grad_enabled() else None  # dx = dy
            return x
        if self._backend is not get_backend():  # backend switched since construction
            self.reseed(self.seed)
        u = self._backend.uniform(self.generator, x.shape, x.dtype)  # (generators allocate their output)
        # Build the mask in u's memory: (u >= rate) * scale, written back into u.
        mask = self._backend.xp.greater_equal(u, self.rate, out=u)
        mask *= x.dtype.type(1.0 / (1.0 - self.rate))
        self.cache = mask if grad_enabled() else None
        return x * mask

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        mask = self.pop_cache()
        return dy if mask is _IDENTITY else dy * mask
