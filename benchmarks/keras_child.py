"""The Keras 3 anchor's own process: the network minicnn saved as a ``.keras`` file, opened by Keras on
JAX, timed one repeat at a time when the parent asks (``benchmarks/anchors.py`` starts it).

    KERAS_BACKEND=jax python benchmarks/keras_child.py MODEL.keras BATCH SEED

Protocol (one JSON object a line): it prints ``{"ready": ..., "keras": version, "backend": name}``
after compiling both functions (a warm-up of each), then answers each line ``train`` or ``infer``
on its standard input with ``{"seconds": s}``: one ``train_on_batch`` (Adam, softmax cross-entropy
on logits, as minicnn's step) or one ``predict_on_batch`` of the same batch. Its own process
because Keras and JAX live outside minicnn's environment (``--keras-path``).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(argv) -> int:
    path, batch, seed = argv[0], int(argv[1]), int(argv[2])
    import keras

    model = keras.models.load_model(path, compile=False)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], size=batch)
    jobs = {"train": lambda: model.train_on_batch(x, y), "infer": lambda: model.predict_on_batch(x)}
    for job in jobs.values():  # compile outside the timing
        job()
        job()
    print(json.dumps({"ready": True, "keras": keras.__version__, "backend": keras.backend.backend()}), flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        out = jobs[line.strip()]()
        np.asarray(out)  # the result on the host: the computation has finished
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
