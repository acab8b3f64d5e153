"""The main job's safety: a run stopped by a signal, a full disk, the memory, a diverging loss or a
refused setting ends with its message and its exit status, leaves no empty folder behind, and says
how to resume when there is something to resume.

Exit statuses: 0 done; 1 stopped by the disk, the memory or a diverging loss; 2 refused (bad data,
arguments or checkpoint); 128 + N interrupted by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .. import backend as backends
from ..datasets import DatasetError
from ..distributed.mpi import abort_on_error
from ..training import TrainingDiverged
from . import memory
from .checkpoint import CheckpointError
from .interrupts import exit_code, signal_name, signals_as_interrupts
from .outputs import OutputError, new_folders, remove_empty
from .resume import how_to_resume


def communicator(args):
    """``--distributed``: the processes' :class:`~minicnn.distributed.Communicator`, else None."""
    if not args.distributed:
        return None
    from ..distributed.mpi import Communicator

    return Communicator()


def batch_refused(args, comm) -> bool:
    """True (rank 0 saying why) when the global ``--batch-size`` does not split over the processes."""
    if comm is not None and args.batch_size % comm.size:
        # every rank sees this alike, so all exit here; rank 0 says why
        if comm.is_root:
            print(
                f"error: --batch-size {args.batch_size} is the global batch and must be a multiple of the "
                f"number of processes, {comm.size} "
                f"(e.g. --batch-size {comm.size * max(1, args.batch_size // comm.size)})",
                file=sys.stderr,
            )
        return True
    return False


def run_safely(train: Callable, args, argv=None) -> int:
    """Call ``train(args, comm)`` and turn every failure into its message and exit status (2: refused,
    1: stopped by the disk, the memory or a diverging loss, 128 + N: signal N); 0 when it is done."""
    comm = communicator(args)
    if batch_refused(args, comm):
        return 2
    made = new_folders(Path(args.out))  # removed again if the run stops before writing anything into them
    # Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt; under mpiexec all ranks stop at the same step.
    with abort_on_error(comm), signals_as_interrupts(defer=comm is not None and comm.size > 1):
        why = None  # why a run stopped (followed by how to resume it)
        try:
            code = train(args, comm)
        except KeyboardInterrupt as exc:  # the last completed epoch's checkpoint stays as it is
            code = exit_code(exc)  # 128 + the signal: 130, 143 (SIGTERM), 129 (SIGHUP)
            why = f"interrupted ({signal_name(exc)})." if comm is None or comm.is_root else None
        except OutputError as exc:  # disk full, read-only --out: every file already there is whole
            code, why = 1, f"error: {exc}"
        except TrainingDiverged as exc:  # the last good checkpoint stays (a resumed run would diverge again)
            print(f"\nerror: {exc}", file=sys.stderr)
            code = 1
        except (DatasetError, CheckpointError, ValueError, backends.BackendError) as exc:
            print(f"error{'' if comm is None or comm.size == 1 else f' (rank {comm.rank})'}: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:  # out of (GPU) memory: which batch, how much, what to do
            if not memory.is_out_of_memory(exc):
                raise
            code, why = 1, f"error: {memory.describe_out_of_memory(exc, args.batch_size)}"
        if code and (comm is None or comm.is_root):
            remove_empty(made)
        if why:
            print(f"\n{why}", file=sys.stderr)
            hint = how_to_resume(args, argv, comm, interrupted=code > 128)
            if hint:
                print(hint, file=sys.stderr)
        if code:
            sys.exit(code)
    return 0
