"""The base of every update rule in :mod:`minicnn.optim`: the model's parameters and their
gradients, per-parameter state arrays ("slots") keyed by the parameter's checkpoint name
(``"00_Conv2D/W"``), ``step()``, decoupled weight decay, and the state dict that checkpoints save.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

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


class Optimizer:
    """What the update rules share: the model's parameters, ``lr`` (which a schedule may set before
    every step), ``step()``, the optional weight average and a state dict for checkpoints."""

    def __init__(self, model, lr, ema_momentum=None, ema_start=0):
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr!r}")
        self.model = model
        self.lr = float(lr)
        self.iterations = 0
        self.slots: dict[str, dict] = {}  # slot name -> {param key -> array}
        self.averaging = None  # a minicnn.averaging.WeightAverage when asked for: beside the rule, not in it
        if ema_momentum is not None or ema_start:
            from .averaging import WeightAverage, check_settings

            check_settings(type(self).__name__, ema_momentum, ema_start)
            self.averaging = None if ema_momentum is None else WeightAverage(self, ema_momentum, ema_start)

    # The weight average's settings and swap, under the names the optimizers' arguments give them.
    ema_momentum = property(lambda self: None if self.averaging is None else self.averaging.momentum)
    ema_start = property(lambda self: 0 if self.averaging is None else self.averaging.start)
    average_in_model = property(lambda self: self.averaging is not None and self.averaging.in_model)

    def averaged_weights(self):
        """``with optimizer.averaged_weights(): model.evaluate(...)``: the model holds the averaged
        weights inside the block (:mod:`minicnn.averaging`); without an average, as it is."""
        return contextlib.nullcontext() if self.averaging is None else self.averaging.averaged_weights()

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
        for update in self.updates():
            update()

    def updates(self, blocks: Callable[[Array], list] | None = None) -> list[Callable[[], None]]:
        """One step's work, counted as done (``iterations + 1``), as argument-free calls to run in
        order or at once: one per parameter, or one per block of rows with ``blocks(param) ->
        [row slices]`` (the rules are element-wise, so blocks give the same bits as the whole)."""
        found = self.gradients()  # first: an optimizer without a model raises with nothing changed
        self.iterations += 1
        tasks: list[Callable[[], None]] = []
        for key, param, grad in found:
            slots, work = self.state(key, param)
            for rows in [...] if blocks is None else blocks(param):
                block = {name: s[rows] for name, s in slots.items()}
                tmp = None if work is None else work[rows]
                tasks.append(functools.partial(self.update_and_average, param[rows], grad[rows], block, tmp))
        return tasks

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
        average = () if self.averaging is None else (self.averaging.slot,)
        for slot in self.slot_names + average:
            table = self.slots.setdefault(slot, {})
            if key not in table:
                table[key] = xp.zeros_like(param)  # on the parameter's device
            slots[slot] = table[key]
        if not (self.uses_work or average):  # the average needs a temporary too
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
        if self.averaging is not None:
            self.averaging.update(p, slots[self.averaging.slot], work)

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
        state.update({} if self.averaging is None else self.averaging.hyper())
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
        for name, now in {**self._hyper(), **({} if self.averaging is None else self.averaging.hyper())}.items():
            value = state.get(name, now)
            if isinstance(now, bool) != isinstance(value, bool) or not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"optimizer state {name!r} must be {type(now).__name__} like {now!r}, got {value!r}")
        saved = state.get("ema_momentum")
        if (saved is None) != (self.averaging is None):
            raise ValueError(
                f"optimizer state was saved {'without' if saved is None else f'with ema_momentum={saved}'}, "
                f"this optimizer has ema_momentum={self.ema_momentum}"
            )
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
        if self.averaging is not None:
            self.averaging.load(state)

    def _hyper(self) -> dict:
        return {}

    weight_decay = 0.0  # the rules that have one set their own
