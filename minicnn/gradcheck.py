"""Numerical gradient checks: prove a hand-written backward against central differences.

For a scalar function ``L(x)`` and a random unit direction ``u``, calculus says

    (L(x + eps*u) - L(x - eps*u)) / (2*eps)  ~=  <dL/dx, u>     (error O(eps^2))

so one pair of forwards checks the whole gradient along ``u`` — cheap even for a
large tensor, where perturbing every element would take two forwards each. We check
a few random directions and report the worst relative error.

The scalar is ``L = sum(y * r)`` for a fixed random ``r``: then ``dL/dy = r`` is what
we feed to ``backward``, and every output element matters. Work in float64: float32
rounding alone would swamp the comparison.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module


def _rel_error(analytic: float, numeric: float, grad_norm: float) -> float:
    """Relative error of a directional derivative.

    The denominator includes ``|grad|`` (the largest the derivative along a unit ``u`` can
    be): when ``u`` happens to be nearly orthogonal to the gradient, both values are tiny
    and dividing by them alone would turn harmless rounding into a large "error".
    """
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), grad_norm, 1e-300)


def _directional_errors(f, array, analytic_grad, rng, eps, directions):
    """Worst relative error of ``<analytic_grad, u>`` against ``f``'s central difference along ``u``."""
    xp = get_array_module(array)
    worst = 0.0
    original = array.copy()
    for _ in range(directions):
        u = xp.asarray(rng.standard_normal(array.shape))
        u /= float(xp.linalg.norm(u)) or 1.0
        array[...] = original + eps * u
        plus = f()
        array[...] = original - eps * u
        minus = f()
        array[...] = original
        numeric = (plus - minus) / (2 * eps)
        analytic = float((analytic_grad * u).sum())
        worst = max(worst, _rel_error(analytic, numeric, float(xp.linalg.norm(analytic_grad))))
    return worst


def check_layer(layer, x, *, seed=0, eps=1e-6, directions=3, training=False) -> dict:
    """Max relative error of each of a layer's gradients (``"x"`` and every parameter).

    ``x`` must be float64 and the layer built (or buildable) in float64. ``training=True``
    checks the training-mode function; for Dropout, fix its mask by giving it a seed —
    every forward here restarts the layer's generator so all see the same mask.
    """
    xp = get_array_module(x)
    if x.dtype != np.float64:
        raise ValueError(f"check_layer: x must be float64 (float32 rounding hides real errors), got {x.dtype}")
    if layer.output_shape is None:
        layer.build(x.shape[1:], dtype="float64")
    rng = np.random.default_rng(seed)
    x = x.copy()

    def forward():
        if hasattr(layer, "reseed"):
            layer.reseed(layer.seed)  # the same dropout mask every time
        return layer.forward(x, training=training)

    y = forward()
    r = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(r, need_input_grad=True)
    grads = {name: g.copy() for name, g in layer.grads.items()}

    def loss():
        return float((forward() * r).sum())

    errors = {"x": _directional_errors(loss, x, dx, rng, eps, directions)}
    for name, param in layer.params.items():
        errors[name] = _directional_errors(loss, param, grads[name], rng, eps, directions)
    return errors


def check_loss(loss, logits, labels, *, seed=0, eps=1e-6, directions=3) -> dict:
    """``{"logits": max relative error}`` of ``loss.backward()`` against central differences."""
    if logits.dtype != np.float64:
        raise ValueError(f"check_loss: logits must be float64, got {logits.dtype}")
    rng = np.random.default_rng(seed)
    logits = logits.copy()
    loss.forward(logits, labels)
    dlogits = loss.backward()
    return {
        "logits": _directional_errors(
            lambda: float(loss.forward(logits, labels)), logits, dlogits, rng, eps, directions
        )
    }
