"""How a convolution computes one number, written out: the patch, the kernel, the sums, the bias.

For output pixel ``(i, j)`` of channel ``f`` of a :class:`~minicnn.layers.Conv2D` (as its
docstring has it, ``xp`` being the layer's input padded with zeros the way the layer pads it)::

    y[i, j, f] = b[f] + sum_{a, b', c} xp[i*sh + a, j*sw + b', c] * W[a, b', c, f]

:func:`conv_pixel` computes the right-hand side again in float64, one input channel at a
time, so that the page can show every term; the forward pass's own ``y[i, j, f]`` is what the
total is checked against.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy
from ..layers import Conv2D


def conv_pixel(layer: Conv2D, x, channel: int, row: int, col: int) -> dict:
    """The terms of ``layer``'s output ``y[row, col, channel]`` for one input ``x (H, W, C)`` (no batch axis).

    Returns ``origin`` (the patch's top-left in ``x``; negative inside the padding), ``patch``
    and ``kernel`` as nested lists ``(kh, kw, C)``, ``bias``, ``per_channel`` (``C`` sums of
    patch × kernel), ``dot`` (their total) and ``sum`` (``dot + bias``).
    """
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    pt, pb, pl, pr = layer.pads
    padded = np.pad(to_numpy(x).astype(np.float64), ((pt, pb), (pl, pr), (0, 0)))
    patch = padded[row * sh : row * sh + kh, col * sw : col * sw + kw, :]
    kernel = to_numpy(layer.params["W"])[:, :, :, channel].astype(np.float64)
    bias = float(to_numpy(layer.params["b"])[channel])
    per_channel = (patch * kernel).sum(axis=(0, 1))
    return {
        "origin": [row * sh - pt, col * sw - pl],
        "patch": patch.tolist(),
        "kernel": kernel.tolist(),
        "bias": bias,
        "per_channel": per_channel.tolist(),
        "dot": float(per_channel.sum()),
        "sum": float(per_channel.sum() + bias),
    }
