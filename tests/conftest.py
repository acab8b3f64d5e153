"""Shared fixtures: the backends present on this machine, and a home of the tests' own.

CuPy cases run on real CuPy where a GPU is usable. Elsewhere (every CI machine) they run on
a strict CPU stand-in for CuPy, ``tests/standin/cupy`` (NumPy underneath, CuPy's rules on
top; see its docstring), so the CuPy code path executes everywhere. Options:
``--cupy-standin`` forces the stand-in even with a GPU; ``--no-cupy-standin`` turns it off
(CuPy cases then skip without a GPU).
"""

import atexit
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Plots are written headless, whatever the machine.
os.environ.setdefault("MPLBACKEND", "Agg")

STANDIN_DIR = Path(__file__).resolve().parent / "standin"
_CUPY = {"mode": None, "skip": None}  # mode: "real", "standin" or "off"

# The CIFAR loader also looks in ~/.keras/datasets, ~/.cache/minicnn and $MINICNN_DATA: the tests
# (and the scripts they start) get an empty home, so a copy of CIFAR-10 on this machine never
# stands in for a test's data. Matplotlib keeps its usual font cache.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.expanduser("~"), ".config", "matplotlib"))
os.environ["HOME"] = tempfile.mkdtemp(prefix="minicnn-tests-home-")
os.environ.pop("MINICNN_DATA", None)
atexit.register(shutil.rmtree, os.environ["HOME"], ignore_errors=True)


def pytest_addoption(parser):
    group = parser.getgroup("cupy")
    group.addoption(
        "--cupy-standin",
        action="store_true",
        help="run CuPy cases on the CPU stand-in (tests/standin/cupy) even where a GPU is usable",
    )
    group.addoption(
        "--no-cupy-standin",
        action="store_true",
        help="never use the CPU stand-in: CuPy cases skip unless real CuPy sees a GPU",
    )


def _is_standin(spec) -> bool:
    return spec is not None and spec.origin is not None and Path(spec.origin).resolve().is_relative_to(STANDIN_DIR)


def _real_cupy_usable() -> bool:
    """Real CuPy installed and seeing a GPU? Asked in a child process, so a CuPy that fails half-way
    leaves nothing behind in this one."""
    spec = importlib.util.find_spec("cupy")
    if spec is None or _is_standin(spec):
        return False
    code = "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() >= 1 else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install_standin():
    """Put the stand-in first on sys.path and on $PYTHONPATH (subprocesses see it too)."""
    path = str(STANDIN_DIR)
    if "cupy" in sys.modules and not _is_standin(getattr(sys.modules["cupy"], "__spec__", None)):
        raise RuntimeError("real CuPy was imported before the stand-in could be installed")
    if path not in sys.path:
        sys.path.insert(0, path)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != path]
    os.environ["PYTHONPATH"] = os.pathsep.join([path] + parts)
    importlib.invalidate_caches()


def pytest_configure(config):
    forced, off = config.getoption("--cupy-standin"), config.getoption("--no-cupy-standin")
    if forced and off:
        raise pytest.UsageError("--cupy-standin and --no-cupy-standin contradict each other")
    real = False if forced else _real_cupy_usable()
    if forced or (not off and not real):
        install_standin()
        _CUPY["mode"] = "standin"
    else:
        _CUPY["mode"] = "real" if real else "off"
    import minicnn
    from minicnn.backend import BackendError

    try:
        minicnn.set_backend("cupy")
    except BackendError as exc:
        _CUPY["skip"] = str(exc)
    finally:
        minicnn.set_backend("numpy")


def pytest_report_header(config):
    mode = _CUPY["mode"]
    if mode == "standin":
        import standin_names

        return (
            f"cupy: CPU STAND-IN (tests/standin/cupy, NumPy "
            f"underneath, names of CuPy {standin_names.CUPY_VERSION}): CuPy cases ran on the CPU; no GPU code ran"
        )
    if mode == "real":
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return f"cupy: real CuPy {cupy.__version__} on {name}"
    return f"cupy: off (--no-cupy-standin and no usable GPU): CuPy cases skip ({_CUPY['skip']})"


def cupy_mode() -> str:
    """``"real"``, ``"standin"`` or ``"off"``."""
    return _CUPY["mode"]


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    """Each backend present in turn; the default (NumPy) is restored afterwards."""
    import minicnn

    if request.param == "cupy" and _CUPY["skip"] is not None:
        pytest.skip(f"CuPy cases need a usable GPU or the stand-in: {_CUPY['skip']}")
    b = minicnn.set_backend(request.param)
    yield b
    minicnn.set_backend("numpy")


@pytest.fixture
def cupy_backend():
    """The CuPy backend alone (real or stand-in); skips when neither is usable."""
    import minicnn

    if _CUPY["skip"] is not None:
        pytest.skip(f"CuPy cases need a usable GPU or the stand-in: {_CUPY['skip']}")
    b = minicnn.set_backend("cupy")
    yield b
    minicnn.set_backend("numpy")


@pytest.fixture
def standin():
    """The CuPy backend on the CPU stand-in, for tests of the stand-in and of host syncs (which only
    the stand-in can count); skips on real CuPy. Yields the ``standin_stats`` module
    (``count_syncs()``, ``sync_budget(n)``)."""
    import minicnn

    if _CUPY["mode"] != "standin":
        pytest.skip("needs the CPU stand-in for CuPy (real CuPy is in use, or --no-cupy-standin)")
    import standin_stats

    minicnn.set_backend("cupy")
    yield standin_stats
    minicnn.set_backend("numpy")


@pytest.fixture(autouse=True)
def _numpy_default():
    import minicnn

    minicnn.set_backend("numpy")
    yield


def host(a):
    from minicnn.backend import to_numpy  # imported late: the stand-in must be installed first

    return to_numpy(a)


def mutated(valid: bytes, edits, cut: int) -> bytes:
    """``valid`` with ``(position, byte)`` edits applied, cut to its first ``cut`` bytes (for fuzzing)."""
    data = bytearray(valid)
    for pos, value in edits:
        data[pos] = value
    return bytes(data[:cut])


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """A small CIFAR-format folder (5 x 40 training rows, 60 test rows) for the script tests."""
    from cifar_fixture import make_cifar_folder

    root = tmp_path_factory.mktemp("cifar")
    make_cifar_folder(root, rows_per_batch=40, test_rows=60)
    return root


def signals_at_default():
    """For ``subprocess.Popen(preexec_fn=...)``: the child takes SIGINT, SIGTERM and SIGHUP at their
    default actions, as from a fresh shell. A test run in the background or under ``nohup`` inherits
    some of them ignored, and an ignored signal stays ignored in the child (Python then installs no
    Ctrl-C handler, and ``signals_as_interrupts`` rightly leaves it ignored)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture(scope="session")
def loader(tmp_path_factory):
    """A child process that runs loads of hostile bytes (tests/loader_child.py): a crash, a hang or a
    runaway allocation fails the one test, not pytest. Its HOME is empty: no CIFAR-10 from the machine."""
    from loader_child import LoaderChild

    home = tmp_path_factory.mktemp("loader-home")
    env = {"HOME": str(home), "USERPROFILE": str(home), "MINICNN_DATA": ""}
    with LoaderChild(env=env, memory_mb=400, seconds=60) as child:
        yield child
