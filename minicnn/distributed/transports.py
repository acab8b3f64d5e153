"""How :class:`minicnn.distributed.Communicator` sums a CuPy gradient buffer over the ranks.

Three transports, one class each, all with ``allreduce(buf)`` (in place):

* :class:`NcclTransport`: NVIDIA's collective library, GPU to GPU (``cupy.cuda.nccl``);
* :class:`CudaMpiTransport`: a CUDA-aware MPI reads device memory itself;
* :class:`HostTransport`: through a host copy, with any MPI.

:func:`gpu_transport` picks one for ``gpu="auto" | "nccl" | "mpi" | "host"``. Untested in this
repository's CI beyond the CuPy stand-in (no GPU there).
"""

from __future__ import annotations

import numpy as np

from ..backend import cupy_module, cupy_nccl, to_numpy
from . import devices


class NcclTransport:
    def __init__(self, comm, MPI, rank: int, size: int):
        devices.refuse_shared_gpus(comm, cupy_module(), MPI.Get_processor_name())  # NCCL needs one GPU per rank
        nccl = cupy_nccl()
        if nccl is None:
            raise RuntimeError("Communicator(gpu='nccl'): this CuPy has no NCCL (pip install nvidia-nccl-cu12)")
        uid = comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)  # rank 0 makes the id
        self.nccl, self.communicator = nccl, nccl.NcclCommunicator(size, uid, rank)

    def allreduce(self, buf) -> None:
        nccl = self.nccl
        kind = nccl.NCCL_FLOAT32 if buf.dtype == np.float32 else nccl.NCCL_FLOAT64
        stream = cupy_module().cuda.get_current_stream()
        self.communicator.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kind, nccl.NCCL_SUM, stream.ptr)


class CudaMpiTransport:
    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI

    def allreduce(self, buf) -> None:
        cupy_module().cuda.get_current_stream().synchronize()  # the gradients are written before MPI reads them
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)


class HostTransport:
    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.host: np.ndarray | None = None

    def allreduce(self, buf) -> None:
        if self.host is None or self.host.shape != buf.shape or self.host.dtype != buf.dtype:
            self.host = np.empty(buf.shape, buf.dtype)
        to_numpy(buf, out=self.host)  # synchronises the stream
        self.comm.Allreduce(self.MPI.IN_PLACE, self.host, op=self.MPI.SUM)
        buf.set(self.host)


def gpu_transport(gpu: str, comm, MPI, rank: int, size: int):
    """The transport for ``gpu``: ``"auto"`` is NCCL where CuPy has it, else through the host."""
    mode = ("nccl" if cupy_nccl() is not None else "host") if gpu == "auto" else gpu
    if mode == "nccl":
        return NcclTransport(comm, MPI, rank, size)
    if mode == "mpi":
        return CudaMpiTransport(comm, MPI)
    return HostTransport(comm, MPI)
