"""Inference beside onnxruntime: minicnn's ``predict`` and onnxruntime on the same network, exported by
minicnn's own ``save_onnx``, alternating in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/onnx_anchor.py --batch-size 128 --rounds 5

Each round times ``--batches`` batches through minicnn, then the same batches through onnxruntime (and the
next round the other way round), so the VM's drift hits both alike; the median images per second of each and
their ratio are printed with the BLAS kernel threadpoolctl reports. Both use ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=8, help="batches per timed round (default: 8)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians reported (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default: 2)")
    p.add_argument("--model", default="course", help="course or resnet (default: course)")
    args = p.parse_args(argv)

    import onnxruntime
    from threadpoolctl import threadpool_info

    from minicnn.backend import cpu_model
    from minicnn.interop import save_onnx
    from minicnn.models import model_by_name

    model = model_by_name(args.model, seed=0)
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    save_onnx(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batches * args.batch_size, *model.input_shape)).astype(np.float32)

    def run_minicnn():
        return model.predict(x, batch_size=args.batch_size, threads=args.threads)

    def run_onnx():
        return np.concatenate(
            [session.run(None, {"input": x[i : i + args.batch_size]})[0] for i in range(0, len(x), args.batch_size)]
        )

    gap = float(np.abs(run_minicnn() - run_onnx()).max())  # (and a warm-up of both)
    seconds: dict[str, list[float]] = {"minicnn": [], "onnxruntime": []}
    for r in range(args.rounds):
        order = [("minicnn", run_minicnn), ("onnxruntime", run_onnx)]
        for name, run in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    rate = {name: len(x) / statistics.median(values) for name, values in seconds.items()}
    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()]
    print(f"CPU: {cpu_model()}; BLAS: {', '.join(blas)}; onnxruntime {onnxruntime.__version__}")
    print(f"model {args.model}, batch {args.batch_size}, {args.threads} threads, {args.rounds} alternating rounds")
    for name, value in rate.items():
        print(f"  {name:>12}: {value:8.0f} images/s (median)")
    print(f"  predict / onnxruntime: {rate['minicnn'] / rate['onnxruntime']:.2f}x; max |difference| {gap:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
