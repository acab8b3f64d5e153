"""Optimizers: SGD (momentum, Nesterov, L2), Adam and AdamW (decoupled weight decay), Adamax and
RMSprop, each with an optional exponential moving average of the weights (Keras's ``use_ema``; see
:mod:`minicnn.averaging`). Keras's own classes, without a model, are :mod:`minicnn.optimizers`.

An optimizer walks a model's parameters and their gradients side by side and
updates each parameter *in place*, so the model's own arrays change.
State (momenta, step count) is keyed by the parameter's checkpoint name
(``"00_Conv2D/W"``), which lets ``state_dict()`` be saved next to the weights.
Each rule here is ``update(p, g, slots, work)`` on arrays; what they share is
:class:`minicnn.optim_base.Optimizer`.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module
from .optim_base import Optimizer, positive_number

__all__ = ["Optimizer", "positive_number", "SGD", "Adam", "AdamW", "Adamax", "RMSprop"]


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    With ``g = grad + weight_decay * p`` (L2 term), PyTorch's formulation:

    .. math::

        v &\leftarrow \text{momentum} \cdot v + g

        p &\leftarrow p - lr \, (g + \text{momentum} \cdot v) \quad \text{(nesterov)}

        p &\leftarrow p - lr \, v \quad \text{(otherwise)}

    (plain SGD when ``momentum = 0``).

    Keras's form (``keras_form = True``, :class:`minicnn.optimizers.SGD`): the decay is decoupled
    (:meth:`Optimizer.decay_weights`, before the step, ``g = grad``) and the velocity holds the
    learning rate, so a new ``lr`` scales new gradients only:

    .. math::

        v &\leftarrow \text{momentum} \cdot v - lr \, g

        p &\leftarrow p + \text{momentum} \cdot v - lr \, g \quad \text{(nesterov)}

        p &\leftarrow p + v \quad \text{(otherwise)}
    """

    keras_form = False  # a class setting: minicnn.optimizers.SGD's, whose states carry another class name

    def __init__(self, model, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, ema_momentum=None, ema_start=0):
        super().__init__(model, lr, ema_momentum, ema_start)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay!r}")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    @property
    def slot_names(self):
        """The state kept per parameter: ``("velocity",)`` with momentum, none without."""
        return ("velocity",) if self.momentum else ()

    uses_work = False

    def update(self, p, g, slots, work):
        f = p.dtype.type
        if self.keras_form:
            self.decay_weights(p, work)
        elif self.weight_decay:
            g = g + f(self.weight_decay) * p
        if self.momentum == 0:
            p -= f(self.lr) * g
            return
        v = slots["velocity"]
        v *= f(self.momentum)
        if self.keras_form:
            v -= f(self.lr) * g
            p += f(self.momentum) * v - f(self.lr) * g if self.nesterov else v
            return
        v += g
        step = g + f(self.momentum) * v if self.nesterov else v
        p -= f(self.lr) * step


def _check_adam_like(name: str, beta1, beta2, eps, weight_decay) -> None:
    """The settings Adam, AdamW and Adamax share, each in its range (ValueError otherwise)."""
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"{name}: beta1 and beta2 must be in [0, 1), got {beta1!r}, {beta2!r}")
    if eps <= 0 or weight_decay < 0:
        raise ValueError(f"{name}: eps must be > 0 and weight_decay >= 0, got {eps!r}, {weight_decay!r}")


class Adam(Optimizer):
    r"""Adam with decoupled weight decay (AdamW when ``weight_decay > 0``).

    With ``t`` the step number (from 1): the first moment ``m``, the second moment ``v``, the
    decay (outside the adaptive scaling), then the step with both moments' bias corrected:

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1) \, g

        v &\leftarrow \beta_2 v + (1 - \beta_2) \, g^2

        p &\leftarrow p - lr \cdot \text{weight_decay} \cdot p

        p &\leftarrow p - lr \, \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}

    ``eps`` defaults to Keras's 1e-7. With ``eps_hat = True`` (Keras's ``epsilon``, "epsilon hat"
    in Kingma & Ba) it is added before the second moment's bias correction:

    .. math::

        p \leftarrow p - lr \, \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \, \frac{m}{\sqrt{v} + \epsilon}
    """

    eps_hat = False  # a class setting (minicnn.optimizers.Adam), not a saved one

    def __init__(
        self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.0, ema_momentum=None, ema_start=0
    ):
        super().__init__(model, lr, ema_momentum, ema_start)
        _check_adam_like(type(self).__name__, beta1, beta2, eps, weight_decay)
        self.beta1, self.beta2, self.eps, self.weight_decay = (
            float(beta1),
            float(beta2),
            float(eps),
            float(weight_decay),
        )

    def _hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay}

    slot_names = ("m", "v")

    def update(self, p, g, slots, work):
        xp = get_array_module(p)
        f = p.dtype.type
        t = self.iterations
        m, v, tmp = slots["m"], slots["v"], work  # tmp: reused, no fresh 4 MB array (and its page faults) per step
        m *= f(self.beta1)
        m += xp.multiply(g, f(1 - self.beta1), out=tmp)
        v *= f(self.beta2)
        xp.multiply(g, g, out=tmp)
        tmp *= f(1 - self.beta2)
        v += tmp
        self.decay_weights(p, tmp)
        # Fold both bias corrections into one scalar step size and one scaled eps.
        c1, c2 = 1 - self.beta1**t, 1 - self.beta2**t
        denom = xp.sqrt(v, out=tmp)
        denom += f(self.eps if self.eps_hat else self.eps * np.sqrt(c2))
        xp.divide(m, denom, out=tmp)
        tmp *= f(self.lr * np.sqrt(c2) / c1)
        p -= tmp


class AdamW(Adam):
    r"""Adam with decoupled weight decay on by default (Loshchilov & Hutter), at Keras's 0.004:
    :class:`Adam`'s maths, ``p -= lr * weight_decay * p`` each step besides the adaptive one."""

    def __init__(
        self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.004, ema_momentum=None, ema_start=0
    ):
        super().__init__(model, lr, beta1, beta2, eps, weight_decay, ema_momentum, ema_start)


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm (Kingma & Ba, section 7.1), ``eps`` as Keras adds it.

    With ``t`` the step number (from 1): the first moment ``m``, the decaying largest
    gradient ``u``, the decoupled decay, then the step:

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1) \, g

        u &\leftarrow \max(\beta_2 u, |g|)

        p &\leftarrow p - lr \cdot \text{weight_decay} \cdot p

        p &\leftarrow p - \frac{lr}{1 - \beta_1^t} \, \frac{m}{u + \epsilon}
    """

    def __init__(
        self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.0, ema_momentum=None, ema_start=0
    ):
        super().__init__(model, lr, ema_momentum, ema_start)
        _check_adam_like("Adamax", beta1, beta2, eps, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    def _hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay}

    slot_names = ("m", "u")

    def update(self, p, g, slots, work):
        xp = get_array_module(p)
        f = p.dtype.type
        m, u, tmp = slots["m"], slots["u"], work
        self.decay_weights(p, tmp)
        m *= f(self.beta1)
        m += xp.multiply(g, f(1 - self.beta1), out=tmp)
        u *= f(self.beta2)
        xp.maximum(u, xp.abs(g, out=tmp), out=u)
        xp.add(u, f(self.eps), out=tmp)
        xp.divide(m, tmp, out=tmp)
        tmp *= f(self.lr / (1 - self.beta1**self.iterations))
        p -= tmp


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012) as Keras 3 has it: ``eps`` inside the square root, and momentum
    accumulating the scaled steps (learning rate included).

    The mean square ``s`` (slot ``"mean_square"``), the mean gradient ``a`` (``"mean_grad"``,
    centered only), the divisor ``d``, the decoupled decay, then the step, through the velocity
    ``v`` (``"velocity"``) with momentum:

    .. math::

        s &\leftarrow \rho s + (1 - \rho) \, g^2

        a &\leftarrow \rho a + (1 - \rho) \, g

        d &= \sqrt{s - a^2 + \epsilon} \quad \text{if centered, else} \quad d = \sqrt{s + \epsilon}

        p &\leftarrow p - lr \cdot \text{weight_decay} \cdot p

        v &\leftarrow \text{momentum} \cdot v + lr \, g / d, \quad p \leftarrow p - v \quad \text{(with momentum)}

        p &\leftarrow p - lr \, g / d \quad \text{(without)}
    """

    def __init__(
        self,
        model,
        lr=1e-3,
        rho=0.9,
        momentum=0.0,
        eps=1e-7,
        centered=False,
        weight_decay=0.0,
        ema_momentum=None,
        ema_start=0,
    ):
        super().__init__(model, lr, ema_momentum, ema_start)
        if not (0 <= rho < 1 and 0 <= momentum < 1):
            raise ValueError(f"RMSprop: rho and momentum must be in [0, 1), got {rho!r}, {momentum!r}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError(f"RMSprop: eps must be > 0 and weight_decay >= 0, got {eps!r}, {weight_decay!r}")
        self.rho, self.momentum, self.eps, self.centered = float(rho), float(momentum), float(eps), bool(centered)
        self.weight_decay = float(weight_decay)

    def _hyper(self):
        return {
            "rho": self.rho,
            "momentum": self.momentum,
            "eps": self.eps,
            "centered": self.centered,
            "weight_decay": self.weight_decay,
        }

    @property
    def slot_names(self):
        """The state kept per parameter: ``mean_square``, and ``mean_grad`` and ``velocity`` when used."""
        return ("mean_square",) + (("mean_grad",) if self.centered else ()) + (("velocity",) if self.momentum else ())

    def update(self, p, g, slots, work):
        xp = get_array_module(p)
        f = p.dtype.type
        s, tmp = slots["mean_square"], work
        self.decay_weights(p, tmp)
        s *= f(self.rho)
        xp.multiply(g, g, out=tmp)
        tmp *= f(1 - self.rho)
        s += tmp
        if self.centered:
            a = slots["mean_grad"]
            a *= f(self.rho)
            a += xp.multiply(g, f(1 - self.rho), out=tmp)
            xp.multiply(a, a, out=tmp)
            xp.subtract(s, tmp, out=tmp)
            tmp += f(self.eps)
        else:
            xp.add(s, f(self.eps), out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(g, tmp, out=tmp)
        tmp *= f(self.lr)
        if self.momentum:
            v = slots["velocity"]
            v *= f(self.momentum)
            v += tmp
            p -= v
        else:
            p -= tmp
