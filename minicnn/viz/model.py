"""Every picture of a model at once, into one folder."""

from __future__ import annotations

from pathlib import Path

from ..backend import to_numpy
from ..interpret import conv_layer_indices, synthetic_image
from .network import plot_feature_maps, plot_filters, plot_stimuli
from .training import plot_confusion_matrix, plot_history


# -- everything at once ---------------------------------------------------------------------
def plot_model(
    model,
    out_dir,
    *,
    mean=None,
    std=None,
    class_names=None,
    history=None,
    x_test=None,
    y_test=None,
    y_pred=None,
    image_index=0,
    filters_per_layer=6,
    stimuli_steps=40,
    log=None,
) -> dict:
    """Write every picture of ``model`` into ``out_dir``; returns ``{name: path}``.

    - ``filters.png``: the first Conv2D layer's kernels (:func:`plot_filters`);
    - ``stimuli.png``: max-stimulus patterns of each conv layer (:func:`plot_stimuli`);
    - ``feature_maps.png``: :func:`plot_feature_maps` for test image ``image_index``, or for
      :func:`synthetic_image` when no test data is given;
    - ``curves.png`` when ``history`` (a dict of lists or a ``history.csv`` path) is given;
    - ``confusion.png`` when ``x_test`` (standardised, as the model takes it) and ``y_test``
      are given; ``y_pred`` skips the predictions when they are already at hand.

    ``mean``/``std`` are the per-channel pixel statistics used to standardise the inputs
    (for showing images); ``log`` (e.g. ``print``) is told of every file written.
    """
    out_dir = Path(out_dir)
    say = log or (lambda message: None)
    written = {}

    def done(name, path):
        written[name] = path
        say(f"wrote {path}")

    convs = conv_layer_indices(model)
    if convs:
        done("filters", plot_filters(model.layers[convs[0]], out_dir / "filters.png"))
        done(
            "stimuli",
            plot_stimuli(
                model,
                out_dir / "stimuli.png",
                filters_per_layer=filters_per_layer,
                mean=mean,
                std=std,
                steps=stimuli_steps,
            ),
        )
    if x_test is not None and y_test is not None and len(x_test) > 0:
        image, true_label = to_numpy(x_test[image_index]), int(to_numpy(y_test)[image_index])
    else:
        image, true_label = synthetic_image(model.input_shape, mean, std), None
    done(
        "feature_maps",
        plot_feature_maps(
            model,
            image,
            out_dir / "feature_maps.png",
            mean=mean,
            std=std,
            true_label=true_label,
            class_names=class_names,
        ),
    )
    if history is not None:
        done("curves", plot_history(history, out_dir / "curves.png"))
    if x_test is not None and y_test is not None:
        if y_pred is None:
            y_pred = model.predict(x_test).argmax(axis=1)
        done("confusion", plot_confusion_matrix(y_test, y_pred, out_dir / "confusion.png", class_names=class_names))
    return written
