"""Pictures of the network itself: its kernels, what its filters like, what it sees."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..backend import to_numpy
from ..interpret import after_activation, conv_layer_indices, displayable, feature_maps, max_stimuli, spread
from ..layers import Conv2D
from .figures import _class_name, _figure, _layer_name, _save, _show_image

# What a learner should expect, said in the figures (seen on the README's quick run and on --recipe fast).
EXPECT_FILTERS = (
    "After 3 epochs on 10,000 images they still look like coloured noise, much like their random start;\n"
    "after the fast recipe's 10 epochs on 50,000: flat colour patches, light-dark edges in several\n"
    "orientations, centre-surround spots"
)
EXPECT_OTHER_FILTERS = (
    "Not the course's first layer (3×3, 16 filters), whose runs these captions describe. From a whitened start\n"
    "(--whiten-init) a first layer begins as pairs of opposite patterns, a kernel and its negative, and keeps many"
)
COURSE_FIRST_KERNEL = (3, 3, 3, 16)  # (kh, kw, C, filters) of the course model's first layer: the captions' model


def course_captions(first_kernel) -> bool:
    """True if a first layer of this kernel shape is the course's, whose runs the captions describe."""
    return tuple(first_kernel.shape) == COURSE_FIRST_KERNEL


EXPECT_STIMULI = (
    "After 3 epochs on 10,000 images: saturated colour noise and checkerboards; after the fast recipe's\n"
    "10 epochs on 50,000: flat colours and black-and-white stripes first, oriented stripes next, textures deeper"
)


# -- the learnt kernels ------------------------------------------------------------------
def layer_label(model, index: int) -> str:
    """A layer as a learner finds it in the model: its type, its place among the layers of that
    type, and its shapes, e.g. ``"Conv2D 2 of 4: 3×3, 16→32 channels, 32×32 out"``."""
    layer = model.layers[index]
    kind = type(layer)
    same = [i for i, other in enumerate(model.layers) if type(other) is kind]
    label = f"{kind.__name__} {same.index(index) + 1} of {len(same)}"
    if isinstance(layer, Conv2D):
        (kh, kw), c_in = layer.kernel_size, layer.input_shape[-1]
        h, w, c_out = layer.output_shape
        return f"{label}: {kh}×{kw}, {c_in}→{c_out} channels, {h}×{w} out"
    return f"{label}: output {'×'.join(map(str, layer.output_shape))}"


def plot_filters(layer, path, title=None, max_filters=64, max_channels=16):
    """Draw a Conv2D layer's kernels ``W (kh, kw, c_in, F)``.

    A first layer (``c_in`` 3, or 1 for grey images) shows each of its ``F`` kernels as one
    small RGB (grey) image labelled ``filter i``, all on one shared scale drawn beside them:
    grey is a zero weight, a channel brighter than grey a positive weight for that colour, so a
    filter that stays grey learnt little. After a short run they still look like coloured noise;
    a trained model's are smooth colour patches, edges and spots (the figure says so). A deeper
    layer's kernels are not images, so they are drawn as a grid of ``kh x kw`` weight patches,
    one row per filter and one column per input channel (the first ``max_channels`` of each,
    first 16 by default), on one shared diverging scale: red for positive weights, blue for
    negative.
    """
    if not isinstance(layer, Conv2D):
        raise TypeError(f"plot_filters: needs a Conv2D layer, got {type(layer).__name__}")
    w = to_numpy(layer.params["W"]).astype(np.float64)
    if w.shape[2] in (1, 3):
        fig = _draw_image_kernels(w, _layer_name(layer), title, max_filters)
    else:
        fig = _draw_kernel_grid(w, _layer_name(layer), title, min(max_filters, 16), max_channels)
    return _save(fig, path)


def _draw_image_kernels(w, name, title, max_filters) -> Figure:
    kh, kw, c_in, f = w.shape
    n = min(f, max_filters)
    ncols = min(8, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(max(6.0, 1.15 * ncols + 1.2), 1.2 * nrows + 1.1)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    limit = float(np.abs(w[..., :n]).max()) or 1.0
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _show_image(ax, 0.5 + w[:, :, :, i] / (2 * limit), f"filter {i}", fontsize=9)
    # One scale for all tiles (zero is grey), so filters compare: a faint tile is a weak filter.
    fig.colorbar(
        ScalarMappable(Normalize(-limit, limit), cmap="gray"), ax=axes, shrink=0.8, label="weight (each of R, G, B)"
    )
    shown = f"{n} of {f}" if n < f else f"all {f}"
    fig.suptitle(
        title
        or f"{name}: {shown} learnt {kh}×{kw} kernels as {'RGB' if c_in == 3 else 'grey'} images\n"
        f"(one shared scale: grey = 0, brighter = a positive weight for that colour)",
        fontsize=11,
    )
    fig.supxlabel((EXPECT_FILTERS if course_captions(w) else EXPECT_OTHER_FILTERS) + ".", fontsize=8)
    return fig


def _draw_kernel_grid(w, name, title, max_filters, max_channels) -> Figure:
    kh, kw, c_in, f = w.shape
    nf, nc = min(f, max_filters), min(c_in, max_channels)
    # One mosaic image, cells separated by one blank (NaN) pixel: far quicker than nf*nc axes.
    mosaic = np.full((nf * (kh + 1) - 1, nc * (kw + 1) - 1), np.nan)
    for r in range(nf):
        for c in range(nc):
            mosaic[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = w[:, :, c, r]
    limit = float(np.nanmax(np.abs(mosaic))) or 1.0
    cell = 0.42
    fig = _figure(max(7.0, cell * nc + 2.2), max(3.5, cell * nf + 1.3))  # room for the title
    ax = fig.add_subplot()
    im = ax.imshow(
        mosaic, cmap=colormaps["RdBu_r"].with_extremes(bad="white"), vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax.set_yticks([r * (kh + 1) + (kh - 1) / 2 for r in range(nf)], [f"filter {r}" for r in range(nf)], fontsize=8)
    ax.set_xticks([c * (kw + 1) + (kw - 1) / 2 for c in range(nc)], [str(c) for c in range(nc)], fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("input channel")
    for side in ax.spines.values():
        side.set_visible(False)
    fig.colorbar(im, ax=ax, shrink=0.6, label="weight")
    fig.suptitle(
        title
        or f"{name}: {kh}×{kw} kernels W[:, :, channel, filter]\n"
        f"filters 0–{nf - 1} of {f} (rows) × input channels 0–{nc - 1} of {c_in} (columns)",
        fontsize=11,
    )
    return fig


# -- what a filter likes (the ascent itself is minicnn.interpret.max_stimuli) ---------------
def plot_stimuli(model, path, layers=None, filters_per_layer=6, mean=None, std=None, *, steps=40, lr=0.03, seed=0):
    """Draw the max-stimulus image (:func:`max_stimuli`) of a few filters of each conv layer.

    One row per Conv2D layer (or per index in ``layers``), titled with what the layer is
    (:func:`layer_label`: ``Conv2D 2 of 4: 3×3, 16→32 channels, 32×32 out``), holding
    ``filters_per_layer`` filters spread evenly over its channels, each tile labelled ``filter 5``. A filter's
    response is read after the activation that follows its convolution (LeakyReLU in the
    documented model), when there is one. Tiles are converted back to RGB with
    :func:`displayable`. With ``mean``/``std`` the standardisation is undone: every tile is in
    pixel values, one shared 0–255 scale drawn beside each row. Without them each tile is
    stretched on its own from its minimum to its maximum, and the range it was stretched from
    (in the model's input units) is written under it. The figure says which, and what to expect
    after a short run and after a trained one (:data:`EXPECT_STIMULI`).
    """
    indices = conv_layer_indices(model) if layers is None else [int(i) for i in layers]
    if not indices:
        raise ValueError("plot_stimuli: the model has no Conv2D layer")
    rows = []
    for i in indices:
        target = after_activation(model, i)
        filters = spread(model.layers[target].output_shape[-1], filters_per_layer)
        images = to_numpy(max_stimuli(model, target, filters, steps=steps, lr=lr, seed=seed))
        ranges = [(float(im.min()), float(im.max())) for im in images]
        rows.append((layer_label(model, i), filters, displayable(images, mean, std), ranges))
    shared = mean is not None and std is not None
    ncols = max(len(f) for _, f, _, _ in rows)
    fig = _figure(max(7.5, 1.45 * ncols + 1.3), 1.9 * len(rows) + 1.3)  # wide enough for the title
    panels = np.atleast_1d(fig.subfigures(len(rows), 1))
    for (label, filters, images, ranges), panel in zip(rows, panels):
        axes = panel.subplots(1, ncols, squeeze=False)[0]
        for j, ax in enumerate(axes):
            if j < len(filters):
                _show_image(ax, images[j], f"filter {filters[j]}")
                if not shared:  # a stretched tile hides how strong it is: its range says
                    ax.set_xlabel(f"{ranges[j][0]:.2g} to {ranges[j][1]:.2g}", fontsize=7)
            else:
                ax.axis("off")
        if shared:
            key = ScalarMappable(Normalize(0, 255), cmap="gray")
            panel.colorbar(key, ax=axes, shrink=0.9, ticks=[0, 128, 255], label="pixel (R, G, B)")
        panel.suptitle(label, fontsize=10)
    scale = (
        "Colours are pixel values, as in a photo (standardisation undone, clipped to 0–255): one scale for all tiles."
        if shared
        else "Each tile is stretched on its own from its minimum (black) to its maximum (white): the range under it."
    )
    fig.suptitle(
        f"Max-stimulus patterns: {steps} steps of gradient ascent from a grey image\n"
        f"on a filter's mean activation (after the layer's activation function)",
        fontsize=11,
    )
    first = model.layers[conv_layer_indices(model)[0]].params["W"]
    fig.supxlabel(f"{scale}\n{EXPECT_STIMULI}." if course_captions(first) else scale, fontsize=8)
    return _save(fig, path)


# -- what the network sees -----------------------------------------------------------------
def plot_feature_maps(
    model, image, path, mean=None, std=None, true_label=None, predicted_label=None, class_names=None, max_maps=16
):
    """Draw one input image and what each conv layer makes of it.

    ``image`` is one standardised ``(H, W, C)`` input. The top row shows it (de-standardised
    with :func:`displayable`) titled with its true and predicted class and, for a
    classifier, the predicted class probabilities. Below, for each Conv2D layer, a grid of
    its first ``max_maps`` output channels after the layer's activation function (the
    LeakyReLU that follows it, when there is one), all of a layer's maps on one colour scale
    (yellow = strong), drawn beside them, so that its channels compare: a dark map is a
    channel that barely responds to this image. Each layer is titled with what it is
    (:func:`layer_label`). ``predicted_label`` defaults to the model's own prediction.
    """
    maps_by_layer, probs = feature_maps(model, image)
    image = to_numpy(image)
    if probs is not None and predicted_label is None:
        predicted_label = int(probs.argmax())

    convs = conv_layer_indices(model)
    ncols = 8
    grid_rows = [math.ceil(min(max_maps, model.layers[i].output_shape[-1]) / ncols) for i in convs]
    heights = [2.4] + [1.2 * r + 0.45 for r in grid_rows]
    fig = _figure(1.15 * ncols + 0.3, sum(heights) + 0.2)
    panels = fig.subfigures(len(heights), 1, height_ratios=heights)
    panels = np.atleast_1d(panels)

    # The input, and what the model made of it.
    top = panels[0]
    ax_img, ax_prob = top.subplots(1, 2, width_ratios=[1, 2.2])
    parts = [] if true_label is None else [f"true: {_class_name(true_label, class_names)}"]
    if predicted_label is not None:
        confidence = f" ({probs[int(predicted_label)]:.0%})" if probs is not None else ""
        parts.append(f"predicted: {_class_name(predicted_label, class_names)}{confidence}")
    title = "   ".join(parts) or "input image"
    _show_image(ax_img, displayable(image, mean, std), "input image", fontsize=9)
    if probs is not None and len(probs) <= 20:
        names = [_class_name(k, class_names) for k in range(len(probs))]
        # Grey bars; the true class green; the predicted class blue, or red when it is wrong.
        colours = ["tab:gray"] * len(probs)
        if predicted_label is not None and 0 <= int(predicted_label) < len(probs):
            colours[int(predicted_label)] = "tab:blue" if true_label is None else "tab:red"
        if true_label is not None and 0 <= int(true_label) < len(probs):
            colours[int(true_label)] = "tab:green"
        ax_prob.barh(range(len(probs)), probs, color=colours)
        ax_prob.set_yticks(range(len(probs)), names, fontsize=8)
        ax_prob.invert_yaxis()
        ax_prob.set_xlim(0, 1)
        ax_prob.set_xlabel("predicted probability", fontsize=9)
        ax_prob.tick_params(axis="x", labelsize=8)
    else:
        ax_prob.axis("off")
    top.suptitle(title, fontsize=11)

    # One panel per convolution.
    for panel, i, nrows in zip(panels[1:], convs, grid_rows):
        maps, target = maps_by_layer[i], after_activation(model, i)
        n = min(max_maps, maps.shape[-1])
        # One scale for the layer's maps, so that channels compare: a dark map barely responds.
        lo, hi = float(maps[:, :, :n].min()), float(maps[:, :, :n].max())
        hi = hi if hi > lo else lo + 1.0
        axes = panel.subplots(nrows, ncols, squeeze=False)
        for c, ax in enumerate(axes.flat):
            if c < n:
                im = ax.imshow(maps[:, :, c], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"channel {c}", fontsize=7, pad=2)
            else:
                ax.axis("off")
        panel.colorbar(im, ax=axes, shrink=0.9, aspect=12, pad=0.01).set_label("activation", fontsize=8)
        after = f", after its {type(model.layers[target]).__name__}" if target != i else ""
        panel.suptitle(
            f"{layer_label(model, i)}{after}: channels 0–{n - 1} of {maps.shape[-1]}, "
            "all on the one colour scale at the right",
            fontsize=10,
        )
    return _save(fig, path)
