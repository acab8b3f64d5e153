"""The layers as explicit loops, straight from their definitions: read these first.

Each function computes one layer's forward or backward one output pixel (or one window, or
one unit) at a time, on NumPy, in the input's dtype (use float64). They are slow — tiny
inputs only — and obviously right, which is their use: the tests hold every layer of
:mod:`minicnn.layers` (both kernel paths) to them, and a learner can set them side by side
(CS231n's ``conv_forward_naive`` beside ``conv_forward_fast``)::

    from minicnn.layers import Conv2D, naive
    layer = Conv2D(4, 3)
    y = layer.forward(x)
    y_loops = naive.conv_forward(x, layer.params["W"], layer.params["b"], (1, 1), layer.pads)

Layout NHWC throughout; ``pads = (top, bottom, left, right)``.
"""

from __future__ import annotations

import numpy as np


def pad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Zeros around the H and W axes of ``x (N, H, W, C)``."""
    pt, pb, pl, pr = pads
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, strides: tuple[int, int], pads) -> np.ndarray:
    """``y[n, i, j, f] = b[f] + sum over (a, b', c) of x_pad[n, i*sh + a, j*sw + b', c] * W[a, b', c, f]``.

    x: ``(N, H, W, C)``; W: ``(kh, kw, C, F)``; b: ``(F,)``. Returns ``(N, Ho, Wo, F)``.
    """
    sh, sw = strides
    xp = pad(x, pads)
    kh, kw, c, f = W.shape
    n, hp, wp, _ = xp.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, ho, wo, f), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]  # (N, kh, kw, C): what pixel (i, j) sees
            for k in range(f):
                y[:, i, j, k] = (patch * W[:, :, :, k]).sum(axis=(1, 2, 3)) + b[k]
    return y


def conv_backward(x: np.ndarray, W: np.ndarray, dy: np.ndarray, strides: tuple[int, int], pads):
    """``(dx, dW, db)`` of :func:`conv_forward` given ``dy (N, Ho, Wo, F)``.

    Output pixel ``(i, j)`` multiplied its patch by ``W``, so it sends ``dy[:, i, j] @ W.T``
    back to that patch (``dx``) and ``patch.T @ dy[:, i, j]`` to the kernel (``dW``); every
    pixel added ``b``, so ``db`` sums ``dy`` over everything but the channel.
    """
    sh, sw = strides
    pt, pb, pl, pr = pads
    xp = pad(x, pads)
    kh, kw, c, f = W.shape
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    _, ho, wo, _ = dy.shape
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            g = dy[:, i, j, :]  # (N, F)
            dW += np.tensordot(patch, g, axes=([0], [0]))  # (kh, kw, C, F)
            dxp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.tensordot(g, W, axes=([1], [3]))
    h, w = x.shape[1:3]
    return dxp[:, pt : pt + h, pl : pl + w, :], dW, dy.sum(axis=(0, 1, 2))


def _window_winner(window: np.ndarray) -> tuple[int, int]:
    """Position of a window's largest value; the first one in row order on a tie."""
    a, b = np.unravel_index(np.argmax(window), window.shape)
    return int(a), int(b)


def maxpool_forward(x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """``y[n, i, j, c] = max over the (ph, pw) window at (i*sh, j*sw) of x[n, ..., c]``."""
    (ph, pw), (sh, sw) = pool, strides
    n, h, w, c = x.shape
    ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    y = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for m in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    y[m, i, j, ch] = x[m, i * sh : i * sh + ph, j * sw : j * sw + pw, ch].max()
    return y


def maxpool_backward(x: np.ndarray, dy: np.ndarray, pool: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """``dx`` of :func:`maxpool_forward`: each window's ``dy`` goes to its (first) maximum alone;
    windows that overlap and share a winner add up."""
    (ph, pw), (sh, sw) = pool, strides
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    for m in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    a, b = _window_winner(x[m, i * sh : i * sh + ph, j * sw : j * sw + pw, ch])
                    dx[m, i * sh + a, j * sw + b, ch] += dy[m, i, j, ch]
    return dx


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[n, u] = b[u] + sum over d of x[n, d] * W[d, u]``; x ``(N, D)``, W ``(D, U)``."""
    n, d = x.shape
    units = W.shape[1]
    y = np.zeros((n, units), dtype=x.dtype)
    for m in range(n):
        for u in range(units):
            y[m, u] = b[u] + sum(x[m, k] * W[k, u] for k in range(d))
    return y


def dense_backward(x: np.ndarray, W: np.ndarray, dy: np.ndarray):
    """``(dx, dW, db)`` of :func:`dense_forward`: ``dW[d, u] = sum over n of x[n, d] * dy[n, u]``,
    ``db[u] = sum over n of dy[n, u]``, ``dx[n, d] = sum over u of dy[n, u] * W[d, u]``."""
    n, d = x.shape
    units = W.shape[1]
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(units, dtype=dy.dtype)
    for m in range(n):
        for u in range(units):
            db[u] += dy[m, u]
            for k in range(d):
                dW[k, u] += x[m, k] * dy[m, u]
                dx[m, k] += dy[m, u] * W[k, u]
    return dx, dW, db


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """``(loss, dlogits)``, one example at a time.

    ``loss_i = log(sum_j exp(z_j - z_label))`` by ``np.logaddexp`` (exact for tiny losses too);
    ``dlogits_i = (softmax(z) - onehot(label)) / N``, whose label entry, ``p - 1``, is written as
    minus the other classes' probabilities (the same number, without cancellation).
    """
    n = logits.shape[0]
    loss, grad = 0.0, np.zeros_like(logits)
    for i in range(n):
        z = logits[i]
        lse = np.logaddexp.reduce(z)
        loss += np.logaddexp.reduce(z - z[labels[i]]) / n
        p = np.exp(z - lse)
        grad[i] = p
        grad[i, labels[i]] = -np.delete(p, labels[i]).sum()
    return loss, grad / n


def avgpool_forward(x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int], pads) -> np.ndarray:
    """``y[n, i, j, c]`` = the mean of the *real* pixels of the ``(ph, pw)`` window at ``(i*sh - top,
    j*sw - left)``: padding (``pads = (top, bottom, left, right)``) is not counted, as in Keras."""
    (ph, pw), (sh, sw) = pool, strides
    pt, pb, pl, pr = pads
    n, h, w, c = x.shape
    ho, wo = (h + pt + pb - ph) // sh + 1, (w + pl + pr - pw) // sw + 1
    y = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            top, left = max(i * sh - pt, 0), max(j * sw - pl, 0)
            bottom, right = min(i * sh - pt + ph, h), min(j * sw - pl + pw, w)
            y[:, i, j, :] = x[:, top:bottom, left:right, :].sum(axis=(1, 2)) / ((bottom - top) * (right - left))
    return y


def avgpool_backward(x_shape, dy: np.ndarray, pool: tuple[int, int], strides: tuple[int, int], pads) -> np.ndarray:
    """``dx`` of :func:`avgpool_forward`: each window's ``dy`` shared evenly by its real pixels."""
    (ph, pw), (sh, sw) = pool, strides
    pt, _, pl, _ = pads
    _, h, w, _ = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            top, left = max(i * sh - pt, 0), max(j * sw - pl, 0)
            bottom, right = min(i * sh - pt + ph, h), min(j * sw - pl + pw, w)
            share = dy[:, i, j, :] / ((bottom - top) * (right - left))
            dx[:, top:bottom, left:right, :] += share[:, None, None, :]
    return dx


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """Training-mode batch normalisation, one channel at a time, as a graph of small steps:
    ``mu -> xc = x - mu -> var -> std -> xhat = xc / std -> y = gamma * xhat + beta``.

    x: ``(..., C)`` (every axis but the last is reduced). Returns ``(y, cache)``; the cache
    holds each channel's intermediate values for :func:`batchnorm_backward`."""
    columns = x.reshape(-1, x.shape[-1])
    m = columns.shape[0]
    y, cache = np.zeros_like(columns), []
    for ch in range(columns.shape[1]):
        col = columns[:, ch]
        mu = sum(col) / m
        xc = col - mu
        var = sum(xc * xc) / m
        std = np.sqrt(var + eps)
        xhat = xc / std
        y[:, ch] = gamma[ch] * xhat + beta[ch]
        cache.append((xc, std, xhat, gamma[ch]))
    return y.reshape(x.shape), cache


def batchnorm_backward(dy: np.ndarray, cache):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`, backwards through its graph node by
    node (no closed form): the compact formula of :class:`~minicnn.layers.BatchNormalization` must
    agree with it."""
    rows = dy.reshape(-1, dy.shape[-1])
    m = rows.shape[0]
    dx, dgamma, dbeta = np.zeros_like(rows), np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
    for ch, (xc, std, xhat, g) in enumerate(cache):
        d = rows[:, ch]
        dbeta[ch] = sum(d)  # y = gamma * xhat + beta
        dgamma[ch] = sum(d * xhat)
        dxhat = d * g
        dxc = dxhat / std  # xhat = xc / std: through the numerator...
        dstd = -sum(dxhat * xc) / std**2  # ...and through the denominator
        dvar = dstd / (2 * std)  # std = sqrt(var + eps)
        dxc = dxc + dvar * 2 * xc / m  # var = sum(xc^2) / m
        dmu = -sum(dxc)  # xc = x - mu
        dx[:, ch] = dxc + dmu / m  # mu = sum(x) / m
    return dx.reshape(dy.shape), dgamma, dbeta
