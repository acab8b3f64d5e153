"""Optimizers: SGD (momentum, Nesterov, L2), Adam and AdamW (decoupled weight decay), Adamax and
RMSprop, each with an optional exponential moving average of the weights (Keras's ``use_ema``; see
:mod:`minicnn.averaging`). Keras's own classes, without a model, are :mod:`minicnn.optimizers`.

An optimizer walks a model's parameters and their gradients side by side and
updates each parameter *in place*, so the model's own arrays change.
State (momenta, step count) is keyed by the parameter's checkpoint name
(``"00_Conv2D/W"``), which lets ``state_dict()`` be saved next to the weights.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .averaging import WeightAveraging
from .backend import get_array_module, get_backend, to_numpy

Array = Any  # a NumPy or CuPy ndarray


def _is_number(value) -> bool:
    """A real number as JSON gives it back (bools included: they are settings too)."""
    return isinstance(value, (int, float))


def positive_number(value, what: str) -> float:
    """``value`` as a float if it is a finite real number > 0; else ValueError naming ``what``."""
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if math.isfinite(number) and number > 0:
        return number
    raise ValueError(f"{what} must be a positive number, got {value!r}")


class Optimizer(WeightAveraging):
    """What the update rules share: the model's parameters, ``lr`` (which a schedule may set before
    every step), ``step()``, the optional weight average and a state dict for checkpoints."""

    def __init__(self, model, lr, ema_momentum=None, ema_start=0):
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr!r}")
        self.model = model
        self.lr = float(lr)
        self.iterations = 0
        self.slots: dict[str, dict] = {}  # slot name -> {param key -> array}
        self._init_averaging(ema_momentum, ema_start)

    def _params(self):
        """(key, layer, name) for every parameter, in model order."""
        return self.model.named_parameters()

    @property
    def learning_rate(self) -> float:
        """Keras's name for ``lr``: read it, or set it between steps (a positive number)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.lr = positive_number(value, f"{type(self).__name__}: learning_rate")

    def bind(self, model):
        """Tie the optimizer to ``model`` (what ``model.compile(optimizer=...)`` calls): a no-op for
        the model it was made for, a ValueError for another. Returns the optimizer."""
        if self.model is not model:
            raise ValueError(f"{type(self).__name__} was made for another model: make a new one for this model")
        return self

    def _state_class(self) -> str:
        """The ``"class"`` of :meth:`state_dict`: a state loads only into an optimizer of the same one."""
        return type(self).__name__

    slot_names: tuple = ()  # the per-parameter state arrays the update rule keeps
    uses_work = True  # whether the rule takes a temporary (``work`` is None otherwise)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place: ``update(p, g, slots, work)``,
        then its weight average when there is one."""
        found = self.gradients()  # first: an optimizer without a model raises with nothing changed
        self.iterations += 1
        for key, param, grad in found:
            slots, work = self.state(key, param)
            self.update_and_average(param, grad, slots, work)

    def gradients(self) -> list[tuple[str, Array, Array]]:
        """``(key, param, grad)`` for every parameter that has a gradient, in model order."""
        found = ((key, layer.params[name], layer.grads.get(name)) for key, layer, name in self._params())
        return [(key, p, g) for key, p, g in found if g is not None]

    def state(self, key: str, param: Array) -> tuple[dict[str, Array], Array | None]:
        """``(slots, work)`` of parameter ``key``: its state arrays by slot name (zeros at first,
        saved in checkpoints) and a temporary shaped like it, reused from step to step (never
        saved; one per parameter, so that updates running at once never share one)."""
        xp = get_array_module(param)
        slots = {}
        for slot in self.slot_names + self.average_slots:
            table = self.slots.setdefault(slot, {})
            if key not in table:
                table[key] = xp.zeros_like(param)  # on the parameter's device
            slots[slot] = table[key]
        if not (self.uses_work or self.average_slots):  # the average needs a temporary too
            return slots, None
        work = self.__dict__.setdefault("_work_arrays", {})
        buf = work.get(key)
        if buf is None or buf.shape != param.shape or buf.dtype != param.dtype or get_array_module(buf) is not xp:
            buf = work[key] = xp.empty_like(param)
        return slots, buf

    def update(self, p: Array, g: Array, slots: dict[str, Array], work: Array | None) -> None:
        """The update rule on arrays, in place: ``p`` from ``g``, its ``slots`` and a temporary
        ``work``. Element-wise, so any block of rows of them updates the same as the whole."""
        raise NotImplementedError

    def update_and_average(self, p: Array, g: Array, slots: dict[str, Array], work: Array | None) -> None:
        """:meth:`update`, then the same rows' weight average (just updated: still in cache)."""
        self.update(p, g, slots, work)
        self.average(p, slots.get("average"), work)

    def decay_weights(self, p: Array, work: Array | None) -> None:
        """Decoupled weight decay (Loshchilov & Hutter; Keras's ``weight_decay``), in place:
        ``p -= lr * weight_decay * p``, outside the rule's gradient scaling. No-op at 0."""
        if self.weight_decay:
            scale = p.dtype.type(self.lr * self.weight_decay)
            p -= p * scale if work is None else get_array_module(p).multiply(p, scale, out=work)

    # -- persistence: plain arrays and numbers only ----------------------------------
    def state_dict(self) -> dict:
        """``{"class", "lr", "iterations", ...hyperparameters, "slot/key": array}``; arrays as NumPy."""
        state = {"class": self._state_class(), "lr": self.lr, "iterations": self.iterations}
        state.update(self._hyper())
        state.update(self._averaging_hyper())
        for slot, table in self.slots.items():
            for key, arr in table.items():
                state[f"{slot}/{key}"] = to_numpy(arr)
        return state

    def check_state_dict(self, state: dict):
        """Raise ValueError if ``state`` does not fit this optimizer and model; change nothing."""
        if state.get("class") != self._state_class():
            raise ValueError(f"optimizer state is for {state.get('class')!r}, not {self._state_class()}")
        # Every scalar as load_state_dict will read it, so that loading cannot fail half-way.
        lr, iterations = state.get("lr"), state.get("iterations")
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"optimizer state 'lr' must be a positive number, got {lr!r}")
        if not (isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 0):
            raise ValueError(f"optimizer state 'iterations' must be an int >= 0, got {iterations!r}")
        for name, now in {**self._hyper(), **self._averaging_hyper()}.items():
            value = state.get(name, now)
            if isinstance(now, bool) != isinstance(value, bool) or not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"optimizer state {name!r} must be {type(now).__name__} like {now!r}, got {value!r}")
        self._check_averaging_state(state)
        shapes = {
            key: (tuple(layer.params[name].shape), layer.params[name].dtype) for key, layer, name in self._params()
        }
        for k, v in state.items():
            if "/" not in k:
                continue
            key = k.split("/", 1)[1]
            if key not in shapes:
                raise ValueError(f"optimizer state has {k!r}, but the model has no parameter {key!r}")
            if (tuple(v.shape), v.dtype) != shapes[key]:
                raise ValueError(
                    f"optimizer state {k!r} is {v.dtype}{tuple(v.shape)}, "
                    f"the parameter is {shapes[key][1]}{shapes[key][0]}"
                )

    def load_state_dict(self, state: dict):
        """Restore the state :meth:`state_dict` gave (checked first: keys and shapes must match)."""
        self.check_state_dict(state)
        backend = get_backend()
        self.lr = float(state["lr"])
        self.iterations = int(state["iterations"])
        for name in self._hyper():
            if name in state:
                setattr(self, name, type(getattr(self, name))(state[name]))
        self.slots = {}
        for k, v in state.items():
            if "/" in k:
                slot, key = k.split("/", 1)
                self.slots.setdefault(slot, {})[key] = backend.asarray(np.array(v))
        self._load_averaging_state(state)

    def _hyper(self) -> dict:
        return {}

    weight_decay = 0.0  # the rules that have one set their own


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    With ``g = grad + weight_decay * p`` (L2 term), PyTorch's formulation::

        v = momentum * v + g
        p -= lr * (g + momentum * v)   if nesterov
        p -= lr * v                    otherwise (plain SGD when momentum = 0)

    Keras's form (``keras_form = True``, :class:`minicnn.optimizers.SGD`): the decay is decoupled
    (:meth:`Optimizer.decay_weights`, before the step, ``g = grad``) and the velocity holds the
    learning rate, so a new ``lr`` scales new gradients only::

        v = momentum * v - lr * g
        p += momentum * v - lr * g     if nesterov
        p += v                         otherwise
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

    With ``t`` the step number (from 1)::

        m = beta1 * m + (1 - beta1) * g                 first moment
        v = beta2 * v + (1 - beta2) * g**2              second moment
        p -= lr * weight_decay * p                      decay, outside the adaptive scaling
        p -= lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    ``eps`` defaults to Keras's 1e-7. With ``eps_hat = True`` (Keras's ``epsilon``, "epsilon hat"
    in Kingma & Ba) it is added before the second moment's bias correction::

        p -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)
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

    With ``t`` the step number (from 1)::

        m = beta1 * m + (1 - beta1) * g                 first moment
        u = max(beta2 * u, |g|)                         decaying largest |gradient|
        p -= lr * weight_decay * p                      decoupled decay
        p -= lr / (1 - beta1**t) * m / (u + eps)
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

    ::

        s = rho * s + (1 - rho) * g**2                  mean square ("mean_square")
        a = rho * a + (1 - rho) * g                     mean gradient ("mean_grad", centered only)
        d = sqrt(s - a**2 + eps) if centered else sqrt(s + eps)
        p -= lr * weight_decay * p                      decoupled decay
        v = momentum * v + lr * g / d;  p -= v          with momentum ("velocity")
        p -= lr * g / d                                 without
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
