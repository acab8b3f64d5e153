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
    monkeypatch.setitem(sys.modules, "cupy", None)   # as if not installed (here CuPy, or its stand-in, may be)
    with pytest.raises(BackendError, match=r"\.\[gpu\]"):
        minicnn.set_backend("cupy")


def test_import_never_needs_cupy_and_env_var_sets_default():
    code = ("import sys; sys.modules['cupy'] = None; import minicnn; "
            "print(minicnn.get_backend().name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MINICNN_BACKEND": "numpy", "PATH": ""}, check=True)
    assert out.stdout.strip() == "numpy"


def test_host_copy_helpers_on_numpy_scalars_and_lists():
    from minicnn.backend import is_device_array, to_numpy
    a = np.arange(3.0)
    assert not is_device_array(a) and not is_device_array(1.5) and not is_device_array([1, 2])
    assert to_numpy(a) is a                      # no copy on the host
    np.testing.assert_array_equal(to_numpy([1, 2]), np.array([1, 2]))
    out = np.empty(3)
    assert to_numpy(a, out=out) is out and np.array_equal(out, a)
