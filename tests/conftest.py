"""Shared fixtures: the backends present on this machine, and a home of the tests' own."""
import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

import minicnn
from minicnn.backend import BackendError, to_numpy

# Plots are written headless, whatever the machine.
os.environ.setdefault("MPLBACKEND", "Agg")

# The CIFAR loader also looks in ~/.keras/datasets, ~/.cache/minicnn and $MINICNN_DATA: the tests
# (and the scripts they start) get an empty home, so a copy of CIFAR-10 on this machine never
# stands in for a test's data. Matplotlib keeps its usual font cache.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.expanduser("~"), ".config", "matplotlib"))
os.environ["HOME"] = tempfile.mkdtemp(prefix="minicnn-tests-home-")
os.environ.pop("MINICNN_DATA", None)
atexit.register(shutil.rmtree, os.environ["HOME"], ignore_errors=True)


def _cupy_reason():
    try:
        minicnn.set_backend("cupy")
        return None
    except BackendError as exc:
        return str(exc)
    finally:
        minicnn.set_backend("numpy")


_CUPY_SKIP = _cupy_reason()

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=pytest.mark.skipif(
        _CUPY_SKIP is not None, reason=f"CuPy cases need a usable GPU: {_CUPY_SKIP}")),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend present in turn; the default (NumPy) is restored afterwards."""
    b = minicnn.set_backend(request.param)
    yield b
    minicnn.set_backend("numpy")


@pytest.fixture(autouse=True)
def _numpy_default():
    minicnn.set_backend("numpy")
    yield


def host(a):
    return to_numpy(a)


def mutated(valid: bytes, edits, cut: int) -> bytes:
    """``valid`` with ``(position, byte)`` edits applied, cut to its first ``cut`` bytes (for fuzzing)."""
    data = bytearray(valid)
    for pos, value in edits:
        data[pos] = value
    return bytes(data[:cut])
