"""The backend switch."""

import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn.backend import BackendError, cupy_available


def test_numpy_backend_round_trip():
    b = minicnn.set_backend("numpy")
    assert b.name == "numpy" and b.xp is np and minicnn.get_backend() is b
    a = b.asarray([1.0, 2.0])
    assert isinstance(b.to_numpy(a), np.ndarray)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="'numpy', 'cupy' or 'auto'"):
        minicnn.set_backend("tpu")


def test_auto_falls_back_to_numpy_without_gpu():
    b = minicnn.set_backend("auto")
    assert b.name == ("cupy" if cupy_available() else "numpy")


def test_cupy_without_gpu_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if not installed (here CuPy, or its stand-in, may be)
    with pytest.raises(BackendError, match=r"\.\[gpu\]"):
        minicnn.set_backend("cupy")


def test_import_never_needs_cupy_and_env_var_sets_default():
    code = "import sys; sys.modules['cupy'] = None; import minicnn; print(minicnn.get_backend().name)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"MINICNN_BACKEND": "numpy", "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "numpy"


def test_host_copy_helpers_on_numpy_scalars_and_lists():
    from minicnn.backend import is_device_array, to_numpy

    a = np.arange(3.0)
    assert not is_device_array(a) and not is_device_array(1.5) and not is_device_array([1, 2])
    assert to_numpy(a) is a  # no copy on the host
    np.testing.assert_array_equal(to_numpy([1, 2]), np.array([1, 2]))
    out = np.empty(3)
    assert to_numpy(a, out=out) is out and np.array_equal(out, a)


# -- the BLAS helpers the layers use ------------------------------------------------------


def _layouts(m):
    """The same matrix C-ordered, Fortran-ordered, and as a strided (non-contiguous) view."""
    wide = np.zeros((m.shape[0], 2 * m.shape[1]), m.dtype)
    wide[:, ::2] = m
    return [m, np.asfortranarray(m), wide[:, ::2]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 3, 4), (300, 32, 16)])
def test_matmul_add_adds_in_place_for_every_layout(backend, dtype, shape):
    from conftest import host

    from minicnn.blas import matmul_add

    m, k, n = shape
    rng = np.random.default_rng(m * k * n)
    a, b, out0 = (rng.standard_normal(s) for s in [(m, k), (k, n), (m, n)])
    expected = out0 + a @ b  # float64 reference
    for A in _layouts(a.astype(dtype)):
        for B in _layouts(b.astype(dtype)):
            out = backend.asarray(out0.astype(dtype))
            result = matmul_add(out, backend.asarray(A), backend.asarray(B))
            assert result is out  # written where it was asked to be
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(host(out), expected, rtol=tol, atol=tol)
    # a row block of a larger array (what the conv's dx writes into) is updated and nothing else
    big = backend.asarray(np.ones((m + 2, n), dtype))
    matmul_add(big[1 : m + 1], backend.asarray(a.astype(dtype)), backend.asarray(b.astype(dtype)))
    big = host(big)
    assert (big[0] == 1).all() and (big[-1] == 1).all()
    np.testing.assert_allclose(big[1 : m + 1], 1 + a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_rows_is_the_axis_0_sum(backend, dtype):
    from conftest import host

    from minicnn.kernels.bias import sum_rows

    a = np.random.default_rng(0).standard_normal((4099, 7))
    got = sum_rows(backend.asarray(a.astype(dtype)))
    assert got.shape == (7,) and got.dtype == dtype
    np.testing.assert_allclose(
        host(got),
        a.astype(dtype).astype(np.float64).sum(axis=0),
        rtol=1e-5 if dtype == np.float32 else 1e-12,
        atol=1e-3 if dtype == np.float32 else 1e-10,
    )


def test_matmul_add_reaches_numpys_own_blas_or_says_why():
    """On NumPy's wheels the GEMM that adds in place is NumPy's own OpenBLAS, called directly."""
    import os

    from threadpoolctl import threadpool_info

    from minicnn import blas

    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    numpy_blas = [
        lib
        for lib in threadpool_info()
        if lib.get("internal_api") == "openblas"
        and os.path.relpath(os.path.abspath(lib["filepath"]), site).startswith("numpy")
    ]
    if not numpy_blas or os.environ.get("MINICNN_NO_DIRECT_BLAS"):
        pytest.skip("this NumPy is not linked to its own OpenBLAS: matmul_add uses the plain expression")
    assert set(blas._numpy_blas_gemms()) == {np.float32, np.float64}


def test_matmul_add_without_direct_blas_gives_the_same_result(monkeypatch):
    from minicnn import blas

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 3))
    direct = blas.matmul_add(np.ones((7, 3)), a, b)
    monkeypatch.setattr(blas, "_gemm", {})  # as where NumPy's BLAS is not found
    plain = blas.matmul_add(np.ones((7, 3)), a, b)
    np.testing.assert_allclose(direct, plain, rtol=1e-13)
    monkeypatch.setenv("MINICNN_NO_DIRECT_BLAS", "1")
    assert blas._numpy_blas_gemms() == {}
