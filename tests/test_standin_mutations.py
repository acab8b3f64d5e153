"""Mutation check for the CuPy stand-in: each deliberate GPU bug, patched into the library,
makes a stand-in run fail — while the unpatched library passes the same run.

(a) a dropout mask drawn with NumPy and multiplied into a device array  -> TypeError
(b) ``numpy.asarray`` used instead of the backend's host copy           -> TypeError
(c) a ``float(loss)`` added inside the training step                    -> sync budget exceeded
(d) the loss's host check of labels dropped                             -> a bad label passes silently
    (the stand-in wraps out-of-range indices as CuPy does; plain NumPy would raise IndexError)

The training step here is the one ``fit`` runs, ``minicnn.training.train_step``; the sync
budgets of ``fit``/``evaluate``/``predict`` themselves are in ``test_sync_budget.py``.
"""

import numpy as np
import pytest

import minicnn
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import Adam
from minicnn.training import train_step


def small_model():
    return minicnn.Sequential(
        [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Dropout(0.3, seed=1), Flatten(), Dense(3)],
        input_shape=(8, 8, 2),
        seed=0,
    )


def data(n=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


def device_batch(x, y):
    b = minicnn.get_backend()
    return b.asarray(x, dtype=np.float32), b.asarray(y)


def run_steps(model, steps=3):
    x, y = data()
    opt, loss_fn = Adam(model, lr=1e-2), SoftmaxCrossEntropy()
    for _ in range(steps):
        train_step(model, loss_fn, opt, *device_batch(x, y))


# -- the unpatched library passes every check below ------------------------------------------------


def test_control_training_steps_make_no_host_sync(standin):
    model = small_model()
    with standin.sync_budget(0, "three training steps"):
        run_steps(model)
    probs = model.predict(data()[0])  # the host copy goes through backend.to_numpy
    assert isinstance(probs, np.ndarray) and probs.shape == (6, 3)


# -- (a) a NumPy dropout mask -------------------------------------------------------------------


def test_a_numpy_dropout_mask_on_device_data_fails(standin, monkeypatch):
    def buggy_forward(self, x, training=False):  # Dropout.forward with the mask drawn by NumPy
        self._ensure_built(x)
        if not training or self.rate == 0:
            self.cache = None
            return x
        mask = (np.random.default_rng(self.seed).random(x.shape) >= self.rate).astype(x.dtype)
        mask /= x.dtype.type(1 - self.rate)
        self.cache = mask
        return x * mask

    monkeypatch.setattr(Dropout, "forward", buggy_forward)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        run_steps(small_model())


# -- (b) numpy.asarray instead of the backend's host copy --------------------------------------


def test_numpy_asarray_instead_of_the_host_copy_fails(standin, monkeypatch):
    # predict's one host copy of the probabilities, written with NumPy instead of the backend's helper
    import minicnn.training

    monkeypatch.setattr(minicnn.training, "to_numpy", lambda a, out=None: np.asarray(a))
    model = small_model()
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        model.predict(data()[0])


# -- (c) a float(loss) in the training step ----------------------------------------------------


def test_a_float_of_the_loss_in_the_step_exceeds_the_sync_budget(standin, monkeypatch):
    original = SoftmaxCrossEntropy.forward

    def forward_with_a_debug_print(self, logits, labels):
        loss = original(self, logits, labels)
        float(loss)  # e.g. a left-over `print(f"{float(loss):.3f}")`
        return loss

    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", forward_with_a_debug_print)
    with pytest.raises(AssertionError, match=r"3 host syncs, budget 0.*'float': 3") as info:
        with standin.sync_budget(0, "three training steps"):
            run_steps(small_model())
    assert "forward_with_a_debug_print" in str(info.value)  # the report points at the culprit


# -- (d) the host label check dropped ----------------------------------------------------------


def bad_labels_are_refused():
    """Label 3 of 3 classes, as host labels beside device logits: the loss must refuse it."""
    logits = minicnn.get_backend().asarray(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        SoftmaxCrossEntropy().forward(logits, np.array([0, 3]))


def test_control_bad_labels_are_refused(standin):
    bad_labels_are_refused()


def test_d_dropping_the_host_label_check_lets_a_bad_label_through(standin, monkeypatch):
    import minicnn.losses

    monkeypatch.setattr(minicnn.losses, "check_labels", lambda *args: None)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):  # CuPy read class 3 % 3 = 0 instead
        bad_labels_are_refused()
