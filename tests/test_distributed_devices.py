"""Which GPU each rank of an MPI job uses, on 2 ranks of the CuPy stand-in pretending to 1 or 2 GPUs.

The library pins GPU ``local rank % GPU count`` itself (the script under test never asks), and
refuses two ranks on one GPU before NCCL would, on every rank, with a message saying what to do.
"""

import json
import os
import re

import pytest
from test_distributed import ROOT, _skip_without_cupy, mpirun, needs_mpi


def run(gpu_mode, devices):
    _skip_without_cupy("cupy")
    from conftest import cupy_mode

    if cupy_mode() != "standin":
        pytest.skip("pretend GPUs need the CPU stand-in for CuPy")
    os.environ["CUPY_STANDIN_DEVICES"] = str(devices)  # mpirun's environment is a copy of this one
    try:
        result = mpirun([ROOT / "tests" / "device_worker.py", gpu_mode])
    finally:
        del os.environ["CUPY_STANDIN_DEVICES"]
    # the ranks' lines reach mpiexec's stdout interleaved, sometimes on one line: read the objects
    lines = [json.loads(m) for m in re.findall(r"\{[^{}]*\}", result.stdout)]
    return result, lines


@needs_mpi
def test_each_rank_gets_its_own_gpu_without_asking():
    result, lines = run("host", 2)
    assert result.returncode == 0, result.stdout + result.stderr
    placed = sorted((d["rank"], d["local_rank"], d["device"]) for d in lines if "device" in d)
    assert placed == [(0, 0, 0), (1, 1, 1)]
    assert sum("reduced" in d for d in lines) == 2


@needs_mpi
def test_two_ranks_may_share_a_gpu_through_host_memory():
    result, lines = run("host", 1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(d["device"] for d in lines if "device" in d) == [0, 0]


@needs_mpi
def test_two_ranks_on_one_gpu_are_refused_before_nccl():
    result, _ = run("nccl", 1)
    assert result.returncode != 0
    assert "ranks 0, 1 all use GPU 0 (PCI 0000:00:00.0)" in result.stderr, result.stderr
    assert "Communicator(gpu='host')" in result.stderr


@needs_mpi
def test_distinct_gpus_pass_the_check_and_reach_nccl():
    result, _ = run("nccl", 2)
    assert result.returncode != 0  # the stand-in is a CuPy without NCCL: that is the error now
    assert "this CuPy has no NCCL" in result.stderr and "all use GPU" not in result.stderr, result.stderr
