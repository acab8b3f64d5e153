"""Sequential: a stack of layers, trained by backpropagation.

forward:   x -> layer 0 -> layer 1 -> ... -> logits
backward:  dlogits -> ... -> layer 1 -> layer 0   (each layer fills its grads)
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import training as _training  # (forward's `training` flag would hide the module's name)
from .backend import get_backend
from .input_checks import check_images, warn_if_raw_pixels
from .layers import LAYER_CLASSES, Dropout, Layer
from .layers.base import Input, snake_case
from .seeds import derive_seed, next_model_seed
from .training import TrainingDiverged  # noqa: F401  (re-exported: minicnn.TrainingDiverged)


class Sequential:
    """Layers applied one after the other, built for ``input_shape`` (no batch axis).

    Args:
        layers: list of :class:`~minicnn.layers.Layer` (or none, then :meth:`add` them, Keras style).
        input_shape: e.g. ``(32, 32, 3)`` for CIFAR-10 images (NHWC without N). Keras's ways work
            too: ``input_shape=`` on the first layer, or ``minicnn.Input(shape)`` first. Without
            any, the model is built by the first data it sees.
        dtype: ``"float32"`` (default) or ``"float64"`` (gradient checks).
        seed: makes initial weights and dropout masks reproducible (default: the seed of
            :func:`minicnn.utils.set_random_seed`, if one was set).
    """

    def __init__(self, layers=None, *, input_shape=None, dtype="float32", seed=None, name="sequential"):
        self.layers: list = []
        self.name = name
        self.dtype = np.dtype(dtype)
        self.seed = next_model_seed() if seed is None else seed
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.output_shape = None
        self.optimizer = self.loss_spec = None  # set by compile (Keras's model.optimizer, and the loss)
        self.saved_extra: dict = {}  # what a checkpoint kept beside the weights (minicnn.models.load_model)
        self.stop_training = False
        self._rng = np.random.default_rng(self.seed)
        self._names: dict[str, int] = {}
        for layer in list(layers or []):
            self.add(layer, _build=False)
        if not self.layers and layers is not None:
            raise ValueError("Sequential: needs at least one layer")
        if self.input_shape is not None and self.layers:
            self.build(self.input_shape)

    def add(self, layer, _build=True):
        """Append ``layer`` (Keras's ``model.add``): built at once if the model's input shape is known.
        ``minicnn.Input(shape)`` as the first thing added gives that shape."""
        if isinstance(layer, Input):
            if self.layers:
                raise ValueError("Sequential.add: Input(shape) can only come first")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: layer {len(self.layers)} must be a minicnn layer, got {type(layer).__name__}")
        if not self.layers and self.input_shape is None and layer.declared_input_shape is not None:
            self.input_shape = layer.declared_input_shape
        if layer.name is None:  # Keras's naming: conv2d, conv2d_1, ...
            base = snake_case(type(layer).__name__)
            layer.name = base if base not in self._names else f"{base}_{self._names[base]}"
            self._names[base] = self._names.get(base, 0) + 1
        self.layers.append(layer)
        if _build and self.output_shape is not None:
            self._build_layer(len(self.layers) - 1, self.output_shape)
        elif _build and self.input_shape is not None:
            self.build(self.input_shape)

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape`` (no batch axis)."""
        shape = tuple(int(d) for d in (input_shape if input_shape is not None else self.input_shape or ()))
        if not shape:
            raise ValueError(
                f"{self.name}: the input shape is unknown: give input_shape=(H, W, C) to Sequential or to the "
                "first layer, start with minicnn.Input(shape), or call fit/predict, which build from the data"
            )
        if not self.layers:
            raise ValueError("Sequential: needs at least one layer")
        self.input_shape = shape
        for i in range(len(self.layers)):
            shape = self._build_layer(i, shape)

    def _build_layer(self, i: int, shape) -> tuple:
        layer = self.layers[i]
        try:
            shape = layer.build(shape, self.dtype, rng=self._rng)
        except ValueError as exc:
            raise ValueError(
                f"Sequential: cannot build layer {i} ({layer.name}, {type(layer).__name__}) "
                f"on input {(None,) + tuple(shape)}: {exc}"
            ) from None
        if isinstance(layer, Dropout) and self.seed is not None:
            layer.reseed(derive_seed(self.seed, i))
        self.output_shape = shape
        return shape

    built = property(lambda self: self.output_shape is not None, doc="Are the layers' weights made?")

    def _ensure_built(self, x, where: str):
        if not self.built:
            if not hasattr(x, "shape") or len(x.shape) < 2:
                raise ValueError(f"{where}: x must be an array of examples (N, ...), got {type(x).__name__}")
            self.build(tuple(x.shape[1:]))

    # -- a final softmax (Keras's classifiers end in one) ------------------------------------
    @property
    def outputs_probabilities(self) -> bool:
        """True when the last layer ends in a softmax (``Dense(10, activation="softmax")`` or
        ``Activation("softmax")``): the model's output is then probabilities, not logits."""
        return bool(self.layers) and getattr(self.layers[-1], "activation", None) == "softmax"

    @contextlib.contextmanager
    def emitting_logits(self):
        """Inside, a final softmax is skipped (the layer's ``emit_logits``): ``fit``, ``evaluate`` and
        ``predict`` work on logits, so the softmax and the cross-entropy fuse into the exact gradient
        ``p - y``, as Keras recognises the pair; outside, the model outputs probabilities."""
        last = self.layers[-1] if self.outputs_probabilities else None
        if last is None:
            yield
            return
        previous, last.emit_logits = getattr(last, "emit_logits", False), True
        try:
            yield
        finally:
            last.emit_logits = previous

    def __call__(self, x, training=False):
        """``model(x)``: the forward pass on the current backend (probabilities if the model ends in a softmax)."""
        backend = get_backend()
        self._ensure_built(x, "model(x)")
        return self.forward(backend.asarray(x, dtype=self.dtype), training=training)

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

    def backward(self, dlogits, need_input_grad=False, start=0, stop=None):
        """Backpropagate ``dlogits``; every layer fills ``grads``. Returns ``dx`` if ``need_input_grad``
        (the name :meth:`Layer.backward` uses; training never needs the gradient with respect to the
        images, so by default the first layer skips it and None comes back). ``start``/``stop``:
        through ``layers[start:stop]`` only, ``dlogits`` being the gradient of ``layers[stop - 1]``'s
        output and ``dx`` that of ``layers[start]``'s input."""
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

    # -- Keras's model API ------------------------------------------------------------------
    def get_layer(self, name=None, index=None):
        """The layer called ``name`` (or at position ``index``); a ValueError listing the names otherwise."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name} has no layer named {name!r}; its layers: {[l.name for l in self.layers]}")

    def get_weights(self) -> list:
        """Every parameter as a NumPy array, layer by layer (Keras's order: kernel, then bias)."""
        return _files().get_weights(self)

    def set_weights(self, weights) -> None:
        """Load :meth:`get_weights`'s list back; every shape is checked before any weight changes."""
        _files().set_weights(self, weights)

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """Print the Keras 2 summary table (``print_fn(line)`` for each line instead of ``print``)."""
        for line in self.summary_lines():
            (print_fn or print)(line)

    def summary_lines(self) -> list[str]:
        """The summary table's lines (what :meth:`summary` prints)."""
        if not self.built:
            raise ValueError(f"{self.name} is not built yet: give it an input shape, or fit or call it first")
        return _files().summary_lines(self)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **unsupported):
        """Keras's ``compile``: bind an optimizer (an object, or ``"adam"``, ``"sgd"``, ``"rmsprop"``,
        ``"adamax"``, ``"adamw"``), a loss (``"categorical_crossentropy"``,
        ``"sparse_categorical_crossentropy"`` or a :mod:`minicnn.losses` object) and
        ``metrics=["accuracy"]``; then ``fit(x, y, ...)`` without an optimizer (:mod:`minicnn.keras_style`)."""
        from .keras_style import compile_model

        compile_model(self, optimizer, loss, metrics, unsupported)

    # -- training and inference: the loop lives in minicnn.training ------------------
    def fit(self, x=None, y=None, *, optimizer=None, epochs=1, batch_size=None, **options):
        """Train with mini-batch gradient descent. With ``optimizer=`` minicnn's form (see
        :func:`minicnn.training.fit` for every option); after :meth:`compile`, Keras's
        (``validation_split``, one-hot labels, Keras callbacks; :func:`minicnn.keras_style.fit`).
        Returns a :class:`~minicnn.run.callbacks.History` (a dict of per-epoch lists; ``.history`` too)."""
        if optimizer is None:
            from .keras_style import fit as keras_fit

            return keras_fit(self, x, y, epochs=epochs, batch_size=batch_size, **options)
        self._ensure_built(x, "fit")
        history = _training.fit(
            self, x, y, optimizer=optimizer, epochs=epochs, batch_size=_or(batch_size, 32), **options
        )
        from .run.callbacks import History  # Keras's return value

        return History(history)

    def evaluate(self, x, y=None, batch_size=None, **options):
        """``{"loss": float, "accuracy": float}`` over ``(x, y)`` (see :func:`minicnn.training.evaluate`);
        after :meth:`compile`, Keras's ``[loss, accuracy]`` (``return_dict=True``: the dict)."""
        if self.loss_spec is not None:
            from .keras_style import evaluate as keras_evaluate

            return keras_evaluate(self, x, y, batch_size=batch_size, **options)
        return _training.evaluate(self, x, y, batch_size=_or(batch_size, 256), **options)

    def predict(self, x, batch_size=None, threads=None, tta=None, verbose=None) -> np.ndarray:
        """Class probabilities ``(N, classes)`` as NumPy (the softmax of the logits, or the model's own
        final softmax); ``tta="flip"`` averages the mirrored view's (see :func:`minicnn.training.predict`)."""
        self._ensure_built(x, "predict")
        warn_if_raw_pixels(self, x, "predict")
        return _training.predict(self, x, batch_size=_or(batch_size, 256), threads=threads, tta=tta)

    # -- files, told by their suffix as Keras does (minicnn.model_files, loaded on first use) -----------------------
    def export(self, filepath, format="onnx", opset=17) -> None:
        """Keras's ``model.export(filepath, format="onnx")``: an ONNX graph of the model."""
        _files().export(self, filepath, format, opset)

    def save(self, path, optimizer=None, extra=None) -> None:
        """Write the model to ``path`` by its suffix: ``.npz`` minicnn's checkpoint (weights, the
        optimizer's state, ``extra``), atomically; ``.keras`` Keras 3's file (Keras opens it); ``.onnx``
        an ONNX graph (:func:`minicnn.interop.save_onnx`). Other suffixes: refused, the known ones listed."""
        _files().save(self, path, optimizer=optimizer, extra=extra)

    def save_weights(self, path) -> None:
        """Write the weights alone by the suffix: ``.weights.h5`` Keras's weights file (Keras's
        ``load_weights`` reads it), ``.npz`` minicnn's checkpoint without optimizer."""
        _files().save_weights(self, path)

    def load_weights(self, path, optimizer=None) -> dict:
        """Load weights (and optimizer state) saved by :meth:`save` or :meth:`save_weights`; returns
        ``extra`` (``{}`` for Keras files). ``.weights.h5``, ``.keras`` and ``.h5`` files, Keras's
        own included, are read too.

        Everything is checked first — layer positions, classes, parameter shapes and dtypes,
        optimizer state — and the model changes only if all of it fits. Raises
        :class:`~minicnn.run.checkpoint.CheckpointError` (or ``KerasFormatError``) naming the file and
        the first mismatch.
        """
        return _files().load_weights(self, path, optimizer=optimizer)


def _or(value, default):
    return default if value is None else value  # (0 stays 0: fit refuses it by name)


def load_model(path) -> tuple[Sequential, dict]:
    """Rebuild a Sequential from a checkpoint's stored config and load its weights: ``(model, extra)``
    (:func:`minicnn.interop.model_files.load_checkpoint`: the file is checked before anything is built)."""
    return _files().load_checkpoint(path, Sequential)


def _files():
    from .interop import model_files  # file formats are a tool, loaded on the first save or load

    return model_files
