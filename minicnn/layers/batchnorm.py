r"""BatchNormalization: each channel standardised by the batch's statistics, then scaled and shifted."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Array, Layer, filled, grad_enabled, registered


@registered
class BatchNormalization(Layer):
    r"""Batch normalisation (Ioffe & Szegedy 2015) over every axis but the last (``keras.layers.BatchNormalization``).

    Maths, per channel ``c``, over the ``m = N*H*W`` values ``x_i`` of the batch (``m = N``
    for ``(N, D)`` inputs):

    .. math::

        \mu &= \frac{1}{m} \sum_i x_i

        \sigma^2 &= \frac{1}{m} \sum_i (x_i - \mu)^2

        \hat{x}_i &= \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}

        y_i &= \gamma \, \hat{x}_i + \beta

    ``mu`` (μ) and ``var`` (σ², the biased variance) are the batch's in training; at inference they are
    ``moving_mean`` and ``moving_variance``. In training those follow the batch's, as Keras
    updates them (α = ``momentum``):

    .. math::

        \text{moving_mean} &\leftarrow \alpha \cdot \text{moving_mean} + (1 - \alpha) \, \mu

        \text{moving_variance} &\leftarrow \alpha \cdot \text{moving_variance} + (1 - \alpha) \, \sigma^2

    (PyTorch's ``momentum`` is ``1 -`` this one, and its running variance is the unbiased one.)

    Backward. ``dbeta = sum_i dy_i`` and ``dgamma = sum_i dy_i * xhat_i``. With ``dxhat = gamma * dy``
    and ``invstd = 1 / sqrt(var + eps)``, the chain rule through ``mu`` and ``var`` (each ``x_i``
    moves every ``xhat_j`` through them) gives, in training (CS231n's compact form):

    .. math::

        dx_i = \frac{\text{invstd}}{m}
        \Big( m \, d\hat{x}_i - \sum_j d\hat{x}_j - \hat{x}_i \sum_j d\hat{x}_j \, \hat{x}_j \Big)

    since ``d mu / d x_i = 1/m`` and ``d var / d x_i = 2 (x_i - mu) / m``. Here
    ``sum_j dxhat_j = gamma * dbeta`` and ``sum_j dxhat_j xhat_j = gamma * dgamma``, so it costs
    two reductions in all. At inference ``mu`` and ``var`` are constants: ``dx = gamma * invstd * dy``.
    (:func:`minicnn.layers.naive.batchnorm_backward`: the same, node by node through the graph.)

    Shapes:
        x, y, dy, dx: ``(N, H, W, C)`` or ``(N, C)``
        gamma, beta (``params``), moving_mean, moving_variance (``state``): ``(C,)``
        cache: ``xhat`` (like ``x``), ``invstd (C,)``, and ``m`` (``None`` at inference: no batch statistics)

    Args (Keras 3's names and defaults):
        axis: the channel axis; only the last one (``-1``) is supported.
        momentum: how much of the moving statistics each training batch keeps.
        epsilon: added to the variance before the square root.
        center, scale: learn ``beta`` / ``gamma`` (otherwise 0 / 1, and not parameters).
    """

    config_keys = ("axis", "momentum", "epsilon", "center", "scale")
    mixes_examples = True  # training statistics couple a batch's examples (see minicnn.distributed.threads)

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None):
        super().__init__(name)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"BatchNormalization: axis must be an int (the last axis, -1), got {axis!r}")
        if not 0.0 <= float(momentum) <= 1.0 or not float(epsilon) > 0.0:
            raise ValueError(f"BatchNormalization: need 0 <= momentum <= 1 and epsilon > 0, got {momentum}, {epsilon}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def _build(self, input_shape, rng):
        if self.axis not in (-1, len(input_shape)):
            raise ValueError(
                f"{self.describe()}: only the last axis (-1) can be the channel axis, got axis={self.axis} "
                f"for inputs (N, {', '.join(map(str, input_shape))})"
            )
        c, dtype = input_shape[-1], self.dtype
        self.params = {}
        if self.scale:
            self.params["gamma"] = filled((c,), 1, dtype)
        if self.center:
            self.params["beta"] = filled((c,), 0, dtype)
        self.grads = {k: None for k in self.params}
        self.state = {"moving_mean": filled((c,), 0, dtype), "moving_variance": filled((c,), 1, dtype)}
        return input_shape

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        axes = tuple(range(x.ndim - 1))  # every axis but the channel's
        if training:
            m, total = self.whole_batch((x.size // x.shape[-1], x.sum(axis=axes)))  # m: values per channel
            mean = total / m
            centred = x - mean
            var = self.whole_batch((centred * centred).sum(axis=axes)) / m
            if self.follows_batch:
                self._follow(mean, var)
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
            centred = x - mean
        invstd = 1.0 / get_array_module(x).sqrt(var + self.epsilon)
        xhat = centred * invstd
        y = xhat * self.params["gamma"] if self.scale else xhat.copy()
        if self.center:
            y += self.params["beta"]
        self.cache = (xhat, invstd, m if training else None) if grad_enabled() else None
        return y

    @staticmethod
    def whole_batch(partial):
        """``partial`` (a sum over this call's examples) summed over the whole batch: the identity
        when the batch comes in one piece. When minicnn.distributed.threads runs it in shards,
        their twins of this layer add the shards' partial sums, in shard order."""
        return partial

    follows_batch = True  # the moving statistics follow the batch's (one shard's twin alone does it)

    def _follow(self, mean: Array, var: Array) -> None:
        """The moving statistics one step towards the batch's, in place (checkpoints hold these arrays)."""
        for key, batch in (("moving_mean", mean), ("moving_variance", var)):
            moving = self.state[key]
            moving *= self.momentum
            moving += (1.0 - self.momentum) * batch

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        xhat, invstd, m = self.pop_cache()  # m: values per channel in the batch; None at inference
        axes = tuple(range(dy.ndim - 1))
        dbeta = dy.sum(axis=axes)  # this call's share: shards' gradients are added up afterwards
        dgamma = (dy * xhat).sum(axis=axes)
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        if not need_input_grad:
            return None
        g_invstd = self.params["gamma"] * invstd if self.scale else invstd
        if m is None:
            return dy * g_invstd  # mu and var are constants at inference
        dbeta, dgamma = self.whole_batch((dbeta, dgamma))
        return (g_invstd / m) * (m * dy - dbeta - xhat * dgamma)
