r"""Whitened first-layer filters: a convolution's starting kernel computed from image patches.

Neighbouring pixels look alike, so the ``kh*kw*C`` values of an image patch are strongly
correlated: most of their variance lies along a few smooth directions (the patch's brightness,
gentle colour and intensity gradients) and very little along sharp ones. The eigenvectors of the
patches' covariance ``S = E[p p^T]`` are those directions, their eigenvalues ``lambda`` the
variance along each. A filter ``v / sqrt(lambda + eps)`` along eigenvector ``v`` answers every
patch with a number of unit variance, uncorrelated with the other filters' answers: the first
layer starts out seeing each of the strongest directions at the same loudness instead of
learning that from scratch. Each direction is used twice, as ``+v`` and ``-v``, so that the
LeakyReLU after the convolution passes both signs of it. The model is unchanged; only its
starting weights are (short CIFAR-10 recipes use this trick; the filters go on training).

Shapes:
    images: ``(N, H, W, C)``, standardised as the model will see them
    patches: ``(N * (H-kh+1) * (W-kw+1), kh*kw*C)`` (``im2col`` of the unpadded images)
    returned kernel: ``(kh, kw, C, F)``, F = filters, the layout of ``Conv2D.params["W"]``
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend, to_numpy
from ..layers import Conv2D
from ..layers.im2col import im2col


def patch_eigenbasis(images, kh: int, kw: int, images_per_block: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and eigenvectors (as columns) of the patches' covariance, in float64.

    The covariance ``E[p p^T] - E[p] E[p]^T`` is summed over blocks of ``images_per_block`` images,
    so the patch matrix never exists whole (2,000 CIFAR images would make it 389 MB).
    """
    n, h, w, c = images.shape
    if h < kh or w < kw:
        raise ValueError(f"patch_eigenbasis: images {h}x{w} are smaller than the kernel {kh}x{kw}")
    k = kh * kw * c
    outer, total, count = np.zeros((k, k)), np.zeros(k), 0
    for start in range(0, n, images_per_block):
        block = np.asarray(to_numpy(images[start : start + images_per_block]), dtype=np.float64)
        patches = im2col(block, kh, kw, 1, 1, h - kh + 1, w - kw + 1)  # (patches, kh*kw*C)
        outer += patches.T @ patches
        total += patches.sum(axis=0)
        count += len(patches)
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    return eigenvalues[::-1], eigenvectors[:, ::-1]


def whitened_kernel(images, kernel_size: tuple[int, int], filters: int, eps: float = 5e-4) -> np.ndarray:
    """``(kh, kw, C, filters)``: the ``filters // 2`` strongest whitened directions and their negations.

    ``filters`` must be even and at most twice the patch length ``kh*kw*C``.
    """
    kh, kw = kernel_size
    c = images.shape[-1]
    if filters % 2 or filters > 2 * kh * kw * c:
        raise ValueError(
            f"whitened_kernel: filters must be even and at most 2*kh*kw*C = {2 * kh * kw * c}, got {filters}"
        )
    eigenvalues, eigenvectors = patch_eigenbasis(images, kh, kw)
    half = filters // 2
    directions = eigenvectors[:, :half] / np.sqrt(eigenvalues[:half] + eps)  # (kh*kw*C, half)
    return np.concatenate([directions, -directions], axis=1).reshape(kh, kw, c, filters)


def init_first_conv_whitened(model, images, eps: float = 5e-4, max_images: int = 2000) -> Conv2D:
    """Overwrite the kernel of ``model``'s first layer, a Conv2D, with :func:`whitened_kernel` of the
    first ``max_images`` of ``images`` (2,000 CIFAR images hold 1.8 million patches: plenty) and zero
    its bias; returns that layer."""
    first = model.layers[0]
    if not isinstance(first, Conv2D):
        raise ValueError(
            f"init_first_conv_whitened: the model's first layer is {type(first).__name__}, not a Conv2D "
            "(the filters are computed from the images that layer sees)"
        )
    W, b = first.params["W"], first.params["b"]
    kernel = whitened_kernel(images[:max_images], first.kernel_size, first.filters, eps)
    if kernel.shape != W.shape:
        raise ValueError(f"init_first_conv_whitened: images give a kernel {kernel.shape}, the layer has {W.shape}")
    W[...] = get_backend().asarray(kernel.astype(W.dtype))  # in place: an optimizer may hold these arrays
    b[...] = 0
    return first
