"""The anchors beside PyTorch in ``bench.py --compare``: Keras 3 on JAX (training and inference, in its own
process, ``keras_child.py``) and onnxruntime (inference, in this process, on the network minicnn exports with
its own ``model.save("x.onnx")``). Each gives a runner that ``harness.alternate`` times in turn with minicnn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KERAS_PATH_ENV = "MINICNN_KERAS_PATH"  # where Keras 3 and JAX are installed, if not in this environment


class KerasAnchor:
    """The network in Keras 3 on JAX in a child process, answering one timed repeat per request.

    ``start`` returns an anchor, or None (the reason in ``last_note``) when Keras cannot be imported
    there: the benchmark then goes on without it."""

    last_note = ""

    def __init__(self, proc, info):
        self.proc, self.info = proc, info

    @classmethod
    def start(cls, model, batch: int, seed: int, threads: int, keras_path: str | None):
        folder = Path(tempfile.mkdtemp(prefix="minicnn-keras-anchor-"))
        model.save(str(folder / "model.keras"))
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
        paths = [p for p in (keras_path or os.environ.get(KERAS_PATH_ENV), env.get("PYTHONPATH")) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        cmd = [sys.executable, str(HERE / "keras_child.py"), str(folder / "model.keras"), str(batch), str(seed)]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read().strip().splitlines()
            proc.wait()
            why = err[-1] if err else "no output"
            cls.last_note = (
                f"skipped: Keras 3 on JAX not usable here ({why}); give --keras-path DIR or ${KERAS_PATH_ENV}"
            )
            return None
        return cls(proc, json.loads(line))

    def runner(self, job: str):
        """A runner for ``harness.alternate``: one ``job`` ("train" or "infer") in the child, its seconds."""

        def run():
            self.proc.stdin.write(job + "\n")
            self.proc.stdin.flush()
            return (json.loads(self.proc.stdout.readline())["seconds"],)

        return run

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def onnx_runner(model, x, threads: int):
    """``(runner, note)``: onnxruntime on ``model`` exported by ``model.save("x.onnx")``, one batch ``x``
    per repeat; ``(None, note)`` when onnxruntime or onnx is missing."""
    try:
        import onnxruntime
    except ImportError:
        return None, "skipped: onnxruntime not installed (pip install onnxruntime onnx)"
    path = Path(tempfile.mkdtemp(prefix="minicnn-onnx-anchor-")) / "model.onnx"
    try:
        model.save(str(path))
    except ImportError as e:
        return None, f"skipped: ONNX export needs the onnx package ({e})"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    host = np.ascontiguousarray(np.asarray(x, dtype=np.float32))

    def run():
        start = time.perf_counter()
        session.run(None, {name: host})
        return (time.perf_counter() - start,)

    return run, f"onnxruntime {onnxruntime.__version__}"
