"""Training: one step of gradient descent, the epochs around it, and inference over a data set.

Start with :func:`train_step`: the four lines every neural network trains by::

    logits = model.forward(xb, training=True)    # 1. forward: images -> class scores
    loss = loss_fn.forward(logits, yb)            # 2. loss: how wrong, one number
    model.backward(loss_fn.backward())            # 3. backward: every layer's grads
    optimizer.step()                              # 4. update: weights -= lr * (a function of) grads

:func:`fit` repeats it over shuffled mini-batches (:func:`minibatches`) for a number of
epochs, with what a user expects around it: a progress bar, a learning-rate schedule,
validation after each epoch, callbacks (checkpoints, CSV logs), and a check that the loss
is still finite. :func:`evaluate` and :func:`predict` run the forward pass alone, under
:func:`minicnn.no_grad` (they live in :mod:`minicnn.inference`, re-exported here).
``Sequential.fit/evaluate/predict`` call these functions.

The GPU rule of this module: a loss or an accuracy is a device scalar until a number must
be shown (a progress-bar refresh, the end of an epoch). Reading it earlier (``float(loss)``)
would make the CPU wait for the GPU after every step.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .backend import get_backend, to_numpy
from .inference import _emitting_logits, _evaluate, evaluate, predict  # noqa: F401  (documented as minicnn.training's)
from .input_checks import check_images, check_labels
from .losses import SoftmaxCrossEntropy
from .seeds import derive_seed, next_model_seed, reseed_dropout  # noqa: F401  (derive_seed: also minicnn.training's)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Index arrays of successive mini-batches over ``n`` examples (the last one may be short).

    With ``rng`` the order is a fresh permutation; without, it is ``0..n-1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_step(model, loss_fn, optimizer, xb, yb):
    """One step of mini-batch gradient descent on ``xb (B, *input_shape)``, ``yb (B,)``.

    ``fit`` calls this very function, with wrappers where it runs in parallel: on NumPy the
    model and optimizer of :func:`minicnn.distributed.threads.execution` (the same calls, run in shards on
    threads), under MPI an optimizer whose ``step()`` averages the gradients of every process
    first (:class:`minicnn.distributed.DistributedOptimizer`).
    Returns ``(loss, correct)``: the batch's mean loss and its number of right answers, as
    device scalars (no GPU sync).
    """
    logits = model.forward(xb, training=True)
    loss = loss_fn.forward(logits, yb)
    model.backward(loss_fn.backward())
    optimizer.step()
    return loss, (logits.argmax(axis=1) == yb).sum()


def fit(
    model,
    x,
    y,
    *,
    optimizer,
    epochs,
    batch_size=32,
    validation_data=None,
    shuffle=True,
    verbose=1,
    initial_epoch=0,
    seed=None,
    augment=None,
    lr_schedule=None,
    callbacks=(),
    loss=None,
    communicator=None,
    threads=None,
):
    """Train ``model`` with mini-batch gradient descent; returns the history (dict of per-epoch lists).

    Args:
        x, y: images ``(N, *input_shape)`` as given (no rescaling) and int labels ``(N,)``.
        optimizer: a :mod:`minicnn.optim` optimizer built on this model.
        epochs: index of the last epoch (Keras's meaning: with ``initial_epoch=k``,
            epochs ``k .. epochs-1`` run).
        validation_data: ``(x_val, y_val)``, evaluated after every epoch (with the averaged
            weights if the optimizer keeps an average, see :mod:`minicnn.averaging`).
        verbose: 0 silent, 1 a progress bar per epoch and a line per epoch, 2 the lines only.
        seed: epoch ``e`` draws its shuffle, augmentation and dropout masks from ``(seed, e)``,
            so a run resumed at epoch ``e`` repeats exactly what an uninterrupted run does.
        augment: ``augment(x_batch, rng) -> x_batch`` on the host, e.g. ``datasets.augment``. A
            function with ``accepts_device_arrays = True`` (``datasets.augment`` has it) gets
            the batches of a GPU-resident ``x`` where they are; any other gets a host copy.
        lr_schedule: ``lr_schedule(t) -> lr`` called before every step with the fractional
            epoch ``t = epoch + step / steps_per_epoch`` (see :mod:`minicnn.run.schedules`).
        callbacks: objects with optional ``on_epoch_begin(epoch, logs)`` / ``on_epoch_end(epoch, logs)``
            (see :mod:`minicnn.run.callbacks`).
        communicator: a :class:`minicnn.distributed.Communicator` for data-parallel training
            under ``mpiexec``: ``batch_size`` is the global batch (a multiple of the number of
            processes), each rank trains on its share of every batch and the gradients are
            averaged, so every rank ends with the same weights (rank 0's weights and seed are
            broadcast first; pass the same ``x, y`` on every rank). Only rank 0 shows progress;
            callbacks run on every rank (write files on rank 0 only). Dropout masks and
            augmentation then come from ``(seed, epoch, rank)``.
        threads: CPU threads (NumPy backend): each batch is cut into shards of
            :data:`minicnn.distributed.threads.SHARD_SIZE` images run concurrently. Default
            ``$MINICNN_THREADS``, else every core this process may use (shared among the processes
            of an MPI job). The result does not depend on it: 1, 2 or 4 threads give the same weights.
    """
    from .distributed import threads as parallel  # the doors to the tools: threads, and the callbacks' hooks
    from .run.callbacks.base import call_hook, overrides

    _check_fit_arguments(model, x, y, optimizer, epochs, batch_size, validation_data, initial_epoch)
    verbose = effective_verbose(verbose)
    comm = communicator
    if comm is not None:
        if batch_size % comm.size:
            raise ValueError(
                f"fit: the global batch_size {batch_size} must be a multiple of the number of "
                f"processes {comm.size} (each takes batch_size / {comm.size} examples per step)"
            )
        verbose = verbose if comm.is_root else 0
    loss_fn = loss or SoftmaxCrossEntropy()
    seed = next_model_seed() if seed is None else seed  # set_random_seed's, if one was set
    seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
    if comm is not None:  # every rank must shuffle alike and start from the same weights
        seed = comm.broadcast(seed)
        comm.broadcast_parameters(model)
    history = {"loss": [], "accuracy": []}
    if validation_data is not None:
        history.update(val_loss=[], val_accuracy=[])
    history.update(lr=[], seconds=[])
    threads = parallel.thread_count(threads, 1 if comm is None else comm.size)
    last_step = -(-x.shape[0] // batch_size) - 1
    callbacks = list(callbacks)
    for cb in callbacks:  # Keras's callbacks reach the model as self.model
        getattr(cb, "set_model", lambda m: None)(model)
    model.stop_training = False  # a callback sets it to end training (Keras's EarlyStopping does)
    with _emitting_logits(model):  # a final softmax is folded into the loss, as Keras does
        call_hook(callbacks, "on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            call_hook(callbacks, "on_epoch_begin", epoch, {})
            start = time.perf_counter()
            loss_sum, correct, seen = train_epoch(
                model,
                loss_fn,
                optimizer,
                x,
                y,
                epoch=epoch,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                shuffle=shuffle,
                augment=augment,
                lr_schedule=lr_schedule,
                verbose=verbose,
                communicator=comm,
                threads=threads,
                batch_callbacks=[cb for cb in callbacks if overrides(cb, "on_train_batch_end")],
            )
            if comm is not None:  # rank 0's BN moving statistics everywhere: one model to validate and save
                comm.broadcast_state(model)
            logs = {
                "loss": _finite_loss(loss_sum, seen, epoch, last_step, optimizer),
                "accuracy": float(correct) / seen,
            }
            if validation_data is not None:
                with optimizer.averaged_weights():  # with an EMA, validate what a checkpoint will hold
                    val = _evaluate(model, *validation_data, max(batch_size, 256), None, comm, threads=threads)
                logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            logs.update(lr=optimizer.lr, seconds=time.perf_counter() - start)
            for k, v in logs.items():
                history[k].append(v)
            if verbose:
                _epoch_line(epoch, epochs, logs, seen)
            call_hook(callbacks, "on_epoch_end", epoch, logs)
            if model.stop_training:
                break
        call_hook(callbacks, "on_train_end", dict(logs) if history["loss"] else {})
    return history


def train_epoch(
    model,
    loss_fn,
    optimizer,
    x,
    y,
    *,
    epoch,
    epochs,
    batch_size,
    seed,
    shuffle=True,
    augment=None,
    lr_schedule=None,
    verbose=1,
    communicator=None,
    threads=1,
    batch_callbacks=(),
):
    """One pass over ``(x, y)`` in shuffled mini-batches, one :func:`train_step` each; returns
    ``(loss_sum, correct, seen)`` summed over every process (``loss_sum`` weights each batch's
    mean by its size). ``threads``: see :func:`fit`. ``batch_callbacks``: their
    ``on_train_batch_end(step, logs)`` after every step; ``model.stop_training`` ends the epoch."""
    from tqdm.auto import tqdm

    from .distributed import threads as parallel
    from .run.callbacks.base import call_hook

    comm = communicator
    backend = get_backend()
    n = x.shape[0]
    steps = -(-n // batch_size)
    rng = np.random.default_rng([seed, epoch])  # the shuffle: the same on every rank
    aug_rng = rng if comm is None else np.random.default_rng([seed, epoch, 1 + comm.rank])
    reseed_dropout(model, seed, epoch, rank=None if comm is None else comm.rank)
    loss_sum = correct = 0  # device scalars: read only when the bar is redrawn
    seen = 0
    last_shown = time.perf_counter()
    bar = tqdm(
        total=n, unit="img", desc=f"Epoch {epoch + 1}/{epochs}", disable=verbose != 1, leave=False, dynamic_ncols=True
    )
    # The step's model and optimizer: on NumPy their work runs in shards on `threads` threads.
    with bar, parallel.execution(model, optimizer, threads) as (step_model, step_optimizer):
        if comm is not None:  # its step() averages the gradients of every process first
            step_optimizer = comm.distributed_optimizer(step_optimizer, model)
        for step, idx in enumerate(minibatches(n, batch_size, rng if shuffle else None)):
            if lr_schedule is not None:
                optimizer.lr = float(lr_schedule(epoch + step / steps))
            batch_n = len(idx)
            if comm is not None:
                idx = comm.shard(idx)  # this rank's share of the global batch
                step_optimizer.share(len(idx), batch_n)
            if len(idx):
                xb = x[idx] if augment is None else _augmented(augment, x[idx], aug_rng)
                xb, yb = backend.asarray(xb, dtype=model.dtype), backend.asarray(y[idx])
                batch_loss, batch_correct = train_step(step_model, loss_fn, step_optimizer, xb, yb)
                loss_sum = loss_sum + batch_loss * len(idx)
                correct = correct + batch_correct
                seen += len(idx)
                if batch_callbacks:
                    batch_logs = {"loss": float(batch_loss), "accuracy": float(batch_correct) / len(idx)}
                    call_hook(batch_callbacks, "on_train_batch_end", step, batch_logs)
                    if getattr(model, "stop_training", False):
                        break
            else:  # a rank with no examples still joins the average, with zeros
                step_optimizer.step()
            bar.update(batch_n)
            now = time.perf_counter()
            if verbose == 1 and now - last_shown > 0.5 and seen:
                last_shown = now
                # Distributed: rank 0's running figures (raising here would leave the other ranks waiting).
                avg = _finite_loss(loss_sum, seen, epoch, step, optimizer) if comm is None else float(loss_sum) / seen
                bar.set_postfix(loss=f"{avg:.4f}", acc=f"{float(correct) / seen:.4f}", refresh=False)
    if comm is not None:  # every rank gets the global figures
        loss_sum, correct, seen = comm.sum([float(loss_sum), float(correct), seen])
    return loss_sum, correct, seen


def _augmented(augment, xb, rng):
    """``augment(xb, rng)``; a device batch is copied to the host first (a GPU sync per step)
    unless ``augment`` says it takes device arrays."""
    if getattr(augment, "accepts_device_arrays", False):
        return augment(xb, rng)
    return augment(to_numpy(xb), rng)


def effective_verbose(verbose: int, stream=None) -> int:
    """``verbose=1`` draws a progress bar only where it can be redrawn in place: a terminal or a
    notebook. Into a file or a pipe (a batch job's log, ``| tee``) it means 2, one line per
    epoch, as Keras does, instead of hundreds of redraws. ``stream``: tqdm's, ``sys.stderr``."""
    if verbose != 1:
        return verbose
    try:
        interactive = (stream or sys.stderr).isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):  # no stream (pythonw), or a closed one
        interactive = False
    return 1 if interactive else 2


def _check_fit_arguments(model, x, y, optimizer, epochs, batch_size, validation_data, initial_epoch):
    check_images(x, model.input_shape, "fit")
    check_labels(y, x.shape[0], model.output_shape[-1], "fit")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        check_images(validation_data[0], model.input_shape, "fit (validation_data)")
        check_labels(validation_data[1], validation_data[0].shape[0], model.output_shape[-1], "fit (validation_data)")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1 or not 0 <= initial_epoch <= epochs:
        raise ValueError(f"fit: need 0 <= initial_epoch <= epochs and epochs >= 1, got {initial_epoch}, {epochs}")
    if optimizer.model is not model:
        raise ValueError("fit: the optimizer was built for another model")


def _finite_loss(loss_sum, seen, epoch, step, optimizer) -> float:
    """The mean loss as a Python float (a host sync); raise TrainingDiverged if it is NaN or inf."""
    avg = float(loss_sum) / seen
    if not np.isfinite(avg):
        raise TrainingDiverged(
            f"training diverged: the loss became {avg} in epoch {epoch + 1}, by step {step + 1}; "
            f"the learning rate was {optimizer.lr:g} — try a lower one (the last checkpoint is untouched)"
        )
    return avg


def _epoch_line(epoch, epochs, logs, seen):
    from tqdm.auto import tqdm

    parts = [f"{k}: {v:.4f}" for k, v in logs.items() if k not in ("lr", "seconds")]
    tqdm.write(
        f"Epoch {epoch + 1}/{epochs} - {logs['seconds']:.0f}s - {seen / logs['seconds']:.0f} img/s - "
        + " - ".join(parts)
        + f" - lr: {logs['lr']:.2e}"
    )
