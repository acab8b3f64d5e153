"""minicnn.viz: every picture is a real PNG, gradient ascent climbs, the counts are right."""

import csv
import pickle
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import minicnn
from minicnn import Sequential, viz
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEAN = np.array([125.3, 123.0, 113.9], dtype=np.float32)
STD = np.array([63.0, 62.1, 66.7], dtype=np.float32)


def small_cnn(seed=0, classes=4):
    """Three convolutions (RGB in, 4 -> 6 -> 8 filters) with the documented model's layer kinds."""
    return Sequential(
        [
            Conv2D(4, 3, padding="same"),
            LeakyReLU(0.1),
            Conv2D(6, 3, padding="same"),
            LeakyReLU(0.1),
            MaxPool2D(2),
            Dropout(0.25),
            Conv2D(8, 3, padding="same"),
            LeakyReLU(0.1),
            Flatten(),
            Dense(classes),
        ],
        input_shape=(12, 12, 3),
        seed=seed,
    )


def assert_png(path, min_width=250, min_height=200):
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = mpimg.imread(path)
    height, width = image.shape[:2]
    assert min_width <= width <= 4000 and min_height <= height <= 4000, (width, height)
    assert image[..., :3].std() > 0.02, "the picture is blank"


# -- filters -------------------------------------------------------------------------------
def test_plot_filters_first_layer_as_rgb_tiles(tmp_path):
    model = small_cnn()
    out = viz.plot_filters(model.layers[0], tmp_path / "filters.png")
    assert Path(out) == tmp_path / "filters.png"
    assert_png(out)


def test_plot_filters_deeper_layer_as_a_weight_grid(tmp_path):
    model = minicnn.models.cifar10_cnn(seed=0)
    assert_png(viz.plot_filters(model.layers[6], tmp_path / "deep.png", title="conv 3"))  # 32 in, 32 out: cut to 16x16
    assert_png(viz.plot_filters(small_cnn().layers[2], tmp_path / "small.png"))


def test_plot_filters_refuses_a_layer_without_kernels(tmp_path):
    with pytest.raises(TypeError, match="Conv2D"):
        viz.plot_filters(small_cnn().layers[1], tmp_path / "x.png")


# -- max stimuli ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer_index, filters", [(1, [0, 2, 3]), (3, [5, 1]), (7, [0, 4, 7])])
def test_max_stimuli_raises_the_filters_mean_activation(backend, layer_index, filters):
    model = small_cnn(seed=1)
    grey = viz.max_stimuli(model, layer_index, filters, steps=0)  # the starting point
    stimuli = viz.max_stimuli(model, layer_index, filters, steps=15)
    assert isinstance(stimuli, np.ndarray) and stimuli.shape == (len(filters), 12, 12, 3)
    assert np.abs(grey).max() < 0.1  # grey: zeros plus tiny noise
    before = viz.filter_activation(model, layer_index, grey, filters)
    after = viz.filter_activation(model, layer_index, stimuli, filters)
    assert np.all(after > before + 0.05), (before, after)


def test_max_stimuli_images_depend_only_on_their_own_filter():
    model = small_cnn(seed=2)
    both = viz.max_stimuli(model, 1, [0, 3], steps=10, noise=0.0)
    alone = viz.max_stimuli(model, 1, [3], steps=10, noise=0.0)
    np.testing.assert_allclose(both[1], alone[0], rtol=1e-4, atol=1e-5)


def test_max_stimuli_leaves_training_without_an_input_gradient():
    # The climb asks the first layer for dx through backward's argument; nothing in the model
    # changes, so training afterwards still skips the gradient with respect to the images.
    model = small_cnn()
    viz.max_stimuli(model, 3, [0], steps=2)
    x = np.zeros((2,) + model.input_shape, dtype=model.dtype)
    model.forward(x, training=True)
    assert model.backward(np.ones((2,) + model.output_shape, dtype=model.dtype)) is None


def test_max_stimuli_after_an_error_leaves_the_model_usable(monkeypatch):
    model = small_cnn()

    def broken_backward(dy, need_input_grad=True):
        raise RuntimeError("boom")

    monkeypatch.setattr(model.layers[1], "backward", broken_backward)
    with pytest.raises(RuntimeError, match="boom"):
        viz.max_stimuli(model, 1, [0], steps=2)
    monkeypatch.undo()
    assert viz.max_stimuli(model, 1, [0], steps=1).shape == (1,) + model.input_shape


def test_max_stimuli_checks_its_arguments():
    model = small_cnn()
    with pytest.raises(ValueError, match="filters"):
        viz.max_stimuli(model, 1, [4], steps=1)  # layer 1 has 4 channels: 0..3
    with pytest.raises(ValueError, match="layer_index"):
        viz.max_stimuli(model, 99, [0], steps=1)


def test_plot_stimuli(tmp_path):
    model = small_cnn()
    assert_png(viz.plot_stimuli(model, tmp_path / "stimuli.png", filters_per_layer=3, mean=MEAN, std=STD, steps=3))
    assert_png(viz.plot_stimuli(model, tmp_path / "some.png", layers=[2], filters_per_layer=8, steps=3), min_height=100)


# -- feature maps --------------------------------------------------------------------------
def test_plot_feature_maps(tmp_path):
    model = small_cnn()
    image = viz.synthetic_image((12, 12, 3), MEAN, STD)
    assert image.shape == (12, 12, 3) and image.dtype == np.float32
    names = ["a", "b", "c", "d"]
    assert_png(
        viz.plot_feature_maps(
            model, image, tmp_path / "maps.png", mean=MEAN, std=STD, true_label=2, predicted_label=1, class_names=names
        )
    )
    assert_png(viz.plot_feature_maps(model, image, tmp_path / "plain.png", max_maps=3))


def test_plot_feature_maps_wants_one_image(tmp_path):
    with pytest.raises(ValueError, match="one image"):
        viz.plot_feature_maps(small_cnn(), np.zeros((2, 12, 12, 3)), tmp_path / "x.png")


def test_displayable_undoes_standardisation():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype(np.float32)
    x = (pixels - MEAN) / STD
    np.testing.assert_allclose(viz.displayable(x, MEAN, STD), pixels / 255, atol=1e-5)
    stretched = viz.displayable(x)
    assert stretched.min() == 0 and stretched.max() == 1
    np.testing.assert_allclose(stretched.reshape(2, -1).max(axis=1), 1)  # each image on its own


# -- history and confusion -----------------------------------------------------------------
def test_plot_history_from_a_dict_and_from_a_csv(tmp_path):
    history = {
        "loss": [2.0, 1.5, 1.2],
        "accuracy": [0.3, 0.45, 0.55],
        "val_loss": [1.8, 1.6, 1.5],
        "val_accuracy": [0.35, 0.42, 0.47],
    }
    assert_png(viz.plot_history(history, tmp_path / "dict.png"))
    assert_png(viz.plot_history({"loss": [1.0], "accuracy": [0.5]}, tmp_path / "one.png"))
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"])
        for e in range(3):
            writer.writerow(
                [
                    e + 1,
                    history["loss"][e],
                    history["accuracy"][e],
                    history["val_loss"][e],
                    history["val_accuracy"][e],
                    1e-3,
                    12.5,
                ]
            )
    assert_png(viz.plot_history(path, tmp_path / "csv.png"))


def test_confusion_matrix_counts_a_hand_example():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    m = viz.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert m.dtype.kind == "i" and m.sum() == 6 and np.trace(m) == 4
    assert viz.confusion_matrix(np.array(y_true), np.array(y_pred), 4).shape == (4, 4)
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, y_pred), m)  # size from the labels
    with pytest.raises(ValueError):
        viz.confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        viz.confusion_matrix([0, 3], [0, 1], 3)


def test_plot_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 10, 500))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert_png(viz.plot_confusion_matrix(y_true, y_pred, tmp_path / "counts.png", class_names=names))
    assert_png(viz.plot_confusion_matrix(y_true, y_pred, tmp_path / "norm.png", normalize=True))


# -- everything for one model --------------------------------------------------------------
def test_plot_model_writes_every_picture(tmp_path):
    model = small_cnn()
    rng = np.random.default_rng(0)
    x_test = rng.standard_normal((20, 12, 12, 3)).astype(np.float32)
    y_test = rng.integers(0, 4, 20)
    written = viz.plot_model(
        model,
        tmp_path,
        mean=MEAN,
        std=STD,
        class_names=["a", "b", "c", "d"],
        history={"loss": [1.0, 0.8], "accuracy": [0.5, 0.6]},
        x_test=x_test,
        y_test=y_test,
        stimuli_steps=3,
        filters_per_layer=3,
    )
    assert set(written) == {"filters", "stimuli", "feature_maps", "curves", "confusion"}
    for path in written.values():
        assert_png(path)


def _run_visualize(*args, cwd):
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "visualize.py"),
            *map(str, args),
            "--backend",
            "numpy",
            "--steps",
            "3",
            "--filters-per-layer",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_visualize_script_without_data(tmp_path):
    model = small_cnn()
    run_dir = tmp_path / "run"
    model.save(run_dir / "model.npz", extra={"mean": MEAN, "std": STD})
    with open(run_dir / "history.csv", "w") as f:
        f.write(
            "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n"
            "1,1.9,0.30,1.7,0.36,0.005,10.0\n2,1.5,0.45,1.5,0.44,0.0045,10.2\n"
        )
    result = _run_visualize(run_dir / "model.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("filters", "stimuli", "feature_maps", "curves"):
        assert_png(run_dir / f"{name}.png")
    assert not (run_dir / "confusion.png").exists()
    assert "confusion.png skipped" in result.stdout

    out = tmp_path / "elsewhere"
    (run_dir / "history.csv").unlink()
    result = _run_visualize(run_dir / "model.npz", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["feature_maps.png", "filters.png", "stimuli.png"]


def _write_fake_cifar(folder, n, seed):
    """A few random images in the official batch layout (dict of bytes keys, CHW rows)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": data}, f, protocol=2)


def test_visualize_script_with_data(tmp_path):
    if not hasattr(minicnn.datasets, "load_cifar10"):
        pytest.skip("minicnn.datasets.load_cifar10 is not available yet")
    _write_fake_cifar(tmp_path / "data" / "cifar-10-batches-py", 30, seed=0)
    model = Sequential(
        [Conv2D(4, 3, padding="same"), LeakyReLU(0.1), MaxPool2D(4), Flatten(), Dense(10)],
        input_shape=(32, 32, 3),
        seed=0,
    )
    model.save(tmp_path / "model.npz", extra={"mean": MEAN, "std": STD})
    result = _run_visualize(
        tmp_path / "model.npz", "--data-dir", tmp_path / "data", "--out", tmp_path / "out", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("filters", "stimuli", "feature_maps", "confusion"):
        assert_png(tmp_path / "out" / f"{name}.png", min_height=150)


# -- what the pictures say (issue 23) ---------------------------------------------------------
@pytest.fixture
def saved_figures(monkeypatch):
    """Every Figure a plot function saves, in order (the PNG is still written)."""
    from minicnn.viz import figures as viz_figures
    from minicnn.viz import network, training

    figures, real_save = [], viz_figures._save

    def save(fig, path):
        figures.append(fig)
        return real_save(fig, path)

    for module in (network, training):  # each drawing module saves through its own import of _save
        monkeypatch.setattr(module, "_save", save)
    return figures


def texts(fig) -> str:
    from matplotlib.text import Text

    return " | ".join(t.get_text() for t in fig.findobj(Text) if t.get_text())


def test_layer_label_names_type_position_and_shapes():
    model = small_cnn()
    assert viz.layer_label(model, 0) == "Conv2D 1 of 3: 3×3, 3→4 channels, 12×12 out"
    assert viz.layer_label(model, 6) == "Conv2D 3 of 3: 3×3, 6→8 channels, 6×6 out"
    assert viz.layer_label(model, 4) == "MaxPool2D 1 of 1: output 6×6×6"


def test_stimuli_are_labelled_by_what_a_learner_recognises(tmp_path, saved_figures):
    model = small_cnn()
    viz.plot_stimuli(model, tmp_path / "stimuli.png", filters_per_layer=3, mean=MEAN, std=STD, steps=2)
    text = texts(saved_figures[-1])
    for i in (0, 2, 6):
        assert viz.layer_label(model, i) in text
    assert "filter 0" in text and "conv2d" not in text  # no internal names


def test_feature_maps_have_one_colour_scale_per_layer_and_say_so(tmp_path, saved_figures):
    model = small_cnn()
    image = viz.synthetic_image((12, 12, 3), MEAN, STD)
    viz.plot_feature_maps(model, image, tmp_path / "maps.png", mean=MEAN, std=STD)
    fig = saved_figures[-1]
    text = texts(fig)
    assert text.count("all on the one colour scale at the right") == 3 and "conv2d" not in text
    assert text.count("activation") >= 3  # a colour bar per layer, labelled
    maps, _ = viz.feature_maps(model, image)
    limits = set()
    for ax in fig.findobj(lambda a: hasattr(a, "images") and a.images):
        if ax.get_label() == "<colorbar>":
            continue
        limits.add(tuple(round(v, 6) for v in ax.images[0].get_clim()))
    expected = {(round(float(m[..., :16].min()), 6), round(float(m[..., :16].max()), 6)) for m in maps.values()}
    assert expected <= limits  # each layer's maps share the range of all of them


def test_curves_say_why_validation_can_lie_above_training(tmp_path, saved_figures):
    history = {"loss": [2.0, 1.5], "accuracy": [0.3, 0.45], "val_loss": [1.8, 1.4], "val_accuracy": [0.35, 0.5]}
    viz.plot_history(history, tmp_path / "curves.png")
    assert "dropout on" in texts(saved_figures[-1]) and "So validation can lie above training." in texts(
        saved_figures[-1]
    )
    viz.plot_history({"loss": [2.0, 1.5], "accuracy": [0.3, 0.45]}, tmp_path / "train-only.png")
    assert "dropout" not in texts(saved_figures[-1])  # nothing to explain without validation


# -- colour scales and what to expect (issue 34) ------------------------------------------------
def colour_bars(fig):
    from matplotlib.axes import Axes

    return [ax for ax in fig.findobj(Axes) if ax.get_label() == "<colorbar>"]


def test_first_layer_filters_share_one_scale_drawn_as_a_colour_bar(tmp_path, saved_figures):
    model = small_cnn()
    viz.plot_filters(model.layers[0], tmp_path / "filters.png")
    fig = saved_figures[-1]
    w = minicnn.backend.to_numpy(model.layers[0].params["W"]).astype(np.float64)
    limit = np.abs(w).max()
    (bar,) = colour_bars(fig)
    assert "weight" in bar.get_ylabel() and np.allclose(bar.get_ylim(), (-limit, limit))
    tiles = [ax.images[0].get_array() for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(tiles) == 4
    for i, tile in enumerate(tiles):  # the shared scale itself: 0.5 + W / (2 max|W|), not each tile stretched
        np.testing.assert_allclose(tile, 0.5 + w[..., i] / (2 * limit))
    text = texts(fig)  # a small model's: what the course's runs showed would mislead here
    assert "one shared scale" in text and "Not the course's first layer" in text and "3 epochs" not in text
    viz.plot_filters(minicnn.models.cifar10_cnn(seed=0).layers[0], tmp_path / "course.png")
    text = texts(saved_figures[-1])
    assert "3 epochs" in text and "10 epochs" in text and "Not the course's" not in text


def test_stimuli_say_their_colour_scale(tmp_path, saved_figures):
    model = small_cnn()
    viz.plot_stimuli(model, tmp_path / "pixels.png", filters_per_layer=2, mean=MEAN, std=STD, steps=2)
    fig = saved_figures[-1]
    bars = colour_bars(fig)
    assert len(bars) == 3 and all(np.allclose(b.get_ylim(), (0, 255)) for b in bars)  # one per layer row
    assert "one scale for all tiles" in texts(fig) and "3 epochs" not in texts(fig)  # not the course's model
    viz.plot_stimuli(minicnn.models.cifar10_cnn(seed=0), tmp_path / "course.png", filters_per_layer=1, steps=1)
    assert "3 epochs" in texts(saved_figures[-1])  # what its runs showed
    viz.plot_stimuli(model, tmp_path / "own.png", filters_per_layer=2, steps=2)
    fig = saved_figures[-1]
    assert not colour_bars(fig) and "stretched on its own" in texts(fig)
    ranges = [ax.get_xlabel() for ax in fig.findobj(lambda a: hasattr(a, "get_xlabel") and " to " in a.get_xlabel())]
    assert len(ranges) == 6  # each tile's own range under it
