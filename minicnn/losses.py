"""Softmax cross-entropy: the loss of a classifier that outputs logits."""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, is_device_array
from .input_checks import check_labels


def log_softmax(logits):
    """``log(softmax(z))`` without overflow, and accurate when one class dominates.

    ``z - max(z)`` changes nothing mathematically (softmax is shift-invariant) but keeps
    every ``exp`` in ``(0, 1]``, so logits of any size are safe. The row's largest term
    is then exactly ``exp(0) = 1``; we take it out of the sum and use ``log1p`` of the
    rest, so a confident prediction's tiny loss (say 1e-9) keeps all its digits instead
    of drowning in the rounding of ``log(1.000000001)``.
    """
    xp = get_array_module(logits)
    n = logits.shape[0]
    top = logits.argmax(axis=1)
    rows = xp.arange(n)
    shifted = logits - logits[rows, top][:, None]
    others = xp.exp(shifted)
    others[rows, top] = 0
    return shifted - xp.log1p(others.sum(axis=1, keepdims=True))


def softmax(logits):
    """Class probabilities ``(N, K)`` from ``logits (N, K)``: ``exp(log_softmax(logits))``."""
    xp = get_array_module(logits)
    return xp.exp(log_softmax(logits))


class SoftmaxCrossEntropy:
    r"""Mean over the batch of the cross-entropy between a target distribution ``q`` and ``softmax(z)``.

    ``label_smoothing = eps`` (Keras's and PyTorch's name and meaning) moves ``eps`` of the
    target's mass from the label to all ``K`` classes evenly (``p = softmax(z)``):

    .. math::

        q &= (1 - \epsilon) \, \mathrm{onehot}(label) + \frac{\epsilon}{K}

        loss &= -\sum_k q_k \log p_k = (1 - \epsilon) \, (-\log p_{label}) + \epsilon \, \frac{1}{K} \sum_k (-\log p_k)

    ``eps = 0`` is the plain ``-log softmax(z)[label]``. Why smooth: with a one-hot target the
    loss keeps falling as a logit grows without bound, so a net that already answers right
    keeps inflating its confidence; a smoothed target is met at finite logits, which tends to
    generalise better on short runs (the issue's PyTorch twin: +0.7 points at 5 epochs).

    Shapes:
        logits: ``(N, K)`` float     labels: ``(N,)`` int in ``[0, K)``
        loss:   a 0-d array (stays on the device: reading it would force a GPU sync)
        cache:  ``logp (N, K)``, the log-softmax (backward exponentiates it), and the labels

    Backward: for softmax followed by cross-entropy the Jacobians collapse to
    ``dz = (softmax(z) - q) / N``: the predicted distribution minus the target one, divided
    by ``N`` because the loss is a mean. (The one-hot part, ``p - 1`` at the label, is
    computed as minus the other classes' probabilities: same value, no cancellation when
    ``p`` is close to 1.)

    Bad labels: a label outside ``[0, K)`` has no loss, but indexing does not say so. NumPy
    reads ``-1`` as the last class; CuPy wraps *every* out-of-range integer index (``K`` reads
    class 0, ``K + 2`` class 2: CuPy's documented difference from NumPy) and raises nothing,
    so the loss would be silently wrong. ``forward`` therefore checks labels that arrive as a
    NumPy array (on the host: no GPU sync) and raises ValueError. Labels already on the GPU
    are not checked here: reading them would make the CPU wait for the GPU at every step.
    ``fit``, ``evaluate`` and the doctor check their labels on the host before moving them;
    in a loop of your own, check once with
    ``minicnn.input_checks.check_labels(y, len(y), classes, "my loop")`` or pass host labels.
    """

    def __init__(self, label_smoothing: float = 0.0):
        if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"SoftmaxCrossEntropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self.cache = None

    def forward(self, logits, labels):
        """Mean cross-entropy of ``logits (N, K)`` against integer ``labels (N,)``; keeps what backward needs."""
        xp = get_array_module(logits)
        if not is_device_array(labels):  # host labels: checked for free, then moved beside the logits
            labels = np.asarray(labels)
            check_labels(labels, logits.shape[0], logits.shape[1], "SoftmaxCrossEntropy.forward")
            labels = xp.asarray(labels)
        logp = log_softmax(logits)
        n = logits.shape[0]
        rows = xp.arange(n)
        loss = -logp[rows, labels].mean()
        if self.label_smoothing:
            eps = logp.dtype.type(self.label_smoothing)
            loss = (1 - eps) * loss - eps * logp.mean(axis=1).mean()
        self.cache = (logp, labels)
        return loss

    def backward(self):
        """The gradient of the mean loss with respect to the logits, ``(softmax - onehot) / N``."""
        xp = get_array_module(self.cache[0])
        logp, labels = self.cache
        self.cache = None
        n, k = logp.shape
        rows = xp.arange(n)
        dz = xp.exp(logp)  # softmax, reusing logp's computation
        # The label's entry is p - 1. When the model is confident, p is 1 - tiny and
        # p - 1 would lose the tiny to rounding; it equals minus the other classes' mass,
        # which we sum directly.
        dz[rows, labels] = 0
        dz[rows, labels] = -dz.sum(axis=1)
        if self.label_smoothing:  # p - q = (p - onehot) + eps * (onehot - 1/K)
            eps = dz.dtype.type(self.label_smoothing)
            dz -= eps / k
            dz[rows, labels] += eps
        dz /= n
        return dz


# -- Keras's names: what compile(loss=...) takes ------------------------------------------------------
class CategoricalCrossentropy:
    """Keras's loss for one-hot labels ``(N, K)``: ``-sum_k y_k log p_k``, averaged over the batch.

    ``from_logits=False`` (Keras's default) expects the model to end in a softmax; minicnn then
    folds that softmax into the loss (:meth:`minicnn.Sequential.emitting_logits`), as Keras does
    when it recognises the pair, so training computes exactly :class:`SoftmaxCrossEntropy`'s
    gradient ``p - y`` on the logits. ``label_smoothing`` as in :class:`SoftmaxCrossEntropy`.
    """

    one_hot = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, name: str | None = None):
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"{type(self).__name__}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        self.name = name or snake_name(type(self).__name__)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits}, label_smoothing={self.label_smoothing})"


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Keras's loss for integer labels ``(N,)`` or ``(N, 1)``: ``-log p[label]``, averaged."""

    one_hot = False

    def __init__(self, from_logits: bool = False, name: str | None = None):
        super().__init__(from_logits=from_logits, name=name)


def snake_name(class_name: str) -> str:
    return {"CategoricalCrossentropy": "categorical_crossentropy"}.get(class_name, "sparse_categorical_crossentropy")


LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """A loss by Keras's name (``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``)
    or a loss object; a ValueError naming the known ones otherwise."""
    if isinstance(identifier, CategoricalCrossentropy):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in LOSSES:
        return LOSSES[identifier.lower()]()
    raise ValueError(
        f"unknown loss {identifier!r}: minicnn has {sorted(LOSSES)} (or minicnn.losses.CategoricalCrossentropy"
        "(from_logits=...), SparseCategoricalCrossentropy(...)); a classifier's loss is all it trains with"
    )
