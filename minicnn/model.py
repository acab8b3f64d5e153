"""Sequential: a stack of layers, trained by backpropagation.

    forward:   x -> layer 0 -> layer 1 -> ... -> logits
    backward:  dlogits -> ... -> layer 1 -> layer 0   (each layer fills its grads)
"""
from __future__ import annotations

import json
import time

import numpy as np

from . import __version__
from .backend import get_backend
from .checkpoint import FORMAT, CheckpointError, read_checkpoint, split_extra, write_atomic
from .datasets.preprocessing import minibatches
from .layers import LAYER_CLASSES, Dropout, Layer, no_grad
from .layers.base import snake_case
from .losses import SoftmaxCrossEntropy, softmax
from .validation import check_images, check_labels


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


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
            if layer.name is None:   # Keras's naming: conv2d, conv2d_1, ...
                base = snake_case(type(layer).__name__)
                layer.name = base if base not in seen else f"{base}_{seen[base]}"
                seen[base] = seen.get(base, 0) + 1
            try:
                shape = layer.build(shape, self.dtype, rng=rng)
            except ValueError as exc:
                raise ValueError(f"Sequential: cannot build layer {i} ({layer.name}, {type(layer).__name__}) "
                                 f"on input {(None,) + tuple(shape)}: {exc}") from None
            if isinstance(layer, Dropout) and seed is not None:
                layer.reseed(_derive_seed(seed, i))
        self.output_shape = shape

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x, training=False):
        """``x (N, *input_shape)`` -> logits ``(N, *output_shape)``, on the current backend."""
        if x.shape[1:] != self.input_shape:
            check_images(x, self.input_shape, "Sequential.forward")
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dlogits, input_grad=False):
        """Backpropagate ``dlogits``; every layer fills ``grads``. Returns ``dx`` if ``input_grad``
        (training never needs the gradient with respect to the images, so by default the first
        layer skips it)."""
        dy = dlogits
        for i in reversed(range(len(self.layers))):
            dy = self.layers[i].backward(dy, need_input_grad=i > 0 or input_grad)
        return dy

    # -- parameters -------------------------------------------------------------------
    def named_parameters(self):
        """``[(key, layer, name)]`` with keys like ``"00_Conv2D/W"`` (position and class)."""
        return [(f"{i:02d}_{type(layer).__name__}/{name}", layer, name)
                for i, layer in enumerate(self.layers) for name in layer.params]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def astype(self, dtype):
        """Convert every parameter to ``dtype`` (``"float32"`` or ``"float64"``); returns self."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        return self

    def get_config(self) -> dict:
        return {"input_shape": list(self.input_shape), "dtype": self.dtype.name,
                "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
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

        def row(fields):   # each field starts at the previous column's end, cut to fit
            line = ""
            for field, end in zip(fields, cols):
                line = (line + str(field))[:end].ljust(end)
            return line.rstrip()

        lines = [f'Model: "{self.name}"', "_" * width, row(["Layer (type)", "Output Shape", "Param #"]), "=" * width]
        for i, layer in enumerate(self.layers):
            shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")" if len(layer.output_shape) > 1 \
                else f"(None, {layer.output_shape[0]})"
            lines.append(row([f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()]))
            lines.append("=" * width if i == len(self.layers) - 1 else "_" * width)
        total = self.count_params()
        lines += [f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", "_" * width]
        return "\n".join(lines)

    # -- training and inference ----------------------------------------------------------
    def fit(self, x, y, *, optimizer, epochs, batch_size=32, validation_data=None, shuffle=True, verbose=1,
            initial_epoch=0, seed=None, augment=None, lr_schedule=None, callbacks=(), loss=None, communicator=None):
        """Train with mini-batch gradient descent; returns the history (dict of per-epoch lists).

        Args:
            x, y: images ``(N, *input_shape)`` as given (no rescaling) and int labels ``(N,)``.
            optimizer: a :mod:`minicnn.optim` optimizer built on this model.
            epochs: index of the last epoch (Keras's meaning: with ``initial_epoch=k``,
                epochs ``k .. epochs-1`` run).
            validation_data: ``(x_val, y_val)``, evaluated after every epoch.
            verbose: 0 silent, 1 a progress bar per epoch and a line per epoch, 2 the lines only.
            seed: epoch ``e`` draws its shuffle, augmentation and dropout masks from ``(seed, e)``,
                so a run resumed at epoch ``e`` repeats exactly what an uninterrupted run does.
            augment: ``augment(x_batch, rng) -> x_batch`` on the host, e.g. ``datasets.augment``.
            lr_schedule: ``lr_schedule(t) -> lr`` called before every step with the fractional
                epoch ``t = epoch + step / steps_per_epoch``.
            callbacks: objects with optional ``on_epoch_begin(epoch, logs)`` / ``on_epoch_end(epoch, logs)``.
            communicator: a :class:`minicnn.distributed.Communicator` for data-parallel training
                under ``mpiexec``: ``batch_size`` is the global batch (a multiple of the number of
                processes), each rank trains on its share of every batch and the gradients are
                averaged, so every rank ends with the same weights (rank 0's weights and seed are
                broadcast first; pass the same ``x, y`` on every rank). Only rank 0 shows progress;
                callbacks run on every rank (write files on rank 0 only). Dropout masks and
                augmentation then come from ``(seed, epoch, rank)``.
        """
        from tqdm.auto import tqdm

        check_images(x, self.input_shape, "fit")
        check_labels(y, x.shape[0], self.output_shape[-1], "fit")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
            check_images(validation_data[0], self.input_shape, "fit (validation_data)")
            check_labels(validation_data[1], validation_data[0].shape[0], self.output_shape[-1], "fit (validation_data)")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"fit: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(epochs, (int, np.integer)) or epochs < 1 or not 0 <= initial_epoch <= epochs:
            raise ValueError(f"fit: need 0 <= initial_epoch <= epochs and epochs >= 1, got {initial_epoch}, {epochs}")
        if optimizer.model is not self:
            raise ValueError("fit: the optimizer was built for another model")
        comm = communicator
        if comm is not None:
            if batch_size % comm.size:
                raise ValueError(f"fit: the global batch_size {batch_size} must be a multiple of the number of "
                                 f"processes {comm.size} (each takes batch_size / {comm.size} examples per step)")
            if not comm.is_root:
                verbose = 0
        backend = get_backend()
        loss_fn = loss or SoftmaxCrossEntropy()
        seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        if comm is not None:              # every rank must shuffle alike and start from the same weights
            seed = comm.broadcast(seed)
            comm.broadcast_parameters(self)
        n = x.shape[0]
        steps = -(-n // batch_size)
        history = {"loss": [], "accuracy": []}
        if validation_data is not None:
            history.update(val_loss=[], val_accuracy=[])
        history.update(lr=[], seconds=[])

        for epoch in range(initial_epoch, epochs):
            rng = np.random.default_rng([seed, epoch])          # the shuffle: the same on every rank
            aug_rng = rng if comm is None else np.random.default_rng([seed, epoch, 1 + comm.rank])
            self.reseed_dropout(seed, epoch, rank=None if comm is None else comm.rank)
            for cb in callbacks:
                getattr(cb, "on_epoch_begin", lambda *a: None)(epoch, {})
            start = time.perf_counter()
            loss_sum = 0.0        # device scalars: reading them forces a GPU sync, so we read
            correct = 0           # them only when the progress bar is redrawn
            seen = 0
            last_shown = start
            bar = tqdm(total=n, unit="img", desc=f"Epoch {epoch + 1}/{epochs}", disable=verbose != 1,
                       leave=False, dynamic_ncols=True)
            with bar:
                for step, idx in enumerate(minibatches(n, batch_size, rng if shuffle else None)):
                    if lr_schedule is not None:
                        optimizer.lr = float(lr_schedule(epoch + step / steps))
                    batch_n = len(idx)
                    if comm is not None:
                        idx = comm.shard(idx)                   # this rank's share of the global batch
                    if len(idx):
                        xb = x[idx]
                        if augment is not None:
                            xb = augment(backend.to_numpy(xb), aug_rng)
                        xb = backend.asarray(xb, dtype=self.dtype)
                        yb = backend.asarray(y[idx])
                        logits = self.forward(xb, training=True)
                        batch_loss = loss_fn.forward(logits, yb)
                        self.backward(loss_fn.backward())
                        loss_sum = loss_sum + batch_loss * len(idx)
                        correct = correct + (logits.argmax(axis=1) == yb).sum()
                        seen += len(idx)
                    if comm is not None:
                        comm.average_gradients(self, len(idx), batch_n)
                    optimizer.step()
                    bar.update(batch_n)
                    now = time.perf_counter()
                    if verbose == 1 and now - last_shown > 0.5 and seen:
                        last_shown = now
                        # Distributed: rank 0's running figures (raising here would leave the other ranks waiting).
                        avg = self._finite_loss(loss_sum, seen, epoch, step, optimizer) if comm is None \
                            else float(loss_sum) / seen
                        bar.set_postfix(loss=f"{avg:.4f}", acc=f"{float(correct) / seen:.4f}", refresh=False)
            if comm is not None:                                  # every rank gets the global figures
                loss_sum, correct, seen = comm.sum([float(loss_sum), float(correct), seen])
            logs = {"loss": self._finite_loss(loss_sum, seen, epoch, steps - 1, optimizer),
                    "accuracy": float(correct) / seen}
            if validation_data is not None:
                val = self._evaluate(*validation_data, max(batch_size, 256), None, comm)
                logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            logs.update(lr=optimizer.lr, seconds=time.perf_counter() - start)
            for k, v in logs.items():
                history[k].append(v)
            if verbose:
                parts = [f"{k}: {v:.4f}" for k, v in logs.items() if k not in ("lr", "seconds")]
                tqdm.write(f"Epoch {epoch + 1}/{epochs} - {logs['seconds']:.0f}s - {seen / logs['seconds']:.0f} img/s - "
                           + " - ".join(parts) + f" - lr: {optimizer.lr:.2e}")
            for cb in callbacks:
                getattr(cb, "on_epoch_end", lambda *a: None)(epoch, logs)
        return history

    @staticmethod
    def _finite_loss(loss_sum, seen, epoch, step, optimizer) -> float:
        avg = float(loss_sum) / seen
        if not np.isfinite(avg):
            raise TrainingDiverged(
                f"training diverged: the loss became {avg} in epoch {epoch + 1}, by step {step + 1}; "
                f"the learning rate was {optimizer.lr:g} — try a lower one (the last checkpoint is untouched)")
        return avg

    def reseed_dropout(self, seed: int, epoch: int, rank: int | None = None):
        """Give every Dropout layer the mask stream of ``(seed, epoch, position)``, or of
        ``(seed, epoch, position, rank)`` in a distributed run, so each rank draws its own masks."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dropout):
                layer.reseed(_derive_seed(seed, epoch, i) if rank is None else _derive_seed(seed, epoch, i, 1 + rank))

    def evaluate(self, x, y, batch_size=256, loss=None, communicator=None, return_predictions=False) -> dict:
        """Mean loss and accuracy over ``(x, y)`` in inference mode: ``{"loss": float, "accuracy": float}``.

        With a ``communicator`` (every rank passing the same ``x, y``), each rank evaluates its
        share and the sums are combined: every rank returns the figures of the whole set.
        ``return_predictions=True`` adds ``"predictions"``: the predicted class ids (NumPy) of
        the examples this process evaluated, from the same forward pass.
        """
        check_images(x, self.input_shape, "evaluate")
        check_labels(y, x.shape[0], self.output_shape[-1], "evaluate")
        return self._evaluate(x, y, batch_size, loss, communicator, return_predictions)

    def _evaluate(self, x, y, batch_size, loss, communicator, return_predictions=False) -> dict:
        """:meth:`evaluate` without the input checks (``fit`` checked its validation data once)."""
        backend = get_backend()
        loss_fn = loss or SoftmaxCrossEntropy()
        loss_sum, correct, predictions = 0.0, 0, []
        n = x.shape[0]
        if communicator is not None:
            start, stop = communicator.shard_range(n)
            x, y = x[start:stop], y[start:stop]
        with no_grad():
            for idx in minibatches(x.shape[0], batch_size):
                xb = backend.asarray(x[idx], dtype=self.dtype)
                yb = backend.asarray(y[idx])
                logits = self.forward(xb, training=False)
                predicted = logits.argmax(axis=1)
                loss_sum = loss_sum + loss_fn.forward(logits, yb) * len(idx)
                correct = correct + (predicted == yb).sum()
                if return_predictions:
                    predictions.append(backend.to_numpy(predicted))
        if communicator is not None:
            loss_sum, correct = communicator.sum([float(loss_sum), float(correct)])
        result = {"loss": float(loss_sum) / n, "accuracy": float(correct) / n}
        if return_predictions:
            result["predictions"] = np.concatenate(predictions) if predictions else np.empty(0, np.intp)
        return result

    def predict(self, x, batch_size=256) -> np.ndarray:
        """Class probabilities (softmax of the logits) ``(N, classes)`` as NumPy."""
        check_images(x, self.input_shape, "predict")
        backend = get_backend()
        out = []
        with no_grad():
            for idx in minibatches(x.shape[0], batch_size):
                logits = self.forward(backend.asarray(x[idx], dtype=self.dtype), training=False)
                out.append(backend.to_numpy(softmax(logits)))
        return np.concatenate(out)

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path, optimizer=None, extra=None):
        """Write weights (and optimizer state, and ``extra``) to one ``.npz``, atomically."""
        backend = get_backend()
        arrays = {f"layers/{key}": backend.to_numpy(layer.params[name]) for key, layer, name in self.named_parameters()}
        extra_arrays, extra_values = split_extra(extra)
        arrays.update({f"extra/{k}": v for k, v in extra_arrays.items()})
        meta = {"format": FORMAT, "minicnn_version": __version__, "model": self.get_config(), "extra": extra_values}
        if optimizer is not None:
            state = optimizer.state_dict()
            meta["optimizer"] = {k: v for k, v in state.items() if "/" not in k}
            arrays.update({f"optimizer/{k}": v for k, v in state.items() if "/" in k})
        arrays["__meta__"] = np.array(json.dumps(meta))
        write_atomic(path, arrays)

    def load_weights(self, path, optimizer=None) -> dict:
        """Load weights (and optimizer state) saved by :meth:`save`; returns ``extra``.

        Everything is checked first — layer positions, classes, parameter shapes and dtypes,
        optimizer state — and the model changes only if all of it fits. Raises
        :class:`~minicnn.checkpoint.CheckpointError` naming the file and the first mismatch.
        """
        meta, arrays = read_checkpoint(path)
        layers_meta = meta.get("model", {}).get("layers", [])
        if len(layers_meta) != len(self.layers):
            raise CheckpointError(f"{path}: checkpoint has {len(layers_meta)} layers, the model has {len(self.layers)}")
        for i, (spec, layer) in enumerate(zip(layers_meta, self.layers)):
            if spec.get("class") != type(layer).__name__:
                raise CheckpointError(f"{path}: layer {i} is {spec.get('class')} in the checkpoint, "
                                      f"{type(layer).__name__} in the model")
        expected = {f"layers/{key}": layer.params[name] for key, layer, name in self.named_parameters()}
        for key, param in expected.items():
            if key not in arrays:
                raise CheckpointError(f"{path}: missing {key} (the model has it, {param.dtype}{tuple(param.shape)})")
            got = arrays[key]
            if tuple(got.shape) != tuple(param.shape) or got.dtype != param.dtype:
                raise CheckpointError(f"{path}: {key} is {got.dtype}{tuple(got.shape)} in the checkpoint, "
                                      f"{param.dtype}{tuple(param.shape)} in the model")
        for key in arrays:
            if key.startswith("layers/") and key not in expected:
                raise CheckpointError(f"{path}: checkpoint has {key}, which the model lacks")
        if optimizer is not None:
            if "optimizer" not in meta:
                raise CheckpointError(f"{path}: no optimizer state in this checkpoint")
            state = dict(meta["optimizer"])
            state.update({k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")})
            try:
                optimizer.check_state_dict(state)
            except ValueError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        # All checks passed: only now touch the model.
        backend = get_backend()
        for key, param in expected.items():
            param[...] = backend.asarray(arrays[key])
        if optimizer is not None:
            optimizer.load_state_dict(state)
        extra = dict(meta.get("extra", {}))
        extra.update({k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")})
        return extra


def load_model(path, optimizer_class=None):
    """Rebuild a Sequential from a checkpoint's stored config and load its weights.

    Returns ``(model, extra)``.
    """
    meta, _ = read_checkpoint(path)
    try:
        model = Sequential.from_config(meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its stored config ({exc})") from None
    extra = model.load_weights(path)
    return model, extra


def _derive_seed(*entropy) -> int:
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])
