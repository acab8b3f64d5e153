r"""Data-parallel training over MPI: every process holds a whole replica of the model.

    mpiexec -n 4 python examples/train_cifar.py --distributed --batch-size 128

Why averaging gradients *is* large-batch SGD
--------------------------------------------
The loss of a global mini-batch ``B`` is the mean of per-example losses, so its gradient is
the mean of per-example gradients::

    L(w) = 1/|B| sum_{i in B} l_i(w)        grad L = 1/|B| sum_{i in B} grad l_i

Cut ``B`` into disjoint shards ``B_0 .. B_{N-1}``, one per process. Process ``r`` runs the
ordinary forward and backward pass on its shard and gets the gradient of *its* mean loss,
``g_r = 1/|B_r| sum_{i in B_r} grad l_i``. Regrouping the sum above by shard::

    grad L = sum_r (|B_r| / |B|) g_r

which one collective computes: each process scales ``g_r`` by its example count ``|B_r|``,
an MPI *Allreduce* adds the vectors of all processes and hands the sum to every one of
them, and each divides by ``|B|``. With equal shards this is the plain mean of the ``g_r``;
the weights make it exact for the last, short batch of an epoch too (a process may even
have no examples: it contributes zeros). Every process now holds the same gradient, applies
the same optimizer update to the same weights, and the replicas stay identical, bit for
bit: N processes train the very model that one process would train with batch ``|B|``
(up to rounding in the sums), with the work of each batch split N ways.

What differs between processes is only the randomness that should differ: dropout masks
and augmentation come from ``(seed, epoch, rank)``. The shuffle comes from ``(seed, epoch)``
on every rank, so all of them agree on the global batches without talking.

Communication
-------------
One message per step: the gradients of all layers are copied into one preallocated, flat
buffer and reduced in place, instead of one small message per parameter array (latency is
paid once). NumPy buffers go to MPI directly. CuPy buffers go through NCCL when CuPy has it
(``cupy.cuda.nccl``, one GPU per process), else through a CUDA-aware MPI (``gpu="mpi"``:
mpi4py reads the array through ``__cuda_array_interface__``), else through host memory: one
class each in :mod:`minicnn.distributed.transports`.

Failure
-------
Collectives wait for every process: if one dies, the others wait for ever. Wrap the work of
each process in :func:`abort_on_error`, which turns an exception on any rank into
``MPI_Abort``, so ``mpiexec`` stops the whole job with a non-zero status.

A signal (Ctrl-C or SIGTERM, which ``mpiexec`` forwards to every rank) is the exception to
that rule: inside ``interrupts.signals_as_interrupts(defer=True)`` each rank only records
it, and :meth:`Communicator.stop_if_interrupted`, at every training step and every sum,
makes all ranks raise :class:`~minicnn.run.interrupts.Interrupted` at the same step; they then
exit normally, with 128 + the signal number, and no rank is left waiting.

mpi4py is an optional dependency (``pip install -e ".[distributed]"``); this module imports
it only when a :class:`Communicator` is made, so ``import minicnn`` never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import traceback

import numpy as np

from ..backend import get_array_module, to_numpy
from ..run.interrupts import Interrupted, deferring, pending_signal
from . import devices
from .devices import pin_local_gpu
from .transports import gpu_transport

_INSTALL_HINT = 'pip install -e ".[distributed]" (mpi4py and MPICH from PyPI), then run under mpiexec'


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"minicnn.distributed needs mpi4py and an MPI library: {_INSTALL_HINT}") from exc
    return MPI


class Communicator:
    """The processes of one data-parallel job, and the few collectives training needs.

    Args:
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``: every process mpiexec started).
        gpu: how CuPy gradients are reduced: ``"auto"`` (NCCL if available, else host copies),
            ``"nccl"``, ``"mpi"`` (CUDA-aware MPI) or ``"host"``.

    Pass it to ``Sequential.fit(..., communicator=comm)`` and ``evaluate(..., communicator=comm)``.
    """

    def __init__(self, comm=None, gpu="auto"):
        if gpu not in ("auto", "nccl", "mpi", "host"):
            raise ValueError(f"Communicator: gpu must be 'auto', 'nccl', 'mpi' or 'host', got {gpu!r}")
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.gpu = gpu
        self._flat = None  # the preallocated gradient buffer (NumPy or CuPy)
        self._transport = None  # how a CuPy buffer is summed (minicnn.gpu_transports), made on first use
        self.interrupted = None  # the signal every rank stopped for (stop_if_interrupted)
        self.local_rank = devices.local_rank(self.comm, self.MPI)  # rank among the processes on this machine
        pin_local_gpu(self.local_rank)  # GPU local_rank % count, now or when CuPy is selected

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """True on rank 0: the one process that prints and writes files."""
        return self.rank == 0

    # -- splitting work -------------------------------------------------------------------
    def shard_range(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous share of ``n`` items, as even as can be.

        Shares differ by at most one item; with ``n < size`` some ranks get none.
        """
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def shard(self, items):
        """This rank's share of ``items`` (an index array, a batch): ``items[start:stop]``."""
        start, stop = self.shard_range(len(items))
        return items[start:stop]

    def distributed_optimizer(self, optimizer, model=None) -> DistributedOptimizer:
        """``optimizer`` wrapped so that its ``step()`` averages every rank's gradients first."""
        return DistributedOptimizer(optimizer, self, model)

    # -- collectives ----------------------------------------------------------------------
    def average_gradients(self, model, count: int, total: int):
        """Replace every layer's grads by the gradient of the global batch.

        ``count``: examples this rank's grads were computed on (0: it contributes nothing);
        ``total``: examples in the global batch, the sum of ``count`` over ranks.
        After the call every rank holds the same grads: views into one flat buffer.
        """
        self.stop_if_interrupted()
        params = [(layer, name, layer.params[name]) for _, layer, name in model.named_parameters()]
        if not params:
            return
        xp = get_array_module(params[0][2])
        size = sum(p.size for _, _, p in params)
        dtype = params[0][2].dtype
        if (
            self._flat is None
            or self._flat.size != size
            or self._flat.dtype != dtype
            or get_array_module(self._flat) is not xp
        ):
            self._flat = xp.empty(size, dtype=dtype)
        flat, offset = self._flat, 0
        for layer, name, p in params:  # 1. pack: flat = count * g_r, layer after layer
            part = flat[offset : offset + p.size]
            grad = layer.grads.get(name)
            if count == 0 or grad is None:
                part[...] = 0
            else:
                xp.multiply(grad.reshape(-1), dtype.type(count), out=part)
            offset += p.size
        self._allreduce(flat)  # 2. one message: the sum over ranks
        flat /= dtype.type(total)  # 3. the mean over the global batch
        offset = 0
        for layer, name, p in params:  # 4. unpack: grads become views of the buffer
            layer.grads[name] = flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size

    def _allreduce(self, buf):
        """Sum ``buf`` over all ranks, in place (NumPy or CuPy)."""
        MPI = self.MPI
        if self.size == 1:
            return
        if get_array_module(buf) is np:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            return
        if self._transport is None:  # CuPy: one of minicnn.gpu_transports
            self._transport = gpu_transport(self.gpu, self.comm, MPI, self.rank, self.size)
        self._transport.allreduce(buf)

    def broadcast_parameters(self, model):
        """Copy rank 0's weights into every rank's model, in place (replicas start identical
        even when each rank built its model with a different seed)."""
        self._broadcast_arrays([layer.params[name] for _, layer, name in model.named_parameters()])

    def broadcast_state(self, model):
        """Copy rank 0's non-trained arrays (BatchNormalization's moving statistics, ``layer.state``)
        into every rank's model, in place. In training each rank normalises its own share and moves
        its own statistics (as Keras and PyTorch do without a synchronised BN); ``fit`` calls this at
        the end of every epoch, so validation, the checkpoint (rank 0's) and the test see one model."""
        self._broadcast_arrays([a for layer in model.layers for _, a in sorted(layer.state.items())])

    def _broadcast_arrays(self, arrays):
        """Rank 0's values of ``arrays`` (same shapes on every rank) in every rank's, in one message."""
        if self.size == 1 or not arrays:
            return
        host = np.concatenate([to_numpy(a).reshape(-1) for a in arrays])
        self.comm.Bcast(host, root=0)
        offset = 0
        for a in arrays:
            a[...] = get_array_module(a).asarray(host[offset : offset + a.size].reshape(a.shape))
            offset += a.size

    def broadcast(self, obj):
        """Rank 0's ``obj`` (any picklable value) on every rank."""
        return self.comm.bcast(obj, root=0)

    def sum(self, values) -> np.ndarray:
        """Element-wise sum over ranks of a few numbers (float64), e.g. ``[loss_sum, correct, count]``."""
        self.stop_if_interrupted()
        buf = np.array(values, dtype=np.float64)
        if self.size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def gather(self, array):
        """Concatenate every rank's NumPy ``array`` (rank order) on rank 0; ``None`` elsewhere."""
        parts = self.comm.gather(np.asarray(array), root=0)
        return np.concatenate(parts) if self.is_root else None

    def stop_if_interrupted(self):
        """A collective: when any rank holds a pending signal, every rank raises
        :class:`~minicnn.run.interrupts.Interrupted` for it here, together (the highest signal
        number wins). Only inside ``signals_as_interrupts(defer=True)``; otherwise a no-op.
        """
        if not deferring():
            return
        flag = np.array([pending_signal() or 0], dtype=np.int64)
        if self.size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, flag, op=self.MPI.MAX)
        if flag[0]:
            self.interrupted = int(flag[0])
            raise Interrupted(self.interrupted)

    def versions(self) -> dict:
        """``{"mpi4py": ..., "mpi": ...}``: the versions behind this job, for run records."""
        import mpi4py

        return {"mpi4py": mpi4py.__version__, "mpi": self.MPI.Get_library_version().splitlines()[0].strip()}

    def barrier(self):
        """Wait until every rank has reached this call."""
        self.comm.Barrier()

    def replicas_identical(self, model) -> bool:
        """True on every rank when all ranks hold bit-identical parameters (a checksum each)."""
        digest = hashlib.sha256()
        for key, layer, name in model.named_parameters():
            digest.update(key.encode())
            p = layer.params[name]
            digest.update(np.ascontiguousarray(to_numpy(p)).tobytes())
        return len(set(self.comm.allgather(digest.hexdigest()))) == 1

    def use_local_gpu(self) -> int:
        """Use GPU ``local_rank % device_count`` now, whatever the backend; returns its index.

        The Communicator already does this itself (when made, or when the CuPy backend is selected
        later; see :mod:`minicnn.distributed.devices`); the call stays for scripts that make it.
        """
        device = pin_local_gpu(self.local_rank, now=True)
        assert device is not None  # now=True always selects one
        return device

    def abort(self, code: int = 1):
        """Stop every process of the job now (``MPI_Abort``); ``mpiexec`` exits with ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec forwards each rank's output through a pipe; MPI_Abort kills the job at once, and a
        # message still in the pipe would be lost (seen on a loaded machine). A moment lets it through.
        time.sleep(0.2)
        self.comm.Abort(code)


class DistributedOptimizer:
    """An optimizer whose ``step()`` first averages the gradients of all ranks (the pattern of
    Horovod's and ChainerMN's distributed optimizers): the training step stays the same four
    lines, and this wrapper is the only thing data parallelism adds to it.

    Before each step the loop says how many of the global batch's ``total`` examples this rank's
    gradients came from (:meth:`share`); a rank with none still calls ``step()``, contributing
    zeros, because the average is a collective every rank must join.
    """

    def __init__(self, optimizer, comm: Communicator, model=None):
        self.optimizer, self.comm = optimizer, comm
        self.model = optimizer.model if model is None else model
        self.count = self.total = 0

    def share(self, count: int, total: int) -> None:
        """This rank's examples in the coming step, and the global batch's."""
        self.count, self.total = count, total

    def step(self) -> None:
        self.comm.average_gradients(self.model, self.count, self.total)
        self.optimizer.step()


@contextlib.contextmanager
def abort_on_error(comm: Communicator | None):
    """Make a failure on one rank end the whole job instead of hanging the others.

    Inside the block, an exception (a ``KeyboardInterrupt`` included) prints its traceback
    tagged with the rank and calls ``MPI_Abort(1)``; ``sys.exit(code)`` with a non-zero code
    aborts with that code. With ``comm`` None or a single process it changes nothing.
    Once every rank has stopped together for a signal (:meth:`Communicator.stop_if_interrupted`),
    that ``Interrupted`` and any ``sys.exit`` pass through: each rank exits on its own, cleanly.
    """
    if comm is None or comm.size == 1:
        yield
        return
    try:
        yield
    except SystemExit as exc:
        if exc.code is None or exc.code == 0 or comm.interrupted:
            raise
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        comm.abort(exc.code if isinstance(exc.code, int) else 1)
    except Interrupted as exc:
        if not comm.interrupted:  # raised on this rank alone (a second signal): stop them all now
            print(f"[rank {comm.rank} of {comm.size}] {exc}; stopping every rank", file=sys.stderr)
            comm.abort(exc.exit_code)
        raise
    except BaseException:
        print(
            f"[rank {comm.rank} of {comm.size}] failed; stopping every rank\n{traceback.format_exc()}", file=sys.stderr
        )
        comm.abort(1)
