"""The CuPy path where reading it against CuPy's source found it wrong, each case on the stand-in:
one GPU per process (and never two ranks on one under NCCL), labels checked on the host, the
in-place GEMM through cuBLAS, one CuPy backend object, and augmentation on the device."""

import numpy as np
import pytest

import minicnn
from minicnn import backend as backend_module
from minicnn import devices
from minicnn.blas import matmul_add
from minicnn.datasets import augment
from minicnn.doctor import diagnose
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import Adam


def small_model(dropout=0.0):
    layers = [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(2)]
    layers += [Dropout(dropout, seed=3)] if dropout else []
    return minicnn.Sequential(layers + [Flatten(), Dense(3)], input_shape=(8, 8, 2), seed=0)


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


# -- 1. one GPU per process ------------------------------------------------------------------


@pytest.fixture
def no_local_rank(monkeypatch):
    monkeypatch.setattr(devices, "_local_rank", None)
    monkeypatch.setattr(backend_module, "_on_cupy_selected", [])


def test_a_local_rank_pins_its_gpu_when_cupy_is_selected(standin, monkeypatch, no_local_rank):
    import cupy

    monkeypatch.setenv("CUPY_STANDIN_DEVICES", "2")
    minicnn.set_backend("numpy")
    try:
        assert devices.pin_local_gpu(3) is None  # NumPy: nothing to choose yet
        minicnn.set_backend("cupy")
        assert cupy.cuda.Device().id == 1  # 3 % 2
        assert devices.pin_local_gpu(2) == 0 and cupy.cuda.Device().id == 0  # CuPy current: at once
    finally:
        cupy.cuda.Device(0).use()


def test_shared_gpus_are_found_by_machine_and_pci_bus():
    ids = [("a", "0000:01:00.0", 0), ("a", "0000:02:00.0", 1), ("b", "0000:01:00.0", 0), ("a", "0000:01:00.0", 0)]
    assert devices.shared_gpus(ids) == [[0, 3]]
    # CUDA_VISIBLE_DEVICES per rank: every rank sees index 0, on a different bus: no sharing
    assert devices.shared_gpus([("a", "0000:01:00.0", 0), ("a", "0000:02:00.0", 0)]) == []


class _OneProcessPerRank:
    """``allgather`` over pretend ranks whose GPUs are given (an mpi4py communicator's one method used)."""

    def __init__(self, identities):
        self.identities = identities

    def allgather(self, mine):
        return self.identities


def test_two_ranks_on_one_gpu_are_refused_before_nccl(standin):
    import cupy

    comm = _OneProcessPerRank([("node1", "0000:00:00.0", 0), ("node1", "0000:00:00.0", 0)])
    with pytest.raises(RuntimeError, match=r"ranks 0, 1 all use GPU 0 \(PCI 0000:00:00.0\) on node1.*gpu='host'"):
        devices.refuse_shared_gpus(comm, cupy, "node1")
    devices.refuse_shared_gpus(
        _OneProcessPerRank([("node1", "0000:00:00.0", 0), ("node1", "0000:01:00.0", 1)]), cupy, "node1"
    )


# -- 2. labels checked on the host -------------------------------------------------------------


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_the_loss_refuses_host_labels_out_of_range(backend, bad):
    logits = backend.asarray(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        SoftmaxCrossEntropy().forward(logits, np.array([0, 1, bad, 2]))
    loss = SoftmaxCrossEntropy().forward(logits, np.array([0, 1, 2, 2]))  # host labels that are fine
    assert float(loss) == pytest.approx(np.log(3))


def test_device_labels_are_not_read_back_and_cupy_would_wrap_them(standin):
    b = minicnn.get_backend()
    rng = np.random.default_rng(1)
    logits = b.asarray(rng.standard_normal((2, 3)).astype(np.float32))
    with standin.count_syncs() as c:
        wrapped = SoftmaxCrossEntropy().forward(logits, b.asarray(np.array([3, 4])))
    assert c.total == 0  # no check of device labels: it would be a sync per step
    same = SoftmaxCrossEntropy().forward(logits, np.array([0, 1]))  # 3 % 3, 4 % 3: what CuPy reads
    assert float(wrapped) == float(same)


def test_fit_evaluate_and_the_doctor_check_device_labels_on_the_host_first(standin):
    b = minicnn.get_backend()
    x, y = data()
    y[5] = 3
    model = small_model()
    with pytest.raises(ValueError, match=r"fit: labels must be in \[0, 3\)"):
        model.fit(b.asarray(x), b.asarray(y), optimizer=Adam(model), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: labels must be in \[0, 3\)"):
        model.evaluate(b.asarray(x), b.asarray(y))
    with pytest.raises(ValueError, match=r"doctor: labels must be in \[0, 3\)"):
        diagnose(model, x, b.asarray(y), verbose=False)


# -- 3. the in-place GEMM through cuBLAS -------------------------------------------------------


@pytest.fixture
def gemm_calls(cupy_backend, monkeypatch):
    """The calls of ``cupy.cublas.gemm`` (real CuPy's on a GPU, the stand-in's elsewhere)."""
    import cupy.cublas

    calls = []
    real = cupy.cublas.gemm

    def spy(*args, **kwargs):
        calls.append((args[:2], kwargs.get("beta")))
        return real(*args, **kwargs)

    monkeypatch.setattr(cupy.cublas, "gemm", spy)
    return calls


@pytest.mark.parametrize("layout", ["C", "F", "a.T", "rows of a larger out"])
def test_matmul_add_on_cupy_is_one_gemm_into_out(gemm_calls, layout):
    b = minicnn.get_backend()
    rng = np.random.default_rng(2)
    a, m, c = rng.standard_normal((6, 4)), rng.standard_normal((4, 5)), rng.standard_normal((9, 5))
    da = b.asarray(a.T.copy()).T if layout == "a.T" else b.asarray(a)
    big = b.asarray(np.array(c, order="F" if layout == "F" else "C"))
    out = big[2:8] if layout == "rows of a larger out" else big[:6]
    if layout == "F":
        out = b.asarray(np.asfortranarray(c[:6]))
    expected = (c[2:8] if layout == "rows of a larger out" else c[:6]) + a @ m
    assert matmul_add(out, da, b.asarray(m)) is out
    np.testing.assert_allclose(b.to_numpy(out), expected, rtol=1e-12)
    assert gemm_calls == [(("N", "N"), 1.0)]


def test_matmul_add_falls_back_where_cublas_cannot_add_in_place(gemm_calls):
    b = minicnn.get_backend()
    out = b.asarray(np.zeros((4, 6)))[:, ::2]  # not contiguous: cuBLAS would write a copy
    a, m = np.ones((4, 2)), np.ones((2, 3))
    matmul_add(out, b.asarray(a), b.asarray(m))
    matmul_add(b.asarray(np.zeros((4, 3), np.float32)), b.asarray(a), b.asarray(m))  # mixed dtypes
    assert gemm_calls == [] and b.to_numpy(out).tolist() == [[2.0] * 3] * 4


def test_a_convolutions_input_gradient_goes_through_cublas(gemm_calls):
    layer = Conv2D(3, 3, padding="same")
    x = minicnn.get_backend().asarray(data(2)[0])
    y = layer.forward(x, training=True)
    layer.backward(y)
    assert len(gemm_calls) == 8  # one per kernel offset but the first, which assigns (3 x 3 - 1)


# -- 4. one CuPy backend object ----------------------------------------------------------------


def test_selecting_cupy_again_keeps_the_backend_and_dropouts_mask_stream(standin):
    first = minicnn.set_backend("cupy")
    assert minicnn.set_backend("cupy") is first and minicnn.set_backend("auto") is first
    layer, twin = Dropout(0.5, seed=4), Dropout(0.5, seed=4)
    x = minicnn.get_backend().asarray(np.ones((2, 50), np.float32))
    masks = [layer.forward(x, training=True).get() for _ in range(2)]
    twin.forward(x, training=True)
    minicnn.set_backend("cupy")  # e.g. a notebook cell run again
    np.testing.assert_array_equal(twin.forward(x, training=True).get(), masks[1])  # the stream went on


# -- 5. augmentation on the device -------------------------------------------------------------


def test_augment_on_a_device_batch_gives_the_host_batchs_crops(standin):
    x = data(6)[0]
    host = augment(x, np.random.default_rng(7))
    with standin.count_syncs() as c:
        device = augment(minicnn.get_backend().asarray(x), np.random.default_rng(7))
    assert type(device).__module__ == "cupy" and c.total == 0
    np.testing.assert_array_equal(device.get(), host)


def test_fit_on_device_data_with_augmentation_makes_no_sync_per_step(standin):
    b = minicnn.get_backend()
    totals = []
    for batches in (2, 8):
        x, y = data(4 * batches)
        model = small_model()
        dx, dy = b.asarray(x), b.asarray(y)
        with standin.count_syncs() as c:
            model.fit(dx, dy, optimizer=Adam(model), epochs=1, batch_size=4, verbose=0, augment=augment, seed=0)
        totals.append(c.total)
    assert totals[0] == totals[1], totals


def test_a_host_augment_function_still_gets_host_batches(standin):
    b = minicnn.get_backend()
    seen = []

    def flip(xb, rng):
        seen.append(type(xb))
        return xb[:, :, ::-1]

    x, y = data(8)
    model = small_model()
    model.fit(b.asarray(x), b.asarray(y), optimizer=Adam(model), epochs=1, batch_size=4, verbose=0, augment=flip)
    assert seen == [np.ndarray, np.ndarray]
