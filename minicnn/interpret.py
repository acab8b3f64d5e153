"""What a trained network has learnt, as arrays: no plotting here (that is :mod:`minicnn.viz`).

    max_stimuli        gradient ascent on the input: the image a filter likes most
    filter_activation  the quantity that ascent climbs
    feature_maps       every conv layer's output for one image, and the class probabilities
    confusion_matrix   counts of (true class, predicted class)
    displayable        standardised images back to RGB in [0, 1]
    synthetic_image    a made-up test picture for when no data is at hand

Usable from a notebook or a test without matplotlib. Array arguments may live on NumPy or
CuPy; results come back as NumPy.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, get_backend, to_numpy
from .layers import BatchNormalization, Conv2D, LeakyReLU, ReLU, no_grad
from .losses import softmax

__all__ = [
    "max_stimuli",
    "filter_activation",
    "feature_maps",
    "confusion_matrix",
    "displayable",
    "synthetic_image",
    "conv_layer_indices",
    "after_activation",
    "spread",
]


def conv_layer_indices(model) -> list[int]:
    """Positions of the model's Conv2D layers, first to last."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]


def after_activation(model, index: int) -> int:
    """The LeakyReLU/ReLU that follows layer ``index`` (past one BatchNormalization between them), else ``index``.

    The documented model puts each convolution's activation in a layer of its own, a ResNet puts
    a BatchNormalization before it (conv -> BN -> ReLU); a filter's response is what comes out of
    that activation.
    """
    layers, nxt = model.layers, index + 1
    if nxt < len(layers) and isinstance(layers[nxt], BatchNormalization):
        nxt += 1  # conv -> BN -> ReLU: the response is what leaves both
    if nxt < len(layers) and isinstance(layers[nxt], (LeakyReLU, ReLU)):
        return nxt
    return index


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``0 .. n-1`` (all of them when ``k >= n``)."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def displayable(images, mean=None, std=None) -> np.ndarray:
    """Standardised images ``(..., H, W, C)`` -> NumPy floats in ``[0, 1]`` ready to draw.

    With ``mean`` and ``std`` (per-channel statistics of 0..255 pixels, as stored in a
    checkpoint) the standardisation is undone: ``(x * std + mean) / 255``, then clipped.
    Without them each image is stretched on its own from its minimum to its maximum.
    """
    x = to_numpy(images).astype(np.float64)
    if mean is not None and std is not None:
        x = (x * to_numpy(std).astype(np.float64) + to_numpy(mean).astype(np.float64)) / 255.0
    else:
        axes = tuple(range(x.ndim - 3, x.ndim))  # the (H, W, C) of each image
        lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
        x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.clip(x, 0.0, 1.0)


def synthetic_image(shape=(32, 32, 3), mean=None, std=None) -> np.ndarray:
    """A made-up test picture in standardised space, for when no data is at hand.

    A sky-to-grass colour gradient with a red disc and a dark square (edges, colours and
    flat areas for the filters to react to), drawn in 0..255 pixels and standardised with
    ``mean``/``std`` (or with its own per-channel statistics when they are not given).
    """
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([max(h - 1, 1), max(w - 1, 1)])[:, None, None]
    rgb = np.stack([60 + 60 * yy, 120 + 60 * yy, 220 - 150 * yy], axis=-1)  # blue sky -> green ground
    disc = (yy - 0.35) ** 2 + (xx - 0.3) ** 2 < 0.2**2
    rgb[disc] = (220, 40, 30)
    rgb[(np.abs(yy - 0.65) < 0.15) & (np.abs(xx - 0.7) < 0.15)] = (30, 30, 30)
    pixels = rgb if c == 3 else np.repeat(rgb.mean(-1, keepdims=True), c, axis=-1)  # grey for c != 3
    if mean is None or std is None:
        mean = pixels.reshape(-1, c).mean(0)
        std = pixels.reshape(-1, c).std(0) + 1e-8
    return ((pixels - to_numpy(mean)) / to_numpy(std)).astype(np.float32)


# -- what a filter likes: gradient ascent on the input ------------------------------------
def _channel_means(a, filters):
    """``a (k, ..., F)``: the spatial mean of channel ``filters[i]`` of item ``i``, shape ``(k,)``."""
    xp = get_array_module(a)
    k = a.shape[0]
    return a.reshape(k, -1, a.shape[-1])[xp.arange(k), :, filters].mean(axis=1)


def _check_target(model, layer_index, filters):
    n_layers = len(model.layers)
    if not isinstance(layer_index, (int, np.integer)) or not -n_layers <= layer_index < n_layers:
        raise ValueError(f"layer_index must be an int in [0, {n_layers}), got {layer_index!r}")
    layer_index = int(layer_index) % n_layers
    channels = model.layers[layer_index].output_shape[-1]
    filters = [int(f) for f in np.atleast_1d(filters)]
    if not filters or min(filters) < 0 or max(filters) >= channels:
        raise ValueError(
            f"filters must be indices in [0, {channels}) for layer {layer_index} "
            f"({model.layers[layer_index].name}), got {filters}"
        )
    return layer_index, filters


def filter_activation(model, layer_index, x, filters) -> np.ndarray:
    """Mean activation of channel ``filters[i]`` at the output of ``layers[layer_index]`` for image ``x[i]``.

    ``x``: standardised images ``(k, H, W, C)``, one per filter. Returns NumPy ``(k,)``.
    This is the quantity :func:`max_stimuli` climbs.
    """
    layer_index, filters = _check_target(model, layer_index, filters)
    backend = get_backend()
    with no_grad():  # nothing to backpropagate: keep no caches
        a = model.forward(backend.asarray(x, dtype=model.dtype), stop=layer_index + 1)
    return to_numpy(_channel_means(a, backend.asarray(filters)))


def max_stimuli(model, layer_index, filters, *, steps=40, lr=0.03, seed=0, noise=0.01) -> np.ndarray:
    """Images that excite the chosen filters most: gradient ascent on the input.

    The course's method. For each filter ``f`` in ``filters`` start from a grey image (all
    zeros in the standardised input space, i.e. the average pixel, plus ``noise``-sized
    Gaussian noise so that symmetric filters get going), and repeat ``steps`` times::

        loss(x) = mean over positions of  a[..., f],   a = layers[:layer_index + 1](x)
        g       = d loss / d x                        (backward through those layers only)
        x      += lr * g / (rms(g) + 1e-8)            (a normalised step: every step moves
                                                      the image by about ``lr`` per pixel)

    ``a`` is the output of ``layers[layer_index]`` itself; to climb a convolution's
    response *after* its activation, pass the index of the LeakyReLU that follows it (as
    :func:`plot_stimuli` does). All filters are climbed at once, as a batch with one image
    per filter: image ``i``'s loss depends only on image ``i``, so the batch gradient of the
    summed losses is each image's own gradient. Layers run in inference mode (no dropout),
    and the first layer is asked for its input gradient (training never asks for it).
    The layers' ``grads`` are overwritten, as by any backward pass.

    Returns:
        NumPy ``(len(filters), H, W, C)``: the stimuli in standardised input space.
    """
    layer_index, filters = _check_target(model, layer_index, filters)
    backend = get_backend()
    xp = backend.xp
    rng = np.random.default_rng(seed)
    start = noise * rng.standard_normal((len(filters),) + tuple(model.input_shape))
    x = backend.asarray(start, dtype=model.dtype)
    chosen = backend.asarray(filters)
    k = len(filters)
    dy = None
    for _ in range(steps):
        a = model.forward(x, stop=layer_index + 1)  # keeps the caches the backward needs
        if dy is None:
            # d(mean of a[i, ..., f_i]) / d a: 1/positions on the chosen channel, 0 elsewhere.
            dy = xp.zeros(a.shape, dtype=a.dtype)
            per_item = dy.reshape(k, -1, a.shape[-1])
            per_item[xp.arange(k), :, chosen] = 1.0 / per_item.shape[1]
        g = model.backward(dy, need_input_grad=True, stop=layer_index + 1)
        rms = xp.sqrt((g * g).mean(axis=tuple(range(1, g.ndim)), keepdims=True))
        x += x.dtype.type(lr) * g / (rms + 1e-8)
    return to_numpy(x)


# -- what the network sees ------------------------------------------------------------------
def feature_maps(model, image):
    """What each conv layer makes of one standardised image ``(H, W, C)``.

    Returns ``(maps, probs)``: ``maps`` maps each Conv2D layer's position to its output
    ``(Ho, Wo, F)`` after the activation that follows it (when there is one), as NumPy;
    ``probs`` is the softmax of the model's output ``(classes,)`` (float64), or None when
    the model's output is not one vector of class scores.
    """
    image = to_numpy(image)
    if image.shape != tuple(model.input_shape):
        raise ValueError(
            f"feature_maps: image must have the model's input shape {tuple(model.input_shape)} "
            f"(one image, no batch axis), got {image.shape}"
        )
    with no_grad():
        outputs = model.activations(get_backend().asarray(image[None], dtype=model.dtype))
    maps = {i: to_numpy(outputs[after_activation(model, i)])[0] for i in conv_layer_indices(model)}
    logits = outputs[-1]
    probs = to_numpy(softmax(logits.astype(np.float64)))[0] if logits.ndim == 2 else None
    return maps, probs


# -- which classes get confused --------------------------------------------------------------
def confusion_matrix(y_true, y_pred, num_classes=None) -> np.ndarray:
    """Counts ``m[t, p]`` of images of true class ``t`` predicted as ``p``: int64 ``(K, K)``.

    ``num_classes`` defaults to one more than the largest label seen. The diagonal holds
    the correct predictions; row ``t`` sums to the number of images of class ``t``.
    """
    t = to_numpy(y_true).astype(np.int64).ravel()
    p = to_numpy(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: y_true and y_pred differ in length ({t.size} vs {p.size})")
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
