"""Inference over a data set: :func:`evaluate` (mean loss and accuracy) and :func:`predict`
(class probabilities), batch after batch under :func:`minicnn.no_grad`, on NumPy in shards on
threads (:func:`minicnn.distributed.threads.execution`)."""

from __future__ import annotations

import contextlib

import numpy as np

from .backend import get_backend, to_numpy
from .input_checks import check_images, check_labels
from .layers import no_grad
from .losses import SoftmaxCrossEntropy, softmax


def _batches(n: int, batch_size: int):
    """Index arrays of successive batches over ``n`` examples, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


def evaluate(
    model, x, y, batch_size=256, loss=None, communicator=None, return_predictions=False, threads=None, tta=None
) -> dict:
    """Mean loss and accuracy over ``(x, y)`` in inference mode: ``{"loss": float, "accuracy": float}``.

    With a ``communicator`` (every rank passing the same ``x, y``), each rank evaluates its
    share and the sums are combined: every rank returns the figures of the whole set.
    ``return_predictions=True`` adds ``"predictions"``: the predicted class ids (NumPy) of
    the examples this process evaluated, from the same forward pass.
    ``tta="flip"`` (or ``"flip_shift"``) scores the mean of the views' probabilities
    (:mod:`minicnn.run.tta`); the loss is then the cross-entropy of that mean.
    """
    from .distributed import threads as parallel  # the doors to the tools: threads and test-time augmentation
    from .run.tta import check_tta

    check_tta(tta, "evaluate")
    check_images(x, model.input_shape, "evaluate")
    check_labels(y, x.shape[0], model.output_shape[-1], "evaluate")
    threads = parallel.thread_count(threads, 1 if communicator is None else communicator.size)
    return _evaluate(model, x, y, batch_size, loss, communicator, return_predictions, threads, tta)


def _evaluate(model, x, y, batch_size, loss, communicator, return_predictions=False, threads=1, tta=None) -> dict:
    """:func:`evaluate` without the input checks (``fit`` checked its validation data once)."""
    from .distributed import threads as parallel

    backend = get_backend()
    loss_fn = loss or SoftmaxCrossEntropy()
    loss_sum, correct, predictions = 0.0, 0, []
    n = x.shape[0]
    if communicator is not None:
        start, stop = communicator.shard_range(n)
        x, y = x[start:stop], y[start:stop]
    with no_grad(), _emitting_logits(model), parallel.execution(model, threads=threads) as (runner, _):
        for idx in _batches(x.shape[0], batch_size):
            yb = backend.asarray(y[idx])
            logits = _logits(runner, backend.asarray(x[idx], dtype=model.dtype), tta)
            predicted = logits.argmax(axis=1)
            loss_sum = loss_sum + loss_fn.forward(logits, yb) * len(idx)
            correct = correct + (predicted == yb).sum()
            if return_predictions:
                predictions.append(predicted)
    if communicator is not None:
        loss_sum, correct = communicator.sum([float(loss_sum), float(correct)])
    result = {"loss": float(loss_sum) / n, "accuracy": float(correct) / n}
    if return_predictions:  # one host copy for the whole set, not one per batch
        xp = backend.xp
        result["predictions"] = to_numpy(xp.concatenate(predictions)) if predictions else np.empty(0, np.intp)
    return result


def predict(model, x, batch_size=256, threads=None, tta=None) -> np.ndarray:
    """Class probabilities (softmax of the logits) ``(N, classes)`` as NumPy (``threads`` as in :func:`fit`).

    ``tta="flip"`` or ``"flip_shift"``: the mean of the views' probabilities (:mod:`minicnn.run.tta`)."""
    from .distributed import threads as parallel
    from .run.tta import check_tta

    check_tta(tta, "predict")
    check_images(x, model.input_shape, "predict")
    backend = get_backend()
    threads = parallel.thread_count(threads)
    out = []
    with no_grad(), _emitting_logits(model), parallel.execution(model, threads=threads) as (runner, _):
        for idx in _batches(x.shape[0], batch_size):
            out.append(softmax(_logits(runner, backend.asarray(x[idx], dtype=model.dtype), tta)))
    return to_numpy(backend.xp.concatenate(out))  # one host copy for the whole set


def _emitting_logits(model):
    """A model's final softmax skipped for the while (:meth:`minicnn.Sequential.emitting_logits`):
    the loss and :func:`softmax` here take logits."""
    return getattr(model, "emitting_logits", contextlib.nullcontext)()


def _logits(runner, xb, tta=None):
    """Inference-mode forward of a batch through ``runner`` (the model, or its sharded view). With
    ``tta``, the log of the views' mean probabilities, which a loss takes as logits."""
    if tta is not None:
        from .run.tta import log_mean_softmax, views

        return log_mean_softmax([runner.forward(view, training=False) for view in views(xb, tta)])
    return runner.forward(xb, training=False)
