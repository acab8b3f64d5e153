"""Pictures from files: ``image_dataset_from_directory`` (Keras 3's order, split and labels, decoded lazily),
``python -m minicnn.predict`` (a model's top classes for a picture), and a folder of pictures refused
where CIFAR-10 is expected."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import make_cifar_folder, run_train
from PIL import Image

import minicnn
from minicnn.datasets import DatasetError, load_cifar10, standardize
from minicnn.datasets import images as images_module
from minicnn.datasets.image_files import read_image
from minicnn.datasets.images import ImageDataset, image_dataset_from_directory
from minicnn.datasets.model_inputs import class_names, picture_format
from minicnn.layers import Dense, Flatten

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["ant", "bird", "cat10", "cat2"]  # alphanumeric order: "cat10" before "cat2"
COUNTS = {"bird": 4, "ant": 3, "cat2": 3, "cat10": 2}


def save_picture(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """12 pictures in 4 class folders: PNG and JPEG of several sizes, one in a nested folder; a text
    file and a hidden folder that are not pictures of any class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pictures"
    for name, count in COUNTS.items():
        for i in range(count):
            suffix = ".png" if i % 2 else ".JPG"
            where = root / name / ("nested" if i == 2 else "") / f"{i}{suffix}"
            save_picture(where, rng.integers(0, 256, (10 + i, 14, 3)))
    (root / "bird" / "notes.txt").write_text("not a picture")
    save_picture(root / ".thumbnails" / "x.png", np.zeros((4, 4, 3)))
    return root


def quiet(directory, **options):
    return image_dataset_from_directory(directory, verbose=False, **options)


# -- what a folder becomes -----------------------------------------------------------------------
def test_classes_are_the_sub_folders_in_alphanumeric_order_and_label_every_picture(folder, capsys):
    ds = image_dataset_from_directory(folder, image_size=(8, 8), seed=1)
    assert "Found 12 files belonging to 4 classes." in capsys.readouterr().out
    assert ds.class_names == CLASSES and len(ds.file_paths) == 12
    x, y = ds.to_arrays()
    assert y.dtype == np.int32 and y.shape == (12,)
    for path, label in zip(ds.file_paths, y):
        assert Path(path).relative_to(folder).parts[0] == CLASSES[label]
    assert sorted(np.bincount(y)) == sorted(COUNTS.values())


def test_batches_have_keras_shapes_dtypes_and_values(folder):
    ds = quiet(folder, image_size=(6, 5), batch_size=5, seed=2)
    batches = list(ds)
    assert len(ds) == len(batches) == 3 and [len(b[0]) for b in batches] == [5, 5, 2]
    for x, y in batches:
        assert x.dtype == np.float32 and x.shape[1:] == (6, 5, 3) and y.dtype == np.int32
        assert 0 <= x.min() and x.max() <= 255
    categorical = quiet(folder, image_size=(6, 5), label_mode="categorical", shuffle=False)
    x, y = next(iter(categorical))
    assert y.dtype == np.float32 and y.shape == (12, 4) and np.all(y.sum(axis=1) == 1)
    assert np.array_equal(y.argmax(axis=1), quiet(folder, image_size=(6, 5), shuffle=False).to_arrays()[1])
    grey = quiet(folder, image_size=(6, 5), color_mode="grayscale", label_mode=None, batch_size=None)
    first = next(iter(grey))
    assert first.shape == (6, 5, 1) and grey.class_names is None
    assert len(grey) == 13  # without labels, every picture under the folder, the hidden one too (as Keras)
    assert quiet(folder, image_size=4, color_mode="rgba", shuffle=False).to_arrays()[0].shape == (12, 4, 4, 4)


def test_binary_labels_and_labels_given_as_a_list(folder, tmp_path):
    two = tmp_path / "two"
    for name in ("no", "yes"):
        for i in range(2):
            save_picture(two / name / f"{i}.png", np.full((3, 3, 3), 40 * i))
    x, y = quiet(two, image_size=(3, 3), label_mode="binary", shuffle=False).to_arrays()
    assert y.dtype == np.float32 and y.shape == (4, 1) and y.ravel().tolist() == [0, 0, 1, 1]
    ds = quiet(two, labels=[3, 1, 1, 0], image_size=(3, 3), shuffle=False)
    assert ds.to_arrays()[1].tolist() == [3, 1, 1, 0] and ds.class_names == ["0", "1", "3"]
    unlabelled = quiet(folder, labels=None, image_size=(3, 3), shuffle=False)
    assert len(unlabelled.file_paths) == 13 and unlabelled.to_arrays()[1] is None
    assert isinstance(next(iter(unlabelled)), np.ndarray)


def test_pixels_are_read_exactly_resized_smoothly_and_cropped_at_the_centre(tmp_path):
    pixels = np.arange(4 * 5 * 3).reshape(4, 5, 3) * 3
    save_picture(tmp_path / "c" / "a.png", pixels)
    x, _ = quiet(tmp_path, image_size=(4, 5), shuffle=False).to_arrays()
    assert np.array_equal(x[0], pixels)  # the right size already: the file's own pixels
    wide = np.zeros((4, 8, 3))
    wide[:, :2], wide[:, 2:6, 1], wide[:, 6:] = 255, 200, 90  # white | green | grey columns
    save_picture(tmp_path / "c" / "a.png", wide)
    cropped, how = read_image(tmp_path / "c" / "a.png", (2, 2), crop_to_aspect_ratio=True)
    assert np.allclose(cropped, [0, 200, 0], atol=0.01) and how == "cropped from 8x4 to its centre 4x4, resized to 2x2"
    stretched, how = read_image(tmp_path / "c" / "a.png", (2, 2))
    assert not np.allclose(stretched, [0, 200, 0], atol=1) and how == "resized from 8x4 to 2x2"
    save_picture(tmp_path / "c" / "a.png", np.full((5, 7, 3), 77))
    assert np.allclose(read_image(tmp_path / "c" / "a.png", (3, 3))[0], 77, atol=1e-3)


# -- Keras's order, split and shuffling --------------------------------------------------------
def test_file_order_and_split_are_keras_s(folder):
    walked = []  # Keras's order: each class folder walked in sorted order, then shuffled by RandomState(seed)
    for name in CLASSES:
        for root, _, files in sorted(os.walk(folder / name)):
            walked += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith((".png", ".jpg"))]
    assert quiet(folder, shuffle=False).file_paths == walked
    order = np.arange(12)
    np.random.RandomState(7).shuffle(order)
    expected = [walked[i] for i in order]
    assert quiet(folder, seed=7).file_paths == expected
    train = quiet(folder, seed=7, validation_split=0.25, subset="training")
    val = quiet(folder, seed=7, validation_split=0.25, subset="validation")
    assert train.file_paths == expected[:9] and val.file_paths == expected[9:]  # the last int(0.25 * 12)
    both = quiet(folder, seed=7, validation_split=0.25, subset="both")
    assert isinstance(both, list) and [d.file_paths for d in both] == [train.file_paths, val.file_paths]
    assert both[0].shuffle and not both[1].shuffle  # Keras shuffles the training half only


def test_a_seed_makes_every_pass_repeatable_and_each_pass_new(folder):
    first, second = (quiet(folder, image_size=(4, 4), batch_size=4, seed=3) for _ in range(2))
    passes = [[np.concatenate([y for _, y in ds]) for _ in range(2)] for ds in (first, second)]
    assert all(np.array_equal(a, b) for a, b in zip(passes[0], passes[1]))
    a, b = next(iter(first)), next(iter(second))  # third passes: still the same pictures
    assert np.array_equal(a[0], b[0])
    paths = [quiet(folder, seed=s).file_paths for s in (3, 4)]
    assert paths[0] != paths[1] and sorted(paths[0]) == sorted(paths[1])
    x, y = quiet(folder, image_size=(4, 4), batch_size=5, shuffle=False).to_arrays()
    batches = list(quiet(folder, image_size=(4, 4), batch_size=5, shuffle=False))
    assert np.array_equal(x, np.concatenate([b[0] for b in batches]))


def test_pictures_are_decoded_only_when_their_batch_is_asked_for(folder, monkeypatch):
    read = []
    real = images_module.read_image
    monkeypatch.setattr(images_module, "read_image", lambda path, *a: read.append(path) or real(path, *a))
    ds = quiet(folder, image_size=(4, 4), batch_size=5, seed=0)
    assert read == [] and isinstance(ds, ImageDataset)
    it = iter(ds)
    next(it)
    assert len(read) == 5
    next(it)
    assert len(read) == 10


def test_an_unreadable_picture_is_named_when_its_batch_is_read(folder):
    bad = folder / "ant" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    ds = quiet(folder, image_size=(4, 4), batch_size=13, shuffle=False)  # built without decoding a file
    with pytest.raises(DatasetError, match=f"{bad}: cannot read this picture"):
        ds.to_arrays()


# -- errors name the folder, the argument, what is allowed ---------------------------------------------
def test_folder_errors_name_the_folder(folder, tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'missing'} does not exist"):
        quiet(tmp_path / "missing")
    with pytest.raises(DatasetError, match="is not a folder"):
        quiet(folder / "bird" / "notes.txt")
    flat = tmp_path / "flat"
    save_picture(flat / "one.png", np.zeros((2, 2, 3)))
    with pytest.raises(DatasetError, match=f"{flat} has no class sub-folders.*its 1 pictures .*labels=None"):
        quiet(flat)
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no pictures \(.bmp, .gif, .jpeg, .jpg, .png\) in the class sub-folders"):
        quiet(empty)


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(label_mode="sparse"), 'label_mode=\'sparse\' is not allowed; expected "int", "categorical"'),
        (dict(color_mode="cmyk"), 'color_mode=\'cmyk\'.*"rgb", "rgba" or "grayscale"'),
        (dict(image_size=(0, 8)), r"image_size=\(0, 8\).*two ints >= 1"),
        (dict(batch_size=0), "batch_size=0.*an int >= 1, or None"),
        (dict(interpolation="gaussian"), "interpolation='gaussian'.*bilinear"),
        (dict(labels="folders"), "labels='folders'"),
        (dict(labels=[0, 1]), "labels has 2 entries, but .* holds 13 pictures"),
        (dict(labels=None, class_names=["ant"]), "class_names="),
        (dict(class_names=["ant", "wasp"]), r"class_names=\['ant', 'wasp'\] must name sub-folders"),
        (dict(validation_split=1.5, subset="training", seed=1), "validation_split=1.5.*between 0 and 1"),
        (dict(validation_split=0.2, subset="test", seed=1), "subset='test'.*\"both\""),
        (dict(validation_split=0.2, seed=1), "validation_split=0.2 and subset=None: give both or neither"),
        (dict(validation_split=0.2, subset="training"), "seed=None.*so the two subsets never overlap"),
        (dict(validation_split=0.05, subset="training", seed=1), "validation_split=0.05 of the 12 pictures"),
        (dict(label_mode="binary"), 'label_mode="binary" needs exactly 2 classes, got 4'),
    ],
)
def test_a_bad_argument_is_named_with_what_is_allowed(folder, options, named):
    with pytest.raises(ValueError, match=named):
        quiet(folder, **options)


# -- python -m minicnn.predict ------------------------------------------------------------------
def run_predict(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "minicnn.predict", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def tiny_model(tmp_path, **extra):
    model = minicnn.Sequential([Flatten(), Dense(4)], input_shape=(8, 8, 3), seed=0)
    path = tmp_path / "model.npz"
    model.save(path, extra=extra)
    return model, path


def printed_tops(stdout: str) -> dict:
    """``{picture line: [(class, probability)]}`` from the command's output."""
    tops: dict = {}
    for line in stdout.splitlines()[1:]:
        if line.startswith("  "):
            name, p = line.split()
            tops[list(tops)[-1]].append((name, float(p)))
        else:
            tops[line] = []
    return tops


def test_predict_prints_the_model_s_top_classes_for_each_picture(tmp_path):
    mean, std = np.array([110.0, 120.0, 100.0]), np.array([60.0, 50.0, 70.0])
    names = ["ant", "bee", "cat", "dog"]
    model, path = tiny_model(tmp_path, mean=mean, std=std, class_names=names)
    rng = np.random.default_rng(1)
    exact = save_picture(tmp_path / "exact.png", rng.integers(0, 256, (8, 8, 3)))
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(photo)
    result = run_predict(path, exact, photo, "--top", "3")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "pixels standardised with the mean and std stored in the checkpoint" in result.stdout.splitlines()[0]
    tops = printed_tops(result.stdout)
    assert list(tops) == [f"{exact}:", f"{photo} (cropped from 20x12 to its centre 12x12, resized to 8x8):"]
    pixels = np.stack(
        [
            np.asarray(Image.open(exact), np.float32),  # the file's own pixels: no resize
            read_image(photo, (8, 8), crop_to_aspect_ratio=True, upright=True)[0],
        ]
    )
    probs = model.predict(standardize(pixels, mean, std))
    for shown, row in zip(tops.values(), probs):
        expected = np.argsort(-row, kind="stable")[:3]
        assert [name for name, _ in shown] == [names[k] for k in expected]
        assert np.allclose([p for _, p in shown], row[expected], atol=6e-5)


def test_class_names_come_from_the_checkpoint_else_cifar_else_numbers(tmp_path):
    model, _ = tiny_model(tmp_path)
    assert class_names(model, {}) == ["0", "1", "2", "3"]
    assert class_names(model, {"class_names": ["a", "b", "c", "d"]}) == ["a", "b", "c", "d"]
    ten = minicnn.Sequential([Flatten(), Dense(10)], input_shape=(8, 8, 1))
    assert class_names(ten, {})[:2] == ["airplane", "automobile"] and picture_format(ten) == ((8, 8), "grayscale")


def test_predict_errors_are_one_line_on_stderr(tmp_path):
    _, path = tiny_model(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    vectors = tmp_path / "vectors.npz"
    minicnn.Sequential([Dense(3)], input_shape=(12,)).save(vectors)
    for args, message in [
        ((path, tmp_path / "missing.png"), f"error: {tmp_path / 'missing.png'} does not exist"),
        ((path, broken), f"error: {broken}: cannot read this picture"),
        ((vectors, broken), f"error: {vectors}: the model's input is (12,), not a picture"),
    ]:
        result = run_predict(*args)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# -- a folder of pictures where CIFAR-10 is expected ------------------------------------------------
def test_a_folder_of_pictures_is_named_not_cifar10_and_nothing_is_downloaded(folder, tmp_path):
    before = sorted(folder.rglob("*"))
    url = (tmp_path / "never-fetched.tar.gz").as_uri()
    with pytest.raises(DatasetError, match="is a folder of pictures, not CIFAR-10") as refused:
        load_cifar10(folder, url=url)
    assert "image_dataset_from_directory" in str(refused.value) and "python -m minicnn.predict" in str(refused.value)
    with pytest.raises(DatasetError, match="not CIFAR-10"):
        load_cifar10(folder / "bird", url=url)  # pictures directly in it
    assert sorted(folder.rglob("*")) == before
    make_cifar_folder(folder)  # CIFAR-10 beside the pictures: used as ever
    (x, _), _ = load_cifar10(folder, download=False)
    assert x.shape[1:] == (32, 32, 3)


def test_train_cifar_refuses_a_folder_of_pictures_as_data_dir(folder, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "out"
    result = run_train(["--backend", "numpy", "--data-dir", folder, "--out", out], env=env)
    assert result.returncode == 2, result.stderr
    assert "is a folder of pictures, not CIFAR-10" in result.stderr and "downloading" not in result.stderr
    assert not out.exists() and not (folder / "cifar-10-python.tar.gz").exists()
