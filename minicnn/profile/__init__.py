"""Where a training step's time goes, layer by layer: a profile for learners.

    rows = profile_model(cifar10_cnn(seed=0), batch_size=128)
    print(format_table(rows))
    print(reading(rows))       # "87% of the step is convolution; conv 16→32 runs at ..."

or from a shell: ``python -m minicnn.profile [--batch-size N] [--backend numpy|cupy] [--repeats N]``.

Each row puts what a layer *must* do next to what it *did*:

* **FLOPs**, counted by hand from the shapes (a multiply-add is 2 FLOPs; bias additions and
  the element-wise work inside a layer are left out). A convolution of ``Cin`` into ``Cout``
  channels with a ``kh×kw`` kernel does ``2·Ho·Wo·kh·kw·Cin·Cout`` FLOPs per image forward.
  Its backward does the same again for ``dW`` and once more for ``dx`` — except in the
  model's first layer, which never computes ``dx`` in training (nobody needs the gradient of
  the images), so its backward costs one forward, not two. ``Dense`` likewise with
  ``2·D·U`` per example. (For stride 1 minicnn computes ``dx`` on the padded grid, slightly
  more than this count: the count is the mathematical work, not the code's.)
* **bytes** for layers with no FLOPs (activations, pooling, dropout): the least memory
  traffic the layer's arrays imply — read its input, write its output and what it keeps for
  backward; backward reads ``dy`` and the kept array and writes ``dx``. Memory, not
  arithmetic, bounds these layers.
* **work_bytes**: the arrays a layer holds on to, *measured* after a forward and a backward
  from its ``_scratch`` dict (arrays reused from step to step: patch matrix, padded input,
  masks) and its ``cache`` (what forward keeps for backward), each buffer counted once;
  ``work`` names each one.
* **times**: medians over ``repeats`` after one warm-up step, each layer timed on its own
  inside a real training step (forward with ``training=True``, the loss, backward in reverse,
  an Adam update); on a GPU the device is synchronised before every clock reading.
* **gflops** = FLOPs / time, and **peak_fraction** = that over this machine's matrix-product
  peak, measured once per backend with a large float32 GEMM (:func:`matmul_peak`).

The model's weights are restored after profiling (the Adam updates are real, then undone).

One concept per module: :mod:`.counting` (FLOPs, bytes, work arrays, a layer's label),
:mod:`.timing` (the machine's peak, :func:`profile_model`), :mod:`.table` (totals, the
reading, the table), :mod:`.cli` (``python -m minicnn.profile``).
"""

from __future__ import annotations

from .cli import main
from .counting import describe, layer_flops, work_arrays
from .table import format_table, reading, report, totals
from .timing import Profile, matmul_peak, profile_model

__all__ = [
    "profile_model",
    "layer_flops",
    "matmul_peak",
    "totals",
    "reading",
    "format_table",
    "report",
    "describe",
    "work_arrays",
    "Profile",
    "main",
]
