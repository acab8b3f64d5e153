"""Residual: a block of layers whose input is added to its output (He et al. 2016), one layer of a Sequential."""

from __future__ import annotations

import numpy as np

from .base import LAYER_CLASSES, Array, Layer, registered
from .conv import Conv2D
from .dense import Dense


@registered
class Residual(Layer):
    r"""``y = F(x) + P(x)``: ``F`` the block's layers one after the other, ``P`` the shortcut.

    ``P`` is the identity when ``F`` keeps the shape of ``x``; otherwise a projection: the one
    given, or, made at build, a 1x1 :class:`Conv2D` (stride ``ceil(H / Ho)``, no padding) for images
    or a :class:`Dense` for vectors, to ``F``'s output shape. The ReLU that ResNet applies after
    the sum is the next layer of the model: ``Sequential([..., Residual([...]), ReLU(), ...])``.

    Backward: the sum sends ``dy`` unchanged down both paths, and ``x`` feeds both, so
    ``dx = dF/dx^T dy + dP/dx^T dy`` (``dy`` itself for the identity): the shortcut carries the
    gradient past ``F`` untouched, which is why deep stacks of these blocks train.

    Parameters: the block's layers keep their own ``params``/``grads``/``state``; this layer's
    dicts hold the same arrays under ``"<j>_<Class>/<name>"`` (``"projection_Conv2D/W"`` for the
    shortcut), so the model's :meth:`~minicnn.Sequential.named_parameters`, optimizers and
    checkpoints (``layers/03_Residual/0_Conv2D/W``) see them as any layer's.

    Shapes: ``x, dx (N, *input_shape)``; ``y, dy (N, *output_shape)``, ``F``'s output shape.

    Args:
        layers: the block ``F``, a list of layers (or of ``{"class", "config"}`` dicts, as a
            checkpoint stores them).
        projection: the shortcut ``P`` (a layer or such a dict), or None (identity, or made at build).
    """

    def __init__(self, layers, projection=None, name=None):
        super().__init__(name)
        self.layers = [_layer(spec) for spec in layers]
        if not self.layers:
            raise ValueError("Residual: needs at least one layer in its block")
        self.projection = None if projection is None else _layer(projection)

    def sublayers(self) -> list:
        """The block's layers, then the projection if any."""
        return self.layers + ([self.projection] if self.projection is not None else [])

    @property
    def mixes_examples(self) -> bool:
        """True if a layer inside couples a batch's examples in training (BatchNormalization)."""
        return any(getattr(layer, "mixes_examples", False) for layer in self.sublayers())

    def _build(self, input_shape, rng):
        shape = input_shape
        for j, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, self.dtype, rng=rng)
            except ValueError as exc:
                raise ValueError(f"block layer {j} ({type(layer).__name__}): {exc}") from None
        if self.projection is None and tuple(shape) != tuple(input_shape):
            self.projection = _projection(input_shape, shape)
        if self.projection is not None:
            made = self.projection.build(input_shape, self.dtype, rng=rng)
            if tuple(made) != tuple(shape):
                raise ValueError(f"the projection gives {made}, the block {shape}: they cannot be added")
        self._gather()
        return shape

    def _slots(self):
        """``(key prefix, layer)`` for every inner layer."""
        slots = [(f"{j}_{type(layer).__name__}/", layer) for j, layer in enumerate(self.layers)]
        if self.projection is not None:
            slots.append((f"projection_{type(self.projection).__name__}/", self.projection))
        return slots

    def _gather(self) -> None:
        """This layer's ``params``/``state`` := the inner layers' arrays, in place (replicas share the dicts)."""
        for mine, theirs in ((self.params, "params"), (self.state, "state")):
            mine.clear()
            mine.update({p + k: v for p, layer in self._slots() for k, v in getattr(layer, theirs).items()})
        self.grads = {k: None for k in self.params}

    def astype(self, dtype):
        self.dtype = np.dtype(dtype)
        for layer in self.sublayers():
            layer.astype(dtype)
        self._gather()
        return self

    def forward(self, x: Array, training: bool = False) -> Array:
        self._ensure_built(x)
        f = x
        for layer in self.layers:
            f = layer.forward(f, training=training)
        return f + (x if self.projection is None else self.projection.forward(x, training=training))

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        d = dy
        for j in reversed(range(len(self.layers))):
            d = self.layers[j].backward(d, need_input_grad=j > 0 or need_input_grad)
        shortcut = dy if self.projection is None else self.projection.backward(dy, need_input_grad)
        self.grads = {p + k: g for p, layer in self._slots() for k, g in layer.grads.items()}
        return d + shortcut if need_input_grad else None

    def get_config(self) -> dict:
        spec = lambda layer: {"class": type(layer).__name__, "config": layer.get_config()}  # noqa: E731
        projection = None if self.projection is None else spec(self.projection)
        return {"layers": [spec(layer) for layer in self.layers], "projection": projection, "name": self.name}

    def twin(self) -> Residual:
        """:meth:`Layer.twin`, the inner layers twinned too."""
        t = super().twin()
        assert isinstance(t, Residual)
        t.layers = [layer.twin() for layer in self.layers]
        t.projection = None if self.projection is None else self.projection.twin()
        return t


def _layer(spec) -> Layer:
    """A layer, or one rebuilt from a ``{"class", "config"}`` dict."""
    if isinstance(spec, Layer):
        return spec
    if not isinstance(spec, dict) or spec.get("class") not in LAYER_CLASSES:
        raise ValueError(f"Residual: expected a layer or a {{'class', 'config'}} dict of a known class, got {spec!r}")
    return LAYER_CLASSES[spec["class"]](**spec.get("config", {}))


def _projection(input_shape, output_shape) -> Layer:
    """The shortcut Keras's ResNets use: a strided 1x1 convolution (or a Dense for vectors)."""
    if len(input_shape) == 1 and len(output_shape) == 1:
        return Dense(output_shape[0])
    if len(input_shape) == 3 and len(output_shape) == 3:
        (h, w, _), (ho, wo, f) = input_shape, output_shape
        sh, sw = -(-h // ho), -(-w // wo)  # ceil: 32 -> 16 and 5 -> 3 are both stride 2
        if ((h - 1) // sh + 1, (w - 1) // sw + 1) == (ho, wo):
            return Conv2D(f, 1, strides=(sh, sw), padding="valid")
    raise ValueError(f"no projection maps {tuple(input_shape)} to {tuple(output_shape)}: give one (projection=)")
