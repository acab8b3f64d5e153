"""``cupy.cuda.device`` stand-in."""

import standin_stats as _stats

from . import runtime as _runtime


class Device:
    def __init__(self, device=None):
        self.id = _runtime.getDevice() if device is None else int(device)
        self._prev = []

    def use(self):
        _runtime.setDevice(self.id)

    def synchronize(self):
        _runtime._check(self.id)
        _stats.record_sync("synchronize")

    @property
    def compute_capability(self):
        _runtime._check(self.id)
        return "00"

    @property
    def pci_bus_id(self):
        return _runtime.deviceGetPCIBusId(self.id)

    @property
    def mem_info(self):
        return _runtime.memGetInfo()

    def __enter__(self):
        self._prev.append(_runtime.getDevice())
        _runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc):
        _runtime.setDevice(self._prev.pop())

    def __int__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_device_id():
    return _runtime.getDevice()
