"""Keras 3's optimizers, as ``keras.optimizers`` spells them: made without a model, bound to one by
``model.compile(optimizer=...)`` (which calls :meth:`Optimizer.bind`)::

    opt = minicnn.optimizers.Adamax(learning_rate=5e-3)
    opt.bind(model)            # what compile does
    opt.step()                 # after model.backward(...)

Each class is a thin subclass of its update rule in :mod:`minicnn.optim` (the maths lives there,
once) with Keras's argument names, defaults and conventions:

- ``weight_decay`` is decoupled for every optimizer, as Keras applies it: before each update
  ``p -= learning_rate * weight_decay * p``. (``minicnn.optim.SGD``'s ``weight_decay`` is the
  coupled L2 kind, added to the gradient.)
- Adam's and AdamW's ``epsilon`` is Keras's "epsilon hat", added to ``sqrt(v)`` before the bias
  correction; SGD's velocity holds the learning rate (``v = momentum * v - learning_rate * g``).
- ``learning_rate`` can be read and set between steps; ``iterations`` counts the steps taken.

Their checkpoint states carry the class as ``"keras.Adam"`` and so on, so they never load into
the ``minicnn.optim`` rule of the same name (whose maths differs a little), nor the other way.
Keras's other optimizers (Nadam, Adagrad, ...) are not here: asking for one says so.
"""

from __future__ import annotations

from . import optim

# Keras's base-optimizer arguments with no counterpart here, in its get_config order: their
# defaults are accepted (so that get_config() round-trips), anything else is refused.
KERAS_DEFAULTS = {
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}

MISSING = ("Adadelta", "Adafactor", "Adagrad", "Ftrl", "Lamb", "Lion", "LossScaleOptimizer", "Muon", "Nadam")


def _alias(attribute: str, doc: str) -> property:
    """A Keras name (``beta_1``) for the rule's attribute (``beta1``), read and written through."""
    return property(lambda self: getattr(self, attribute), lambda self, v: setattr(self, attribute, v), doc=doc)


def _snake_case(name: str) -> str:
    """Keras's default optimizer name: ``"RMSprop"`` -> ``"rm_sprop"``, ``"AdamW"`` -> ``"adam_w"``."""
    out = name[0].lower()
    for before, c, after in zip(name, name[1:], name[2:] + " "):
        upper_run_ends = before.isupper() and c.isupper() and after.islower()
        out += "_" + c.lower() if c.isupper() and (before.islower() or upper_run_ends) else c.lower()
    return out


class Optimizer(optim.Optimizer):
    """What the Keras-style optimizers share: no model until :meth:`bind`, ``learning_rate``,
    ``iterations``, ``get_config()``/``from_config()`` with Keras's keys and a constructor-like repr."""

    arguments: tuple[str, ...] = ()  # the constructor's own arguments, in order (repr, get_config)
    weight_decay_default: float | None = None

    def _keras_init(self, name: str | None, learning_rate, options: dict) -> float:
        """Check what optim.Optimizer does not know (Keras's name, its unsupported arguments); the
        learning rate as a float, refused under Keras's name rather than ``lr``."""
        cls = type(self).__name__
        lr = optim.positive_number(learning_rate, f"{cls}: learning_rate")
        unknown = sorted(set(options) - set(KERAS_DEFAULTS))
        if unknown:
            raise ValueError(f"{cls}: argument(s) not recognized: {unknown}")
        changed = [f"{k}={v!r}" for k, v in options.items() if v != KERAS_DEFAULTS[k]]
        if changed:
            raise ValueError(f"{cls}: minicnn does not support {', '.join(changed)} (only Keras's default)")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{cls}: name must be a string, got {name!r}")
        self.name = _snake_case(cls) if name is None else name
        return lr

    # -- the model, given later -------------------------------------------------------
    @property
    def model(self):
        """The model :meth:`bind` gave; RuntimeError before it."""
        if self._model is None:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to a model yet: call model.compile(optimizer=...) first"
            )
        return self._model

    @model.setter
    def model(self, model) -> None:  # optim.Optimizer.__init__ sets None; bind() sets the model
        self._model = model

    @property
    def bound(self) -> bool:
        """Whether :meth:`bind` has given the optimizer a model."""
        return self._model is not None

    def bind(self, model):
        """Give the optimizer its model (``model.compile(optimizer=...)`` calls this): a no-op for the
        model it already has, a ValueError for another one. Returns the optimizer."""
        if not hasattr(model, "named_parameters"):
            raise TypeError(f"{type(self).__name__}.bind needs a minicnn model, got {type(model).__name__}")
        if self._model is not None and self._model is not model:
            raise ValueError(
                f"{type(self).__name__} is already bound to another model: make a new optimizer for this one"
            )
        self._model = model
        return self

    def _state_class(self) -> str:
        return f"keras.{type(self).__name__}"

    # -- Keras's view of the settings --------------------------------------------------
    def get_config(self) -> dict:
        """The settings under Keras's keys (``type(opt).from_config(config)`` makes a twin)."""
        decay = self.weight_decay if self.weight_decay or self.weight_decay_default is not None else None
        config = {"name": self.name, "learning_rate": self.lr, "weight_decay": decay, **KERAS_DEFAULTS}
        config.update({k: getattr(self, k) for k in self.arguments if k != "weight_decay"})
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        config = self.get_config()
        shown = ", ".join(f"{k}={config[k]!r}" for k in ("learning_rate", *self.arguments))
        return f"{type(self).__name__}({shown})"


def _decay(weight_decay) -> float:
    """Keras's ``None`` (no decay) as the rule's 0.0."""
    return 0.0 if weight_decay is None else weight_decay


class SGD(Optimizer, optim.SGD):
    """``keras.optimizers.SGD``: :class:`minicnn.optim.SGD` in Keras's form.

    The velocity holds the learning rate, and weight decay is decoupled::

        v = momentum * v - learning_rate * g
        p += momentum * v - learning_rate * g   (nesterov)   or   p += v
    """

    keras_form = True
    arguments = ("momentum", "nesterov", "weight_decay")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, name=None, **options):
        lr = self._keras_init(name, learning_rate, options)
        # Keras takes nesterov without momentum (plain SGD then); the rule refuses it, so it is set after.
        optim.SGD.__init__(self, None, lr, momentum, False, _decay(weight_decay))
        self.nesterov = bool(nesterov)


class Adam(Optimizer, optim.Adam):
    """``keras.optimizers.Adam``: :class:`minicnn.optim.Adam` with ``epsilon`` as Keras's epsilon hat.

    With ``t`` the step number (from 1)::

        m = beta_1 * m + (1 - beta_1) * g;   v = beta_2 * v + (1 - beta_2) * g**2
        p -= learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)
    """

    eps_hat = True
    amsgrad = False  # Keras's AMSGrad variant is not here: only False is accepted
    arguments = ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay")
    beta_1 = _alias("beta1", "Decay of the first moment (Keras's name for ``beta1``).")
    beta_2 = _alias("beta2", "Decay of the second moment (Keras's name for ``beta2``).")
    epsilon = _alias("eps", "Added to sqrt(v) (Keras's name for ``eps``).")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-07,
        amsgrad=False,
        weight_decay=None,
        name=None,
        **options,
    ):
        lr = self._keras_init(name, learning_rate, options)
        if amsgrad:
            raise ValueError(f"{type(self).__name__}: minicnn does not support amsgrad=True")
        optim.Adam.__init__(self, None, lr, beta_1, beta_2, epsilon, _decay(weight_decay))


class AdamW(Adam):
    """``keras.optimizers.AdamW``: :class:`Adam` with decoupled weight decay, 0.004 by default
    (``p -= learning_rate * weight_decay * p`` before each Adam step)."""

    weight_decay_default = 0.004
    arguments = ("weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-07,
        amsgrad=False,
        name=None,
        **options,
    ):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number >= 0, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, name, **options)


class Adamax(Optimizer, optim.Adamax):
    """``keras.optimizers.Adamax``: :class:`minicnn.optim.Adamax`.

    With ``t`` the step number (from 1)::

        m = beta_1 * m + (1 - beta_1) * g;   u = max(beta_2 * u, |g|)
        p -= learning_rate / (1 - beta_1**t) * m / (u + epsilon)
    """

    arguments = ("beta_1", "beta_2", "epsilon", "weight_decay")
    beta_1 = _alias("beta1", "Decay of the first moment (Keras's name for ``beta1``).")
    beta_2 = _alias("beta2", "Decay of the largest ``|g|`` (Keras's name for ``beta2``).")
    epsilon = _alias("eps", "Added to u (Keras's name for ``eps``).")

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None, name=None, **options
    ):
        lr = self._keras_init(name, learning_rate, options)
        optim.Adamax.__init__(self, None, lr, beta_1, beta_2, epsilon, _decay(weight_decay))


class RMSprop(Optimizer, optim.RMSprop):
    """``keras.optimizers.RMSprop``: :class:`minicnn.optim.RMSprop`.

    ``epsilon`` goes under the square root, and momentum accumulates the scaled steps::

        s = rho * s + (1 - rho) * g**2;   d = sqrt(s + epsilon)   (centered: sqrt(s - a**2 + epsilon))
        v = momentum * v + learning_rate * g / d;   p -= v   (p -= learning_rate * g / d without momentum)
    """

    arguments = ("rho", "momentum", "epsilon", "centered", "weight_decay")
    epsilon = _alias("eps", "Added to the mean square under the root (Keras's name for ``eps``).")

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-07,
        centered=False,
        weight_decay=None,
        name=None,
        **options,
    ):
        lr = self._keras_init(name, learning_rate, options)
        optim.RMSprop.__init__(self, None, lr, rho, momentum, epsilon, centered, _decay(weight_decay))


CLASSES = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, Adamax, RMSprop)}


def _not_here(name: str) -> str:
    return (
        f"keras.optimizers.{name} is not in minicnn (yet); it has {', '.join(cls.__name__ for cls in CLASSES.values())}"
    )


def get(identifier):
    """Keras's ``keras.optimizers.get``: a name (``"adam"``, any case) gives a default instance, an
    optimizer passes through, ``{"class_name", "config"}`` is built with ``from_config``, ``None``
    stays ``None``; anything else is a ValueError listing the known names."""
    if identifier is None or isinstance(identifier, optim.Optimizer):
        return identifier
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        cls = CLASSES.get(identifier["class_name"].lower())
        if cls is not None:
            return cls.from_config(dict(identifier.get("config") or {}))
        identifier = identifier["class_name"]
    if isinstance(identifier, str):
        if identifier.lower() in CLASSES:
            return CLASSES[identifier.lower()]()
        missing = {m.lower(): m for m in MISSING}.get(identifier.lower())
        if missing is not None:
            raise ValueError(_not_here(missing))
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; known names: {sorted(CLASSES)}")


def __getattr__(name: str):
    """``minicnn.optimizers.Nadam`` and Keras's other missing optimizers: an error that names them."""
    if name in MISSING:
        raise AttributeError(_not_here(name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
