"""What a layer must do, counted from its shapes (FLOPs, bytes), and what it holds (work arrays)."""

from __future__ import annotations

import numpy as np

from ..backend import is_device_array
from ..layers import (
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Residual,
)


def layer_flops(layer, batch_size: int, need_input_grad: bool = True) -> tuple[int, int]:
    """``(forward FLOPs, backward FLOPs)`` of one built layer for ``batch_size`` examples.

    A multiply-add counts 2. Conv2D: ``2·N·Ho·Wo·kh·kw·Cin·Cout`` forward; backward the same
    for ``dW`` plus the same for ``dx`` when ``need_input_grad``. Dense: ``2·N·D·U``, likewise.
    Residual: its layers' and its projection's sums (inside a block every layer but the first
    computes ``dx``). Every other layer: 0 (element-wise: see :func:`profile_model`'s ``bytes``).
    """
    if isinstance(layer, Residual):
        needs = [j > 0 or need_input_grad for j in range(len(layer.layers))] + [need_input_grad]
        counts = [layer_flops(sub, batch_size, need) for sub, need in zip(layer.sublayers(), needs)]
        return sum(f for f, _ in counts), sum(b for _, b in counts)
    if isinstance(layer, Conv2D):
        ho, wo, cout = layer.output_shape
        kh, kw = layer.kernel_size
        cin = layer.input_shape[2]
        fwd = 2 * batch_size * ho * wo * kh * kw * cin * cout
    elif isinstance(layer, Dense):
        fwd = 2 * batch_size * layer.input_shape[0] * layer.units
    else:
        return 0, 0
    return fwd, fwd * (2 if need_input_grad else 1)


def describe(layer) -> str:
    """A short name a learner recognises: ``conv 16→32 3×3``, ``dense 4096→256``, ``maxpool 2×2``."""
    if isinstance(layer, Conv2D):
        kh, kw = layer.kernel_size
        s = "" if layer.strides == (1, 1) else f" /{layer.strides[0]}"
        return f"conv {layer.input_shape[2]}→{layer.filters} {kh}×{kw}{s}"
    if isinstance(layer, Dense):
        return f"dense {layer.input_shape[0]}→{layer.units}"
    if isinstance(layer, LeakyReLU):
        return f"leaky_relu {layer.alpha:g}"
    if isinstance(layer, MaxPool2D):
        return f"maxpool {layer.pool_size[0]}×{layer.pool_size[1]}"
    if isinstance(layer, Dropout):
        return f"dropout {layer.rate:g}"
    if isinstance(layer, AveragePooling2D):
        return f"avgpool {layer.pool_size[0]}×{layer.pool_size[1]}"
    if isinstance(layer, BatchNormalization):
        return "batchnorm"
    if isinstance(layer, GlobalAveragePooling2D):
        return "global avgpool"
    if isinstance(layer, Residual):  # e.g. residual 32→64 (conv, batchnorm, relu, conv, batchnorm; 1×1 shortcut)
        inner = ", ".join(describe(sub).split(" ")[0] for sub in layer.layers)
        shortcut = "identity" if layer.projection is None else describe(layer.projection)
        return f"residual {layer.input_shape[-1]}→{layer.output_shape[-1]} ({inner}; shortcut {shortcut})"
    if isinstance(layer, (ReLU, Flatten)):
        return type(layer).__name__.lower()
    return layer.name or type(layer).__name__


def _arrays(obj):
    """Every NumPy/CuPy array inside ``obj`` (an array, or tuples/lists/dicts of them)."""
    if isinstance(obj, np.ndarray) or is_device_array(obj):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _arrays(item)


def _owner(a):
    """The array that owns ``a``'s memory (a view's base), so a buffer is counted once."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def work_arrays(layer) -> dict:
    """``{name: bytes}`` of the arrays the layer holds now: its ``_scratch`` entries by key,
    then whatever its ``cache`` adds (``cache``, ``cache[1]``, ...), each buffer once; a Residual's are
    its inner layers', keyed ``"<j>/<name>"``."""
    if isinstance(layer, Residual):
        return {f"{j}/{k}": v for j, sub in enumerate(layer.sublayers()) for k, v in work_arrays(sub).items()}
    seen, out = set(), {}
    for key, buf in layer._scratch.items():
        owner = _owner(buf)
        if id(owner) not in seen:
            seen.add(id(owner))
            out[key] = int(owner.nbytes)
    for i, a in enumerate(_arrays(layer.cache)):
        owner = _owner(a)
        if id(owner) not in seen:
            seen.add(id(owner))
            out["cache" if i == 0 else f"cache[{i}]"] = int(owner.nbytes)
    return out


def _nbytes(obj) -> int:
    return sum(int(a.nbytes) for a in _arrays(obj))
