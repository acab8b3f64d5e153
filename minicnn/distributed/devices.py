"""Which GPU each process of a data-parallel job uses: one per process, never two on one.

Under ``mpiexec`` every process starts on GPU 0. A :class:`~minicnn.distributed.Communicator`
therefore asks MPI which processes share its machine (``MPI_Comm_split_type`` with
``COMM_TYPE_SHARED``) and pins GPU ``local rank % number of GPUs`` through
:func:`pin_local_gpu`: with four GPUs, the four processes of a machine get one
each; with ``CUDA_VISIBLE_DEVICES`` set per process by a launcher, each sees one GPU, index 0.

NCCL refuses two ranks on one device (and says so in terms of its own internals), so before
the first NCCL reduction every rank tells the others which GPU it holds, named by machine and
PCI bus id (indices differ when ``CUDA_VISIBLE_DEVICES`` differs), and all of them raise the
same clear error when two share one. Reductions through host memory (``gpu="host"``) may
share a GPU: slow, but correct, and handy on a one-GPU workstation.
"""

from __future__ import annotations

from .. import backend

_local_rank: int | None = None  # this process's rank on its machine, set by a Communicator


def pin_local_gpu(local_rank: int, now: bool = False) -> int | None:
    """Make this process use GPU ``local_rank % number of GPUs`` for every CuPy array it makes.

    ``local_rank`` is the process's rank among the processes on its machine (a
    :class:`~minicnn.distributed.Communicator` passes it). The GPU is chosen at once when the
    CuPy backend is current, else as soon as ``set_backend`` selects it. Returns the GPU's
    index, or None while the backend is NumPy (CuPy is not imported for it) unless ``now``,
    which selects the GPU at once whatever the backend. Build the model after this: arrays stay
    on the GPU they were made on.
    """
    global _local_rank
    _local_rank = int(local_rank)
    if _pin_local_gpu not in backend._on_cupy_selected:  # and again whenever CuPy is selected
        backend._on_cupy_selected.append(_pin_local_gpu)
    if now:
        return _pin_local_gpu(backend.cupy_module())
    current = backend._current
    if current is None or current.name != "cupy":
        return None
    return _pin_local_gpu(current.xp)


def _pin_local_gpu(cupy) -> int | None:
    """Select GPU ``_local_rank % device count`` when a local rank was given; its index."""
    if _local_rank is None:
        return None
    device = _local_rank % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(device).use()
    return device


def local_rank(comm, MPI) -> int:
    """This process's rank among the processes of ``comm`` on its own machine (a collective)."""
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return local.Get_rank()
    finally:
        local.Free()


def gpu_identity(cupy, node: str) -> tuple[str, str, int]:
    """``(machine, PCI bus id, device index)`` of the current GPU: what two ranks compare."""
    device = cupy.cuda.Device()
    return node, device.pci_bus_id, device.id


def shared_gpus(identities) -> list[list[int]]:
    """Groups of ranks (each of two or more) on one GPU: the same machine and PCI bus id
    (``identities[r]`` is rank ``r``'s ``gpu_identity``; indices alone may mislead)."""
    by_gpu: dict = {}
    for rank, (node, bus, _) in enumerate(identities):
        by_gpu.setdefault((node, bus), []).append(rank)
    return [ranks for ranks in by_gpu.values() if len(ranks) > 1]


def refuse_shared_gpus(comm, cupy, node: str):
    """Raise RuntimeError on every rank of ``comm`` (an mpi4py communicator) when two of them hold
    one GPU; a collective, so no rank is left waiting for another that raised."""
    identities = comm.allgather(gpu_identity(cupy, node))
    groups = shared_gpus(identities)
    if not groups:
        return
    node, bus, index = identities[groups[0][0]]
    raise RuntimeError(
        f"Communicator: ranks {', '.join(map(str, groups[0]))} all use GPU {index} (PCI {bus}) on {node}, "
        f"and NCCL needs one GPU per rank; start at most as many processes per machine as it has GPUs "
        f"({cupy.cuda.runtime.getDeviceCount()} here), or reduce through host memory with "
        f"Communicator(gpu='host')"
    )
