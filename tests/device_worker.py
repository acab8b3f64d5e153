"""Runs under ``mpiexec`` for tests/test_distributed_devices.py: which GPU does each rank get?

    mpiexec -n 2 python tests/device_worker.py GPU_MODE

The script never calls ``use_local_gpu()``: it makes a ``Communicator``, selects CuPy (the tests'
stand-in, whose ``$CUPY_STANDIN_DEVICES`` pretends to several GPUs), prints the rank's GPU as JSON,
then averages gradients once (the first NCCL reduction is where two ranks on one GPU are refused).
"""

import json
import sys

import numpy as np

import minicnn
from minicnn.distributed import Communicator, abort_on_error
from minicnn.layers import Dense

if __name__ == "__main__":
    comm = Communicator(gpu=sys.argv[1])
    with abort_on_error(comm):
        import cupy

        minicnn.set_backend("cupy")
        print(
            json.dumps({"rank": comm.rank, "local_rank": comm.local_rank, "device": cupy.cuda.Device().id}), flush=True
        )
        model = minicnn.Sequential([Dense(2)], input_shape=(3,), seed=0)
        model.forward(minicnn.get_backend().asarray(np.ones((1, 3), np.float32)))
        comm.average_gradients(model, 1, 2)
        print(json.dumps({"rank": comm.rank, "reduced": True}), flush=True)
