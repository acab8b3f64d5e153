"""The fast kernels, and the one switch that turns them off.

Every layer's ``forward``/``backward`` in :mod:`minicnn.layers` is written as the textbook
maths (``dW = cols.T @ dy``, ``dx = col2im(dcols)``, ``db = dy.sum(0)``). Where the same
numbers can be computed faster, the layer takes one early return into a kernel here, only
while the fast kernels are on (the default)::

    if kernels.fast() and (sh, sw) == (1, 1):          # the one predicate
        return conv_kernels.conv_dx_stride1(dy_grid, W, grid)
    dx_pad = col2im(dy2 @ W2.T, pad_shape, ...)        # the textbook path

A kernel is a function on arrays: arrays in, arrays out, reusable work arrays passed in by
the caller (a layer's ``scratch``). Kernels import only the backend and BLAS, never a layer
(tests/test_structure.py), so each one's maths is written once. One module per layer:
:mod:`.conv` (stride 1: the input gradient, and the forward and weight gradient where
they pay, as shifted in-place GEMMs on one shared-padding grid), :mod:`.pool` (max-pool
without ``where``, and written straight into place), :mod:`.activation` (LeakyReLU's slope by
arithmetic), :mod:`.bias` (bias gradients by BLAS). Both paths give the same numbers up to
rounding (tests/test_kernels.py: float64, 1e-12 relative).

Run a whole model on the reference path with ``minicnn.set_kernels("reference")``, or for a
block with ``with minicnn.use_kernels("reference"): ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

KERNELS = ("fast", "reference")
_active = "fast"


def _check(name: str) -> str:
    if name not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {name!r}")
    return name


def set_kernels(name: str) -> str:
    """Choose the layers' kernels for the whole process: ``"fast"`` (default) or ``"reference"``
    (the textbook maths alone); returns the previous choice."""
    global _active
    previous, _active = _active, _check(name)
    return previous


def get_kernels() -> str:
    """The kernels in use: ``"fast"`` or ``"reference"``."""
    return _active


@contextlib.contextmanager
def use_kernels(name: str) -> Iterator[str]:
    """``with use_kernels("reference"):`` runs the block on those kernels, then restores the choice."""
    previous = set_kernels(name)
    try:
        yield name
    finally:
        set_kernels(previous)


def fast() -> bool:
    """True while the fast kernels are on: the predicate every layer's early return starts with."""
    return _active == "fast"


__all__ = ["KERNELS", "set_kernels", "get_kernels", "use_kernels", "fast"]
