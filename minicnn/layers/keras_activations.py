r"""The activations Keras names in ``activation=``, and the base of the layers that take it.

Each function ``y = f(z)`` is element-wise except softmax (over the last axis). Its backward
needs only the output ``y`` (for ReLU and leaky ReLU ``y > 0`` exactly where ``z > 0``), so
a layer keeps ``y``, the array it returned, and no copy:

.. code-block:: text

    linear       y = z                                  dz = dy
    relu         y = max(z, 0)                          dz = dy * (y > 0)
    leaky_relu   y = z if z > 0 else 0.2 * z            dz = dy * (1 if y > 0 else 0.2)
    sigmoid      y = 1 / (1 + exp(-z))                  dz = dy * y * (1 - y)
    tanh         y = tanh(z)                            dz = dy * (1 - y**2)
    softmax      y_i = exp(z_i) / sum_j exp(z_j)        dz = y * (dy - sum(dy * y, axis=-1))

Softmax's Jacobian is ``dy_i/dz_k = y_i * (delta_ik - y_k)``, so its vector product is
``dz_k = sum_i dy_i * y_i * (delta_ik - y_k) = y_k * (dy_k - sum_i dy_i * y_i)``.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .base import Array, Layer, grad_enabled, no_forward_error

KERAS_ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
LEAKY_RELU_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope (Keras 3)

_PASS = object()  # the cache of a forward whose activation did nothing: dz = dy


def activation_name(value, layer: str) -> str:
    """Keras's name for ``value`` (None is ``"linear"``); a ValueError naming the known ones otherwise."""
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in KERAS_ACTIVATIONS:
        raise ValueError(
            f"{layer}: unknown activation {value!r}; known: None, {', '.join(map(repr, KERAS_ACTIVATIONS))}"
        )
    return value


def activate(name: str, z: Array, in_place: bool = False) -> Array:
    """``f(z)`` for the activation ``name``, in ``z``'s dtype; ``in_place`` may write over ``z``."""
    xp = get_array_module(z)
    out = z if in_place else None
    if name == "linear":
        return z
    if name == "relu":
        return xp.maximum(z, z.dtype.type(0), out=out)
    if name == "leaky_relu":
        return xp.maximum(z, z * z.dtype.type(LEAKY_RELU_SLOPE), out=out)  # slope < 1: the larger is f(z)
    if name == "tanh":
        return xp.tanh(z, out=out)
    if name == "sigmoid":
        # exp(-|z|) never overflows; 1 / (1 + e) for z >= 0 and e / (1 + e) below keep every digit.
        e = xp.exp(-xp.abs(z))
        y = 1 / (1 + e)
        return xp.where(z >= 0, y, e * y).astype(z.dtype, copy=False)
    if name == "softmax":
        e = xp.exp(z - z.max(axis=-1, keepdims=True))  # shifted: every exp in (0, 1]
        e /= e.sum(axis=-1, keepdims=True)
        return e
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name: str, dy: Array, y: Array) -> Array:
    """``dz`` from ``dy`` and the output ``y = f(z)`` (see the table above); ``dy`` is left unchanged."""
    xp = get_array_module(dy)
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (y > 0)
    if name == "leaky_relu":
        return dy * xp.where(y > 0, y.dtype.type(1), y.dtype.type(LEAKY_RELU_SLOPE))
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}")


class ActivatedLayer(Layer):
    """A layer whose output goes through one of :data:`KERAS_ACTIVATIONS` (Keras's ``activation=``).

    ``activation`` holds the Keras name (``"linear"`` for none). ``emit_logits`` (default
    False), for a softmax only: while True, ``forward`` returns the values before the
    softmax and ``backward`` takes ``dy`` as their gradient, so that a model can hand
    logits to a softmax cross-entropy loss (exact for any logits) and apply the softmax
    itself in ``predict``. Other activations ignore it.
    """

    activation: str
    emit_logits: bool

    def _set_activation(self, activation) -> None:
        self.activation = activation_name(activation, type(self).__name__)
        self.emit_logits = False
        self._activation_cache: Any = None

    def _skips_activation(self) -> bool:
        return self.activation == "linear" or (self.emit_logits and self.activation == "softmax")

    def _activate(self, z: Array, in_place: bool) -> Array:
        """The activation of ``z`` (``in_place``: ``z`` is the layer's own fresh array); keeps ``y``."""
        if self._skips_activation():
            self._activation_cache = _PASS if grad_enabled() else None
            return z
        y = activate(self.activation, z, in_place=in_place)
        self._activation_cache = y if grad_enabled() else None
        return y

    def _activation_backward(self, dy: Array) -> Array:
        """``dz`` for the ``y`` the last forward kept (``dy`` itself when it skipped the activation)."""
        y, self._activation_cache = self._activation_cache, None
        if y is None:
            raise no_forward_error(self)
        return dy if y is _PASS else activation_grad(self.activation, dy, y)

    def get_config(self) -> dict:
        config = super().get_config()
        if self.activation != "linear":  # absent when linear: configs stay what older releases wrote and read
            config["activation"] = self.activation
        return config
