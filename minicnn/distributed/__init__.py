"""Training on several cores, processes or GPUs: the tools that wrap the model and optimizer.

- :mod:`~minicnn.distributed.threads`: one process, many cores (NumPy): a batch cut into shards
  run at once by a :class:`~minicnn.distributed.threads.ShardedModel` and
  :class:`~minicnn.distributed.threads.ShardedOptimizer` (``minicnn.parallel`` before 0.3.0);
- :mod:`~minicnn.distributed.mpi`: many processes (``mpiexec``): the :class:`Communicator`, the
  :class:`DistributedOptimizer` whose ``step()`` averages every rank's gradients first, and
  :func:`abort_on_error`;
- :mod:`~minicnn.distributed.transports`: how GPU gradients are summed (NCCL, CUDA-aware MPI, host);
- :mod:`~minicnn.distributed.devices`: which GPU each process uses.

The training step (:func:`minicnn.training.train_step`) knows none of them: ``fit`` hands it the
wrapped model and optimizer. mpi4py is imported only when a Communicator is made.
"""

from .mpi import Communicator, DistributedOptimizer, abort_on_error

__all__ = ["Communicator", "DistributedOptimizer", "abort_on_error"]
