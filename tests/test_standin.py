"""The CPU stand-in for CuPy (tests/standin/cupy) is as strict as CuPy where GPU code breaks.

Each test pins one rule the stand-in enforces; the references are CuPy 14's sources
(cupy/_core/core.pyx, _kernel.pyx, _routines_indexing.pyx) and its public names.
"""

import io
import pickle
import subprocess
import sys

import numpy as np
import pytest

import minicnn

pytestmark = pytest.mark.usefixtures("standin")


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture
def stats(standin):
    return standin


def dev(cp, shape=(2, 3), dtype=np.float32):
    return cp.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


# -- a distinct array type ------------------------------------------------------------------


def test_device_arrays_are_their_own_type_and_the_library_sees_them_as_cupy(cp):
    a = dev(cp)
    assert type(a) is cp.ndarray and type(a).__module__.startswith("cupy") and not isinstance(a, np.ndarray)
    assert minicnn.get_array_module(a) is cp and cp.get_array_module(a) is cp
    assert cp.get_array_module(np.ones(2)) is np
    b = minicnn.get_backend()
    assert b.name == "cupy" and b.xp is cp and cp.cuda.runtime.getDeviceCount() == 1


def test_the_stand_in_is_what_subprocesses_import():
    out = subprocess.run(
        [sys.executable, "-c", "import cupy; print(cupy.__file__)"], capture_output=True, text=True, check=True
    )
    assert "standin" in out.stdout


# -- implicit conversion to NumPy raises ----------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [
        np.asarray,
        np.array,
        np.ascontiguousarray,
        lambda a: np.concatenate([np.ones((1, 3), np.float32), a]),
        lambda a: np.zeros((2, 3), np.float32).__setitem__(..., a),
        lambda a: np.lib.stride_tricks.as_strided(a, (3,), (4,)),
    ],
    ids=["asarray", "array", "ascontiguousarray", "concatenate_mixed", "host_setitem", "np_as_strided"],
)
def test_implicit_conversion_to_numpy_raises(cp, convert):
    with pytest.raises(TypeError):
        convert(dev(cp))


def test_explicit_routes_to_the_host_work_and_copy(cp, stats):
    a = dev(cp)
    h = a.get()
    assert isinstance(h, np.ndarray) and h.tolist() == [[0, 1, 2], [3, 4, 5]]
    h[0, 0] = 99  # a copy: the device is untouched
    assert cp.asnumpy(a)[0, 0] == 0
    out = np.empty((2, 3), np.float32)
    assert a.get(out=out) is out and out[1, 2] == 5
    a.set(np.full((2, 3), 7, np.float32))
    assert minicnn.get_backend().to_numpy(a).sum() == 42
    with pytest.raises(TypeError):
        a.set(np.zeros((2, 3), np.float64))  # CuPy refuses a dtype change in set()
    assert np.asarray(cp.asnumpy(np.ones(2))).sum() == 2  # asnumpy of host data passes through


# -- mixing device and host arrays raises ---------------------------------------------------


@pytest.mark.parametrize(
    "mix",
    [
        lambda a, h: a + h,
        lambda a, h: h + a,
        lambda a, h: a * h[0, 0:1],
        lambda a, h: np.add(a, h),
        lambda a, h: a.__iadd__(h),
        lambda a, h: np.multiply(a, 2, out=h),
        lambda a, h: a @ h.T,
        lambda a, h: np.concatenate([a, h]),
        lambda a, h: np.maximum(a, np.asarray(0.0)),
    ],
    ids=["add", "radd", "mul_row", "np_add", "iadd", "host_out", "matmul", "concatenate", "zero_d_host"],
)
def test_mixing_device_and_host_arrays_raises(cp, mix):
    import cupy

    a, h = dev(cp), np.ones((2, 3), np.float32)
    with pytest.raises(TypeError):
        mix(a, h)
    with pytest.raises(TypeError):
        cupy.add(a, h)


def test_python_and_numpy_scalars_mix_fine(cp):
    a = dev(cp)
    for r in (a * 2, a * np.float32(2), np.float32(2) * a, a + True, a > np.asarray(0.5)):
        assert type(r) is cp.ndarray
    assert (a * np.float32(2)).dtype == np.float32


def test_assignment_from_host_arrays_follows_cupy(cp, stats):
    a = dev(cp)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[...] = np.ones((2, 3), np.float32)  # basic index: CuPy refuses CPU arrays (gh-2079)
    with pytest.raises(ValueError):
        a[0] = [1, 2, 3]
    a[0, 0] = np.float32(5)  # scalars, NumPy's included, are fine
    a[1] = np.asarray(8.0)  # ... and 0-d host arrays (a fill)
    with stats.count_syncs() as c:
        a[cp.asarray([0])] = 1  # an index array: copied to the device
        a[np.array([1]), 0] = np.array([3.0])  # advanced index: the host value is copied over
    assert c.transfers == 3 and c.total == 0
    assert a.get().tolist() == [[1, 1, 1], [3, 8, 8]]


# -- NumPy functions dispatch to the stand-in -----------------------------------------------


def test_numpy_functions_and_ufuncs_dispatch_to_the_device(cp):
    a = dev(cp)
    for r in (
        np.sum(a),
        np.exp(a),
        np.linalg.norm(a),
        np.concatenate([a, a]),
        np.add.reduce(a, axis=0),
        np.where(a > 2, a, 0),
        np.mean(a, axis=1),
    ):
        assert type(r) is cp.ndarray
    assert np.sum(a).shape == ()


def test_a_numpy_function_cupy_lacks_is_refused(cp):
    with pytest.raises(TypeError):
        np.nanpercentile(dev(cp), 50)  # real CuPy has no nanpercentile: no implementation found


def test_reductions_and_scalar_indexing_give_0d_device_arrays(cp, stats):
    a = dev(cp)
    with stats.count_syncs() as c:
        for r in (a.sum(), a.max(), a.argmax(), a[1, 2], a.mean(), (a == a).all()):
            assert type(r) is cp.ndarray and r.shape == ()
    assert c.total == 0
    a[1, 2][...] = 50  # a 0-d *view*: writes land in a
    assert float(a[1, 2]) == 50


# -- views ----------------------------------------------------------------------------------


def test_views_share_memory_as_in_numpy(cp):
    from cupy.lib.stride_tricks import as_strided

    a = cp.zeros((4, 6), dtype=cp.float32)
    a[1:3][...] = 1
    a.reshape(2, 12)[1, :6] += 2
    a.T[5, :] = 4
    col = as_strided(a, shape=(4,), strides=(a.strides[0],))  # column 0 as a view
    col *= 10
    h = a.get()
    assert h[1, 0] == 10 and h[2, 1] == 3 and h[0, 5] == 4 and h[3, 0] == 0
    assert a[1:].base is a and col.base is a
    out = cp.empty((4, 6), dtype=cp.float32)
    assert cp.multiply(a, 2, out=out) is out and np.multiply(a, 2, out=out) is out
    b = a.copy()
    b += 1
    assert float(a.sum()) != float(b.sum())


# -- only CuPy's names ----------------------------------------------------------------------


def test_only_names_real_cupy_has(cp):
    import standin_names

    for name in ("geomspace", "errstate", "nditer", "matrix", "frompyfunc"):  # NumPy has them; CuPy does not
        assert hasattr(np, name)
        with pytest.raises(AttributeError):
            getattr(cp, name)
    with pytest.raises(AttributeError):
        _ = cp.cuda.OutOfMemoryError  # it lives in cupy.cuda.memory
    assert issubclass(cp.cuda.memory.OutOfMemoryError, MemoryError)
    with pytest.raises(AttributeError):
        _ = cp.random.Generator
    public = {n for n in dir(cp) if not n.startswith("_")}
    assert public <= set(standin_names.MODULES["cupy"]) | set(standin_names.IMPORTED_SUBMODULES["cupy"])
    assert set(dir(cp.random)) - set(standin_names.MODULES["cupy.random"]) <= {
        n for n in dir(cp.random) if n.startswith("_")
    }
    with pytest.raises(ImportError):
        from cupy.cuda import nccl  # noqa: F401  (the stand-in is a CuPy without NCCL)


def test_random_state_has_cupys_signature_not_numpys(cp):
    rs = cp.random.RandomState(0)
    u = rs.random_sample((2, 3), dtype=np.float32)  # CuPy takes dtype; NumPy's RandomState does not
    assert type(u) is cp.ndarray and u.dtype == np.float32
    with pytest.raises(TypeError):
        np.random.RandomState(0).random_sample((2, 3), dtype=np.float32)
    with pytest.raises(AttributeError):
        _ = rs.random  # a numpy Generator method, not a RandomState one
    assert (cp.random.RandomState(4).random_sample(5) == cp.random.RandomState(4).random_sample(5)).all()


def test_functions_take_cupys_signature(cp):
    with pytest.raises(TypeError):
        cp.empty((2,), like=np.empty(0))  # NumPy-only keyword
    with pytest.raises(TypeError):
        cp.zeros((2,), device="cpu")
    with pytest.raises(TypeError):
        cp.add(dev(cp), 1, where=True)  # cupy ufuncs take out/dtype/casting only


# -- every host sync is counted, by kind ----------------------------------------------------

SYNCS = {
    "get": lambda cp, a: a.get(),
    "asnumpy": lambda cp, a: cp.asnumpy(a),
    "float": lambda cp, a: float(a[0, 0]),
    "int": lambda cp, a: int(a[0, 0]),
    "complex": lambda cp, a: complex(a[0, 0]),
    "bool": lambda cp, a: bool(a[0, 0]),
    "item": lambda cp, a: a[0, 0].item(),
    "tolist": lambda cp, a: a.tolist(),
    "repr": repr,
    "str": str,
    "format": lambda cp, a: f"{a.sum():.3f}",
    "pickle": lambda cp, a: pickle.dumps(a),
    "tobytes": lambda cp, a: a.tobytes(),
    "synchronize": lambda cp, a: cp.cuda.get_current_stream().synchronize(),
    "save": lambda cp, a: np.savez(io.BytesIO(), a=a),  # dispatches to cupy.savez, which .get()s
    "data_dependent_size": lambda cp, a: a[a > 2],  # CuPy must read the mask's count first
}


@pytest.mark.parametrize("kind", sorted(SYNCS))
def test_each_kind_of_host_sync_is_counted(cp, stats, kind):
    a = dev(cp)
    stats.reset_syncs()
    with stats.count_syncs(trace=True) as c:
        fn = SYNCS[kind]
        fn(cp, a) if kind not in ("repr", "str") else fn(a)
    assert c.total == 1 and dict(c.by_kind) == {kind: 1}, c.report()
    assert stats.syncs() == 1 and stats.sync_kinds() == {kind: 1}
    assert "test_standin.py" in c.tracebacks[0][1]  # where it happened, for failure messages


def test_device_synchronize_and_backend_synchronize_are_counted(cp, stats):
    with stats.count_syncs() as c:
        cp.cuda.Device(0).synchronize()
        cp.cuda.runtime.deviceSynchronize()
        minicnn.get_backend().synchronize()
    assert c.by_kind == {"synchronize": 3}


def test_device_work_iteration_and_transfers_are_not_syncs(cp, stats):
    with stats.count_syncs() as c:
        a = cp.asarray(np.ones((3, 4), np.float32))  # a transfer, not a sync
        b = (a @ a.T).sum(axis=0) * 2
        rows = list(a)  # CuPy iterates as device views: no sync
        b.fill(1)
        cp.random.RandomState(0).random_sample(b.shape, dtype=cp.float32)
    assert c.total == 0 and c.transfers == 1 and type(rows[0]) is cp.ndarray


def test_sync_budget_reports_every_sync(cp, stats):
    a = dev(cp)
    with stats.sync_budget(1):
        float(a.sum())
    with pytest.raises(AssertionError, match=r"2 host syncs, budget 1.*float.*item"):
        with stats.sync_budget(1, "two reads"):
            float(a.sum())
            a.sum().item()
