"""Keras's ``compile`` / ``fit`` / ``evaluate`` on top of minicnn's own loop (:mod:`minicnn.training`).

What a Keras course writes::

    model.compile(loss="categorical_crossentropy", optimizer=Adamax(learning_rate=5e-3), metrics=["accuracy"])
    model.fit(x_train, to_categorical(y_train), batch_size=32, epochs=10,
              validation_data=(x_val, to_categorical(y_val)), callbacks=[LearningRateScheduler(...)])
    loss, accuracy = model.evaluate(x_test, to_categorical(y_test))

This module only translates: the optimizer bound to the model, one-hot labels to class ids (the
loss is the same softmax cross-entropy, :class:`minicnn.losses.SoftmaxCrossEntropy`), Keras's
``validation_split`` (the *last* part of the data, before shuffling), ``verbose="auto"``, and the
results' shapes. The training itself is :func:`minicnn.training.fit`, the same four-line step.
"""

from __future__ import annotations

import numpy as np

from . import losses
from . import training as _training
from .input_checks import whole_numbers_as_ints
from .run.callbacks import History

METRICS = ("accuracy", "acc")


def compile_model(model, optimizer, loss, metrics, unsupported: dict) -> None:
    """Bind ``optimizer`` to ``model`` and record the loss (see :meth:`minicnn.Sequential.compile`)."""
    if unsupported:
        raise TypeError(f"compile: minicnn does not take {sorted(unsupported)} (it takes optimizer, loss, metrics)")
    from . import optimizers

    if loss is None:
        raise ValueError("compile: give a loss, e.g. loss='categorical_crossentropy'")
    loss = losses.get(loss)
    for metric in metrics or []:
        if metric not in METRICS:
            raise ValueError(f"compile: unknown metric {metric!r}; minicnn reports 'accuracy' (and the loss)")
    optimizer = optimizers.get(optimizer)
    optimizer.bind(model)  # (a ValueError if it is bound to another model: each model its own optimizer)
    if model.built and not loss.from_logits and not model.outputs_probabilities:
        raise ValueError(
            f"compile: {loss.name} with from_logits=False expects probabilities, but the last layer "
            f"({model.layers[-1].name}) outputs logits: add Activation('softmax') (or activation='softmax'), "
            f"or pass the loss with from_logits=True"
        )
    model.optimizer, model.loss_spec, model.metrics_names = optimizer, loss, ["loss", "accuracy"]


def _require_compiled(model, what: str):
    if model.loss_spec is None:
        raise ValueError(
            f"{what}: call model.compile(optimizer=..., loss=..., metrics=['accuracy']) first "
            f"(or pass optimizer= for minicnn's own form: model.fit(x, y, optimizer=Adam(model), epochs=...))"
        )


def class_ids(model, y, where: str):
    """The labels as class ids ``(N,)``: one-hot rows (categorical loss) or ids ``(N,)``/``(N, 1)``."""
    y = np.asarray(y)
    if model.loss_spec.one_hot:
        if y.ndim != 2:
            raise ValueError(
                f"{where}: categorical_crossentropy takes one-hot labels (N, classes), got shape {y.shape}: "
                f"use minicnn.utils.to_categorical(y), or loss='sparse_categorical_crossentropy'"
            )
        ids = y.argmax(axis=1)
        if not np.array_equal(y, np.eye(y.shape[1], dtype=y.dtype)[ids]):
            raise ValueError(f"{where}: the labels are not one-hot rows (one 1 per row); soft labels are not supported")
        return ids
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{where}: sparse_categorical_crossentropy takes class ids (N,) or (N, 1), got shape {y.shape}"
            + (" (one-hot labels? use loss='categorical_crossentropy')" if y.ndim == 2 else "")
        )
    y = whole_numbers_as_ints(y)
    return y


def _arrays(x, y):
    """``(x, y)``; an image dataset (``minicnn.utils.image_dataset_from_directory``) gives its arrays."""
    if y is None and hasattr(x, "to_arrays"):
        return x.to_arrays()
    return x, y


def _verbose(verbose) -> int:
    return 1 if verbose == "auto" else int(verbose)


def fit(
    model,
    x,
    y,
    *,
    epochs=1,
    batch_size=None,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    initial_epoch=0,
    **options,
) -> History:
    """Keras's ``fit`` (see the module): returns a :class:`History` (``history.history["val_accuracy"]``)."""
    _require_compiled(model, "fit")
    x, y = _arrays(x, y)
    if isinstance(validation_data, (tuple, list)) or validation_data is None:
        pass
    else:  # an ImageDataset as validation data, as Keras takes a dataset
        validation_data = _arrays(validation_data, None)
    model._ensure_built(x, "fit")
    y = class_ids(model, y, "fit")
    if not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    if validation_split and validation_data is None:  # Keras takes the last part, before any shuffling
        cut = int(len(x) * (1 - validation_split))
        x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        validation_data = (validation_data[0], class_ids(model, validation_data[1], "fit (validation_data)"))
    history = History(
        _training.fit(
            model,
            x,
            y,
            optimizer=model.optimizer,
            epochs=epochs,
            batch_size=32 if batch_size is None else batch_size,
            validation_data=validation_data,
            shuffle=shuffle,
            verbose=_verbose(verbose),
            initial_epoch=initial_epoch,
            callbacks=list(callbacks or []),
            loss=losses.SoftmaxCrossEntropy(label_smoothing=model.loss_spec.label_smoothing),
            **options,
        )
    )
    model.history = history
    return history


def evaluate(model, x, y, batch_size=None, verbose="auto", return_dict=False, **options):
    """Keras's ``evaluate``: ``[loss, accuracy]``, or ``{"loss": ..., "accuracy": ...}`` with ``return_dict``."""
    _require_compiled(model, "evaluate")
    x, y = _arrays(x, y)
    result = _training.evaluate(
        model, x, class_ids(model, y, "evaluate"), batch_size=32 if batch_size is None else batch_size, **options
    )
    return result if return_dict else [result["loss"], result["accuracy"]]
