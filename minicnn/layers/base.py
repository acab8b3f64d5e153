"""What every layer shares: parameters, gradients, a name, and build-time checks.

A layer is a pair of functions written by hand::

    forward(x, training)         -> y    keeps in ``self.cache`` what backward will need
    backward(dy, need_input_grad) -> dx   uses that cache, fills ``self.grads``
                                          (``dx`` is None when not needed)

``params`` and ``grads`` are dicts from name to array with the same keys, shapes
and dtype, so an optimizer can walk them side by side. ``state`` holds what a layer keeps
but no optimizer trains (BatchNormalization's moving statistics): checkpoints and
``get_weights`` store it after ``params``, the optimizer never sees it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import get_array_module, get_backend

#: A NumPy or CuPy ndarray, whichever the backend holds. The type checker sees ``Any`` (the two
#: libraries share no array type); the reference names it ``Array`` in every signature.
Array = Any

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inference only (as ``torch.no_grad``): layers keep no cache for backward, and take
    cheaper paths where the cache cost extra work (LeakyReLU's slope, MaxPool's argmax).
    ``Sequential.predict`` and ``evaluate`` run under it."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


_shapes_only = False


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build layers without memory: each parameter is a read-only zero view of its shape
    (``np.broadcast_to``, no bytes behind it) and no random number is drawn. For checking what
    a stored configuration implies against a file's arrays before anything is allocated."""
    global _shapes_only
    previous, _shapes_only = _shapes_only, True
    try:
        yield
    finally:
        _shapes_only = previous


def grad_enabled() -> bool:
    """False inside :func:`no_grad`: layers then keep no cache for backward."""
    return _grad_enabled


LAYER_CLASSES: dict[str, type] = {}  # every class a checkpoint may name, by name: filled by @registered


def registered(cls: type) -> type:
    """Record ``cls`` under its name, so that a checkpoint or a Residual's config naming it rebuilds it."""
    LAYER_CLASSES[cls.__name__] = cls
    return cls


class Layer:
    """Base class: subclasses set ``params`` in ``build`` and implement ``forward``/``backward``.

    Every layer also takes Keras's ``input_shape=`` (without the batch axis), as the first layer
    of a model is given it in Keras 2 style code: ``Conv2D(16, 3, input_shape=(32, 32, 3))``.
    It is kept in ``declared_input_shape`` for :class:`~minicnn.Sequential` to build from.
    """

    config_keys: tuple = ()  # constructor arguments that rebuild the layer (saved in checkpoints)
    declared_input_shape: tuple | None = None

    def __init_subclass__(cls, **kwargs):
        # Each layer's own __init__ stays about its maths; `input_shape=` is taken off here, once for all.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, input_shape=None, **kw):
            init(self, *args, **kw)
            if input_shape is not None:
                self.declared_input_shape = tuple(int(d) for d in input_shape)

        cls.__init__ = __init__

    accepts_raw_pixels = False  # True: casts integer pixels (uint8 0..255) itself, so a model may start with it

    def __init__(self, name: str | None = None, input_shape=None):
        self.name = name
        if input_shape is not None:  # (layers with an __init__ of their own get it taken off above)
            self.declared_input_shape = tuple(int(d) for d in input_shape)
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array | None] = {}
        self.state: dict[str, Array] = {}  # non-trainable arrays, updated in place by forward
        self.input_shape: Any = None  # a tuple without the batch axis, once built (None before)
        self.output_shape: Any = None
        self.dtype: np.dtype | None = None
        self.cache: Any = None
        self._scratch: dict[str, Array] = {}

    def twin(self) -> Layer:
        """A copy sharing this layer's parameter arrays (an update is seen by both) with its own
        grads, cache and work arrays: what one thread's shard of a batch runs on."""
        t = copy.copy(self)
        t.grads, t.cache, t._scratch = {k: None for k in self.params}, None, {}
        return t

    def scratch(self, key: str, shape, dtype, like: Array | None = None) -> Array:
        """A work array that this layer reuses from call to call (contents undefined).

        Why: a fresh array of tens of MB costs the kernel a page fault and a zeroing per
        4 KB page, every step — as long as the copy into it. Only for arrays that never
        leave the layer (patch matrices, padded copies, masks): outputs stay fresh.
        """
        shape = tuple(shape)
        buf = self._scratch.get(key)
        xp = get_array_module(like) if like is not None else get_backend().xp
        if buf is None or buf.shape != shape or buf.dtype != dtype or get_array_module(buf) is not xp:
            buf = xp.empty(shape, dtype=dtype)
            self._scratch[key] = buf
        return buf

    # -- building ---------------------------------------------------------------------
    def build(self, input_shape, dtype="float32", rng: np.random.Generator | None = None) -> tuple:
        """Create parameters for inputs of ``input_shape`` (no batch axis); return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"{self.describe()}: dtype must be float32 or float64, got {self.dtype}")
        self.output_shape = tuple(self._build(self.input_shape, rng if rng is not None else np.random.default_rng()))
        return self.output_shape

    def _build(self, input_shape, rng):
        """Subclass hook: create parameters, return the output shape. Default: shape-preserving."""
        return input_shape

    def _ensure_built(self, x):
        """Standalone use: build from the first input seen (the model builds up front)."""
        if self.output_shape is None:
            dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
            self.build(x.shape[1:], dtype=dtype)

    def astype(self, dtype):
        """Convert parameters (and the layer's working dtype) to ``dtype``."""
        self.dtype = np.dtype(dtype)
        for k, v in self.params.items():
            # In place for the dict, so that later lookups see the new arrays.
            self.params[k] = v.astype(self.dtype)
        for k, v in self.state.items():
            self.state[k] = v.astype(self.dtype)
        self.grads = {k: None for k in self.params}
        return self

    def get_config(self) -> dict:
        """Constructor arguments as JSON-able values: ``type(layer)(**layer.get_config())`` rebuilds it."""
        config = {
            k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(self, k)) for k in self.config_keys)
        }
        config["name"] = self.name
        return config

    def count_params(self) -> int:
        """The number of values in this layer's parameters and state (Keras counts both)."""
        return count_values(self.params) + count_values(self.state)

    def describe(self) -> str:
        """The layer for an error message: its class and its name, e.g. ``Conv2D layer 'conv2d_1'``."""
        return f"{type(self).__name__} layer{' ' + repr(self.name) if self.name else ''}"

    def pop_cache(self):
        """Hand the forward's cache to backward, once."""
        cache, self.cache = self.cache, None
        if cache is None:
            raise no_forward_error(self)
        return cache

    def forward(self, x: Array, training: bool = False) -> Array:
        """``x (N, *input_shape)`` -> ``y (N, *output_shape)``; with ``training`` (dropout on) and
        outside :func:`no_grad` it keeps in ``self.cache`` what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        """``dy`` (the output's gradient) -> ``dx``; fills ``grads``.

        ``need_input_grad=False`` lets a layer skip ``dx`` and return None: a model's first
        layer is called so, since training never needs the gradient with respect to the
        images, and for a convolution that saves a whole backward convolution.
        """
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def count_values(arrays: dict) -> int:
    """The number of values in a dict of arrays."""
    return int(sum(int(np.prod(v.shape)) for v in arrays.values()))


def no_forward_error(layer: Layer) -> RuntimeError:
    """The error of a backward with nothing kept: no forward, or one under :func:`no_grad`."""
    return RuntimeError(
        f"{layer.describe()}: backward() needs a forward() first "
        f"(and one outside minicnn.no_grad(), which keeps no cache)"
    )


def snake_case(class_name: str) -> str:
    """``LeakyReLU`` -> ``leaky_re_lu``, ``Conv2D`` -> ``conv2d`` (the names Keras gives)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def as_pair(value, what: str, layer: str) -> tuple[int, int]:
    """An int or a pair of positive ints -> a pair; a clear error for anything else."""
    pair = (
        (value, value)
        if isinstance(value, (int, np.integer))
        else tuple(value)
        if isinstance(value, (tuple, list))
        else None
    )
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
    ):
        raise ValueError(f"{layer}: {what} must be a positive int or a pair of positive ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{layer}: {what} must be positive, got {value!r}")
    return int(pair[0]), int(pair[1])


def positive_int(value, what: str, layer: str) -> int:
    """``value`` as an int if it is one >= 1; else a ValueError naming ``layer`` and ``what``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value!r}")
    return int(value)


def expect_rank(input_shape, rank: int, layer: str, layout: str):
    """Raise a ValueError naming ``layer`` and the ``layout`` it expects unless ``input_shape`` has ``rank`` axes."""
    if len(input_shape) != rank:
        raise ValueError(f"{layer} expects inputs of shape {layout} (batch axis excluded), got {tuple(input_shape)}")


def glorot_uniform(shape, fan_in: int, fan_out: int, rng, dtype):
    """Keras's default kernel initialiser: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).

    Drawn on the host with NumPy, so a seed gives the same weights on every backend.
    """
    if _shapes_only:
        return np.broadcast_to(np.zeros((), dtype), shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w = rng.uniform(-limit, limit, size=shape).astype(dtype)
    return get_backend().asarray(w)


def zeros(shape, dtype) -> Array:
    """A zero array on the current backend."""
    return filled(shape, 0, dtype)


def filled(shape, value, dtype) -> Array:
    """An array of ``value`` on the current backend (a read-only view under :func:`shapes_only`)."""
    if _shapes_only:
        return np.broadcast_to(np.full((), value, dtype), shape)
    return get_backend().xp.full(shape, value, dtype=dtype)


class Input:
    """Keras's ``Input(shape)``: the shape of one example (no batch axis), given first to a
    Sequential (``Sequential([Input((32, 32, 3)), Conv2D(...), ...])`` or ``model.add(Input(...))``).
    Not a layer: it holds no weights and computes nothing."""

    def __init__(self, shape, batch_size=None, dtype=None, name=None):
        shape = tuple(shape)
        if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise ValueError(f"Input: shape must be positive sizes, no batch axis, e.g. (32, 32, 3); got {shape}")
        self.shape, self.name = tuple(int(d) for d in shape), name
