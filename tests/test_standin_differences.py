"""The stand-in differs from NumPy where CuPy does (CuPy 14's "Differences between CuPy and NumPy"
page and the sources named in tests/standin/cupy/_core/differences.py), and offers ``cupy.cublas``
with real CuPy's names and checks. Each test shows NumPy's answer beside CuPy's."""

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("standin")


@pytest.fixture
def cp():
    import cupy

    return cupy


# -- out-of-bounds integer-array indices wrap -----------------------------------------------


def test_out_of_bounds_array_indices_wrap_when_reading(cp):
    h = np.arange(12.0).reshape(3, 4)
    d = cp.asarray(h)
    with pytest.raises(IndexError):
        h[np.array([0, 3])]  # NumPy refuses
    assert d[cp.asarray([0, 3])].get().tolist() == [h[0].tolist(), h[0].tolist()]  # CuPy reads row 3 % 3
    assert d[np.array([-4, 5]), np.array([4, 9])].get().tolist() == [h[2, 0], h[2, 1]]  # every array index wraps
    assert d[..., cp.asarray([4])].get().ravel().tolist() == h[:, 0].tolist()  # after an Ellipsis too
    with pytest.raises(IndexError):
        d[3]  # a plain int index still raises, as in CuPy


def test_out_of_bounds_array_indices_wrap_when_writing(cp):
    x = cp.asarray(np.array([0, 1, 2]))
    x[[1, 3]] = 10  # the example of CuPy's page
    assert x.get().tolist() == [10, 10, 2]


def test_duplicate_indices_do_not_keep_numpys_last_value(cp):
    h = np.zeros(2)
    i, v = np.arange(10) % 2, np.arange(10.0)
    h[i] = v
    assert h.tolist() == [8.0, 9.0]  # NumPy: the last write wins
    d = cp.zeros(2)
    d[cp.asarray(i)] = cp.asarray(v)
    assert d.get().tolist() != h.tolist()  # undefined on CuPy: code relying on NumPy's order fails here
    u = cp.zeros((3, 2))
    u[cp.asarray([2, 0]), cp.asarray([1, 1])] = cp.asarray([5.0, 6.0])  # without duplicates: exact
    assert u.get().tolist() == [[0, 6], [0, 0], [0, 5]]


def test_float_to_int_casts_saturate_as_on_the_gpu(cp):
    h = np.array([-1.0, np.inf, np.nan, 2.7, -2.7, 1e12], np.float32)
    d = cp.asarray(h)
    assert d.astype(np.uint32).get().tolist() == [0, 2**32 - 1, 0, 2, 0, 2**32 - 1]
    assert d.astype(np.int32).get().tolist() == [-1, 2**31 - 1, 0, 2, -2, 2**31 - 1]
    assert d.astype(np.float64).get()[3] == pytest.approx(2.7)  # other casts are NumPy's


# -- cupy.cublas ----------------------------------------------------------------------------


def test_cublas_gemm_adds_into_out_in_any_order_and_transposition(cp):
    import cupy.cublas

    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    for order in ("C", "F"):
        out = cp.asarray(np.array(c, order=order))
        assert cupy.cublas.gemm("N", "N", cp.asarray(a), cp.asarray(b), out=out, alpha=1.0, beta=1.0) is out
        np.testing.assert_allclose(out.get(), c + a @ b, rtol=1e-12)
    out = cp.asarray(c)
    cupy.cublas.gemm("T", "N", cp.asarray(a.T.copy()), cp.asarray(b), out=out, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(out.get(), 0.5 * c + 2 * a @ b, rtol=1e-12)
    fresh = cupy.cublas.gemm("N", "T", cp.asarray(a), cp.asarray(b.T.copy()))  # no out: a new F-ordered one
    assert fresh.flags.f_contiguous and np.allclose(fresh.get(), a @ b)


def test_cublas_gemm_refuses_what_cupy_refuses(cp):
    import cupy.cublas

    a, b = cp.ones((2, 3), dtype=cp.float32), cp.ones((3, 2), dtype=cp.float32)
    with pytest.raises(AssertionError):
        cupy.cublas.gemm("N", "N", a, b.astype(cp.float64))  # one dtype
    with pytest.raises(AssertionError):
        cupy.cublas.gemm("N", "N", a, b, out=cp.zeros((2, 2), dtype=cp.float64))
    with pytest.raises(AssertionError):
        cupy.cublas.gemm("N", "N", a, b, out=cp.zeros((3, 3), dtype=cp.float32))
    with pytest.raises(AttributeError):
        cupy.cublas.gemm("N", "N", a, np.ones((3, 2), np.float32))  # a host array
    with pytest.raises(TypeError):
        cupy.cublas.gemm("X", "N", a, b)
    with pytest.raises(TypeError):
        cupy.cublas.gemm("N", "N", a, b, beta=1.0, gamma=2)  # real CuPy's signature
    with pytest.raises(TypeError):
        cupy.cublas.gemm("N", "N", a.astype(cp.int32), b.astype(cp.int32))


def test_cublas_offers_only_real_cupys_names(cp):
    import cupy.cublas
    import standin_names

    assert "cublas" in standin_names.IMPORTED_SUBMODULES["cupy"] and cp.cublas is cupy.cublas
    public = {n for n in vars(cupy.cublas) if not n.startswith("_")}
    assert public <= set(standin_names.MODULES["cupy.cublas"])
    with pytest.raises(AttributeError, match="exists in real CuPy but is not implemented"):
        _ = cupy.cublas.syrk
    with pytest.raises(AttributeError, match="has no attribute"):
        _ = cupy.cublas.sgemm  # the raw binding lives in cupy_backends, not here


# -- pretend devices ------------------------------------------------------------------------


def test_pretend_devices_differ_by_index_and_pci_bus(cp, monkeypatch):
    assert cp.cuda.runtime.getDeviceCount() == 1
    monkeypatch.setenv("CUPY_STANDIN_DEVICES", "3")
    assert cp.cuda.runtime.getDeviceCount() == 3
    buses = {cp.cuda.Device(i).pci_bus_id for i in range(3)}
    assert len(buses) == 3 and all(len(b) == 12 for b in buses)  # "0000:01:00.0", as CUDA writes it
    cp.cuda.Device(2).use()
    try:
        assert cp.cuda.Device().id == 2 and cp.cuda.runtime.getDeviceProperties(2)["pciBusID"] == 2
    finally:
        cp.cuda.Device(0).use()
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.cuda.Device(3).use()
