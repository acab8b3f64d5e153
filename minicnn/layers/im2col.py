"""im2col: turn a convolution into one matrix product.

Every output pixel of a convolution is a dot product between the kernel and the
``kh x kw x C`` patch of input under it. Copy each patch into a row of a matrix
(``cols``) and the whole convolution becomes ``cols @ W``: one large, fast BLAS
(or cuBLAS) call instead of loops over pixels.

On NHWC data the patches are a *strided view* of the padded input: moving one
output pixel right moves ``stride`` pixels right in the input, and moving inside
a patch moves one pixel. ``as_strided`` describes that 6-D view without copying;
``reshape`` then copies it once into the contiguous ``cols`` matrix.
"""

from __future__ import annotations

import math

from ..backend import get_array_module


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output length of a sliding window along one axis."""
    return (size + pad_total - kernel) // stride + 1


def padding_amounts(padding, size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding along one axis for ``"valid"``, ``"same"`` or an int.

    ``"same"`` follows Keras/TensorFlow: the output has ``ceil(size / stride)`` pixels
    and any odd leftover padding goes after (bottom/right).
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def pad2d(x, top: int, bottom: int, left: int, right: int, out=None):
    """Zero-pad the H and W axes of an NHWC array: one copy, into ``out`` if given.

    ``out`` (shape ``(N, H+top+bottom, W+left+right, C)``) may hold old data: its border is
    zeroed and its interior overwritten.
    """
    if top == bottom == left == right == 0:
        return x
    xp = get_array_module(x)
    n, h, w, c = x.shape
    if out is None:
        out = xp.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    out[:, :top] = 0
    out[:, top + h :] = 0
    out[:, top : top + h, :left] = 0
    out[:, top : top + h, left + w :] = 0
    out[:, top : top + h, left : left + w, :] = x
    return out


def windows(x_pad, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int):
    """A zero-copy view of all sliding windows: shape ``(N, Ho, Wo, kh, kw, C)``.

    ``x_pad`` is an already padded NHWC array.
    """
    xp = get_array_module(x_pad)
    s_n, s_h, s_w, s_c = x_pad.strides
    n, _, _, c = x_pad.shape
    return xp.lib.stride_tricks.as_strided(
        x_pad, shape=(n, ho, wo, kh, kw, c), strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c)
    )


def im2col(x_pad, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int, out=None):
    """Patches of a padded NHWC array as rows: ``(N*Ho*Wo, kh*kw*C)``, C fastest.

    The column order (kh, kw, C) matches ``W.reshape(kh*kw*C, F)`` for a kernel
    stored as ``(kh, kw, C, F)``, so ``im2col(x) @ W.reshape(-1, F)`` is the convolution.
    """
    xp = get_array_module(x_pad)
    n, c = x_pad.shape[0], x_pad.shape[3]
    if out is None:
        out = xp.empty((n * ho * wo, kh * kw * c), dtype=x_pad.dtype)
    out.reshape(n, ho, wo, kh, kw, c)[...] = windows(x_pad, kh, kw, sh, sw, ho, wo)  # the one copy
    return out


def col2im(dcols, x_shape, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int):
    """The adjoint of ``im2col``: add every patch gradient back where the patch came from.

    dcols:   ``(N*Ho*Wo, kh*kw*C)`` gradient with respect to ``cols``.
    x_shape: the padded input's shape ``(N, Hp, Wp, C)``.
    Returns ``(N, Hp, Wp, C)``. One strided add per kernel offset (kh*kw of them),
    never a loop over pixels; overlapping windows (stride < kernel) add up, as they must.
    """
    xp = get_array_module(dcols)
    n, hp, wp, c = x_shape
    d = dcols.reshape(n, ho, wo, kh, kw, c)
    dx = xp.zeros(x_shape, dtype=dcols.dtype)
    for a in range(kh):
        for b in range(kw):
            dx[:, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw, :] += d[:, :, :, a, b, :]
    return dx
