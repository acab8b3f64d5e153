"""``cupy.cuda.runtime`` stand-in: one device, the CPU; ``$CUPY_STANDIN_DEVICES`` pretends to more.

The pretend devices differ only in their index and PCI bus id (device ``i`` is on bus ``i``):
enough for tests of which GPU each process of an MPI job picks. Arrays do not record a device.
"""

import os as _os

import standin_names as _names
import standin_stats as _stats

_current = [0]
_TOTAL = 16 * 1024**3


class CUDARuntimeError(RuntimeError):
    def __init__(self, status):
        self.status = status
        super().__init__(f"cudaErrorInvalidDevice: invalid device ordinal (status {status})")


is_hip = False


def getDeviceCount():
    return int(_os.environ.get("CUPY_STANDIN_DEVICES", "1"))


def _check(device):
    if not 0 <= int(device) < getDeviceCount():
        raise CUDARuntimeError(101)


def getDevice():
    return _current[0]


def setDevice(device):
    _check(device)
    _current[0] = int(device)


def getDeviceProperties(device):
    _check(device)
    return {
        "name": b"CuPy CPU stand-in (NumPy; no GPU)",
        "totalGlobalMem": _TOTAL,
        "major": 0,
        "minor": 0,
        "multiProcessorCount": 1,
        "warpSize": 32,
        "pciBusID": int(device),
        "pciDeviceID": 0,
        "pciDomainID": 0,
    }


def deviceSynchronize():
    _stats.record_sync("synchronize")


def deviceGetPCIBusId(device):
    _check(device)
    return f"0000:{int(device):02x}:00.0"


def memGetInfo():
    return _TOTAL, _TOTAL


def runtimeGetVersion():
    return 12000


def driverGetVersion():
    return 12000


def __getattr__(name):
    if name in _names.MODULES["cupy.cuda.runtime"]:
        raise AttributeError(f"cupy stand-in: cupy.cuda.runtime.{name} exists in real CuPy but is not implemented")
    raise AttributeError(f"module 'cupy.cuda.runtime' has no attribute {name!r}")
