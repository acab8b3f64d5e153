"""Host syncs on the CuPy backend, counted by the CPU stand-in.

Every ``float(loss)``, ``.get()`` or ``.item()`` of a device array makes the CPU wait for the
GPU. The training step must make none except where a number is shown; ``evaluate`` and
``predict`` a constant number per call, however many batches; a checkpoint one per array.
Each test compares two runs that differ only in their number of batches, so a change that
adds a sync per batch fails here.
"""

import numpy as np
import pytest

import minicnn
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import Adam


def small_model():
    return minicnn.Sequential(
        [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2), Dropout(0.3), Flatten(), Dense(3)],
        input_shape=(8, 8, 2),
        seed=0,
    )


def data(n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


def fit_syncs(standin, batches, **options):
    x, y = data(8 * batches)
    model = small_model()
    with standin.count_syncs() as counter:
        model.fit(x, y, optimizer=Adam(model, lr=1e-2), epochs=1, batch_size=8, seed=0, **options)
    return counter


@pytest.mark.parametrize(
    "options",
    [{"verbose": 0}, {"verbose": 2, "validation_data": data(24)}, {"verbose": 0, "augment": minicnn.datasets.augment}],
    ids=["plain", "validation", "augment"],
)
def test_fit_syncs_per_epoch_not_per_step(standin, options):
    few, many = fit_syncs(standin, 2, **options), fit_syncs(standin, 12, **options)
    assert many.total == few.total, f"syncs grow with the number of steps:\n{many.report()}"
    # The epoch summary reads loss and accuracy (2), validation adds its loss and accuracy (2).
    assert few.total <= 2 + 2 * ("validation_data" in options), few.report()


def test_fit_progress_bar_syncs_at_most_once_per_refresh(standin, monkeypatch):
    import minicnn.training as training

    clock = iter(range(0, 10**6))  # every call 1 s later: the bar refreshes at every step
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    counter = fit_syncs(standin, 6, verbose=1)
    # Each refresh reads the running loss and accuracy (2 syncs); then the epoch summary (2).
    assert counter.total <= 2 * 6 + 2, counter.report()


def test_evaluate_and_predict_sync_a_constant_number_of_times(standin):
    model = small_model()
    totals = {}
    for n in (16, 128):
        x, y = data(n)
        with standin.count_syncs() as ev:
            model.evaluate(x, y, batch_size=8)
        with standin.count_syncs() as ev_pred:
            model.evaluate(x, y, batch_size=8, return_predictions=True)
        with standin.count_syncs() as pred:
            model.predict(x, batch_size=8)
        totals[n] = (ev.total, ev_pred.total, pred.total)
    assert totals[16] == totals[128], totals
    assert totals[16][2] == 1  # predict: one host copy of all the probabilities


def test_checkpoint_save_syncs_once_per_array(standin, tmp_path):
    model = small_model()
    x, y = data(16)
    optimizer = Adam(model, lr=1e-2)
    model.fit(x, y, optimizer=optimizer, epochs=1, batch_size=8, verbose=0, seed=0)
    arrays = len(model.named_parameters()) * 3  # weights, Adam's m and v
    with standin.count_syncs() as counter:
        model.save(tmp_path / "m.npz", optimizer=optimizer)
    assert counter.total == arrays, counter.report()
