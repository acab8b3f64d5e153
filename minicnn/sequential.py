"""Sequential: a stack of layers, trained by backpropagation.

forward:   x -> layer 0 -> layer 1 -> ... -> logits
backward:  dlogits -> ... -> layer 1 -> layer 0   (each layer fills its grads)
"""

from __future__ import annotations

import warnings

import numpy as np

from . import checkpoint
from . import training as _training  # (forward's `training` flag would hide the module's name)
from .checkpoint import CheckpointError
from .input_checks import check_images
from .layers import LAYER_CLASSES, Dropout, Layer
from .layers.base import shapes_only, snake_case
from .seeds import derive_seed
from .training import TrainingDiverged  # noqa: F401  (re-exported: minicnn.TrainingDiverged)


class Sequential:
    """Layers applied one after the other, built for ``input_shape`` (no batch axis).

    Args:
        layers: list of :class:`~minicnn.layers.Layer`.
        input_shape: e.g. ``(32, 32, 3)`` for CIFAR-10 images (NHWC without N).
        dtype: ``"float32"`` (default) or ``"float64"`` (gradient checks).
        seed: makes initial weights and dropout masks reproducible.
    """

    def __init__(self, layers, *, input_shape, dtype="float32", seed=None, name="sequential"):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} must be a minicnn layer, got {type(layer).__name__}")
        if len(self.layers) == 0:
            raise ValueError("Sequential: needs at least one layer")
        self.name = name
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        self.seed = seed
        rng = np.random.default_rng(seed)
        seen: dict[str, int] = {}
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            if layer.name is None:  # Keras's naming: conv2d, conv2d_1, ...
                base = snake_case(type(layer).__name__)
                layer.name = base if base not in seen else f"{base}_{seen[base]}"
                seen[base] = seen.get(base, 0) + 1
            try:
                shape = layer.build(shape, self.dtype, rng=rng)
            except ValueError as exc:
                raise ValueError(
                    f"Sequential: cannot build layer {i} ({layer.name}, {type(layer).__name__}) "
                    f"on input {(None,) + tuple(shape)}: {exc}"
                ) from None
            if isinstance(layer, Dropout) and seed is not None:
                layer.reseed(derive_seed(seed, i))
        self.output_shape = shape

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x, training=False, start=0, stop=None):
        """``x (N, *input_shape)`` -> logits ``(N, *output_shape)``, on the current backend.

        ``start``/``stop`` run only ``layers[start:stop]`` (``x`` is then what ``layers[start]``
        takes): a part of the model, e.g. one layer (:meth:`activations`) or the convolutional body."""
        if start == 0 and x.shape[1:] != self.input_shape:
            check_images(x, self.input_shape, "Sequential.forward")
        for layer in self.layers[start:stop]:
            x = layer.forward(x, training=training)
        return x

    def activations(self, x, upto=None, training=False) -> list:
        """Every layer's output for ``x``: ``[layers[0](x), layers[1](layers[0](x)), ...]``, on the
        current backend, up to and including ``layers[upto]`` (default: all). The layers keep
        their backward caches (outside :func:`minicnn.no_grad`), so a backward through
        ``layers[:upto + 1]`` may follow, as gradient ascent on the input does."""
        stop = len(self.layers) if upto is None else upto + 1
        outputs = []
        for i in range(stop):
            x = self.forward(x, training=training, start=i, stop=i + 1)
            outputs.append(x)
        return outputs

    def backward(self, dlogits, need_input_grad=False, start=0, stop=None, *, input_grad=None):
        """Backpropagate ``dlogits``; every layer fills ``grads``. Returns ``dx`` if ``need_input_grad``
        (the name :meth:`Layer.backward` uses; training never needs the gradient with respect to the
        images, so by default the first layer skips it and None comes back). ``start``/``stop``:
        through ``layers[start:stop]`` only, ``dlogits`` being the gradient of ``layers[stop - 1]``'s
        output and ``dx`` that of ``layers[start]``'s input. ``input_grad=`` is the old name of
        ``need_input_grad`` (still accepted, with a :class:`DeprecationWarning`)."""
        if input_grad is not None:
            warnings.warn(
                "Sequential.backward(input_grad=) is now need_input_grad=, as in Layer.backward",
                DeprecationWarning,
                stacklevel=2,
            )
            need_input_grad = input_grad
        dy = dlogits
        stop = len(self.layers) if stop is None else stop
        for i in reversed(range(start, stop)):
            dy = self.layers[i].backward(dy, need_input_grad=i > start or need_input_grad)
        return dy

    # -- parameters -------------------------------------------------------------------
    def named_parameters(self):
        """``[(key, layer, name)]`` with keys like ``"00_Conv2D/W"`` (position and class)."""
        return [
            (f"{i:02d}_{type(layer).__name__}/{name}", layer, name)
            for i, layer in enumerate(self.layers)
            for name in layer.params
        ]

    def count_params(self) -> int:
        """The number of parameters of every layer together (1,084,234 for the documented model)."""
        return sum(layer.count_params() for layer in self.layers)

    def astype(self, dtype):
        """Convert every parameter to ``dtype`` (``"float32"`` or ``"float64"``); returns self."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        return self

    def get_config(self) -> dict:
        """The architecture as JSON-able values (input shape, dtype, every layer's class and config)."""
        return {
            "input_shape": list(self.input_shape),
            "dtype": self.dtype.name,
            "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        """A new, built model from :meth:`get_config`'s output (fresh weights)."""
        layers = []
        for spec in config["layers"]:
            if spec["class"] not in LAYER_CLASSES:
                raise ValueError(f"unknown layer class {spec['class']!r}; known: {sorted(LAYER_CLASSES)}")
            layers.append(LAYER_CLASSES[spec["class"]](**spec["config"]))
        return cls(layers, input_shape=config["input_shape"], dtype=config["dtype"])

    # -- the Keras 2 summary ----------------------------------------------------------
    def summary(self) -> str:
        """The Keras 2 summary table as a string (``print(model.summary())``)."""
        width, cols = 65, (29, 55, 65)

        def row(fields):  # each field starts at the previous column's end, cut to fit
            line = ""
            for field, end in zip(fields, cols):
                line = (line + str(field))[:end].ljust(end)
            return line.rstrip()

        lines = [f'Model: "{self.name}"', "_" * width, row(["Layer (type)", "Output Shape", "Param #"]), "=" * width]
        for i, layer in enumerate(self.layers):
            shape = (
                "(None, " + ", ".join(map(str, layer.output_shape)) + ")"
                if len(layer.output_shape) > 1
                else f"(None, {layer.output_shape[0]})"
            )
            lines.append(row([f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()]))
            lines.append("=" * width if i == len(self.layers) - 1 else "_" * width)
        total = self.count_params()
        lines += [f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", "_" * width]
        return "\n".join(lines)

    # -- training and inference: the loop lives in minicnn.training ------------------
    def fit(self, x, y, *, optimizer, epochs, batch_size=32, **options):
        """Train with mini-batch gradient descent; see :func:`minicnn.training.fit` for every option."""
        return _training.fit(self, x, y, optimizer=optimizer, epochs=epochs, batch_size=batch_size, **options)

    def evaluate(self, x, y, batch_size=256, **options) -> dict:
        """``{"loss": float, "accuracy": float}`` over ``(x, y)``; see :func:`minicnn.training.evaluate`."""
        return _training.evaluate(self, x, y, batch_size=batch_size, **options)

    def predict(self, x, batch_size=256, threads=None, tta=None) -> np.ndarray:
        """Class probabilities (softmax of the logits) ``(N, classes)`` as NumPy; ``tta="flip"``
        averages the mirrored view's (see :func:`minicnn.training.predict`)."""
        return _training.predict(self, x, batch_size=batch_size, threads=threads, tta=tta)

    # -- checkpoints (the format and the checks: minicnn.checkpoint) ------------------------
    def save(self, path, optimizer=None, extra=None) -> None:
        """Write weights (and optimizer state, and ``extra``) to one ``.npz``, atomically."""
        checkpoint.save(self, path, optimizer=optimizer, extra=extra)

    def load_weights(self, path, optimizer=None) -> dict:
        """Load weights (and optimizer state) saved by :meth:`save`; returns ``extra``.

        Everything is checked first — layer positions, classes, parameter shapes and dtypes,
        optimizer state — and the model changes only if all of it fits. Raises
        :class:`~minicnn.checkpoint.CheckpointError` naming the file and the first mismatch.
        """
        return checkpoint.load_weights(self, path, optimizer=optimizer)


def load_model(path) -> tuple[Sequential, dict]:
    """Rebuild a Sequential from a checkpoint's stored config and load its weights (one read of
    the file). Returns ``(model, extra)``.

    The config is first built as a plan without memory (:func:`~minicnn.layers.base.shapes_only`)
    and its parameter shapes compared with the stored arrays: a config that asks for more than
    the file holds is refused before anything is allocated."""
    meta, arrays = checkpoint.read_checkpoint(path)
    try:
        with shapes_only():
            plan = Sequential.from_config(meta["model"])
    except (KeyError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its stored config ({exc})") from None
    checkpoint.check_parameters(plan, arrays, path)
    model = Sequential.from_config(meta["model"])
    return model, checkpoint.load_weights(model, path, contents=(meta, arrays))
