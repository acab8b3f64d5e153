"""Plain, obviously-right implementations to test the fast ones against.

Direct loops over output pixels, straight from the definitions. Slow: tiny inputs only.
"""

import numpy as np


def pad(x, pt, pb, pl, pr):
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def conv_forward(x, W, b, stride, pads):
    (sh, sw), (pt, pb, pl, pr) = stride, pads
    xp = pad(x, pt, pb, pl, pr)
    kh, kw, c, f = W.shape
    n, hp, wp, _ = xp.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, ho, wo, f))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]  # (n, kh, kw, c)
            y[:, i, j, :] = np.tensordot(patch, W, axes=([1, 2, 3], [0, 1, 2])) + b
    return y


def conv_backward(x, W, dy, stride, pads):
    (sh, sw), (pt, pb, pl, pr) = stride, pads
    xp = pad(x, pt, pb, pl, pr)
    kh, kw, c, f = W.shape
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    _, ho, wo, _ = dy.shape
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            g = dy[:, i, j, :]  # (n, f)
            dW += np.tensordot(patch, g, axes=([0], [0]))  # (kh, kw, c, f)
            dxp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.tensordot(g, W, axes=([1], [3]))
    h, w = x.shape[1:3]
    return dxp[:, pt : pt + h, pl : pl + w, :], dW, dy.sum(axis=(0, 1, 2))


def maxpool_forward_backward(x, dy, pool, stride):
    (ph, pw), (sh, sw) = pool, stride
    n, h, w, c = x.shape
    ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    y = np.zeros((n, ho, wo, c))
    dx = np.zeros_like(x)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    window = x[b, i * sh : i * sh + ph, j * sw : j * sw + pw, ch]
                    a = np.unravel_index(np.argmax(window), window.shape)
                    y[b, i, j, ch] = window[a]
                    if dy is not None:
                        dx[b, i * sh + a[0], j * sw + a[1], ch] += dy[b, i, j, ch]
    return y, dx


def softmax_cross_entropy(logits, labels):
    """Loss and gradient, one example at a time, straight from the definitions (float64).

    loss_i = log(sum_j exp(z_j - z_label)), by np.logaddexp (exact for tiny losses too);
    grad_i = softmax(z) - onehot(label), whose label entry, p - 1, is written as minus
    the other classes' probabilities (the same number, without cancellation).
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
