"""resnet8 and resnet_cifar, and the tools that take them: the profile's counts, the doctor's checks, the explorer."""

import numpy as np
import pytest

from minicnn.doctor import check_gradients
from minicnn.explore import Explorer
from minicnn.layers import BatchNormalization, Residual
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.models import model_by_name, resnet8, resnet_cifar
from minicnn.optim import Adam
from minicnn.profile import describe, layer_flops


def one_fit_step(model):
    """One epoch of one batch of 8 random images: a finite loss, then 10 class scores an image."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, 8)
    history = model.fit(x, y, optimizer=Adam(model, lr=1e-3), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history["loss"][0])
    assert model.predict(x).shape == (8, 10)


def test_resnet_cifar_shapes_count_and_one_fit_step():
    model = resnet_cifar(seed=0)
    assert model.input_shape == (32, 32, 3) and model.output_shape == (10,)
    assert model.count_params() == 309_898  # the docstring's count (960 of it BN moving statistics)
    assert sum(int(p.size) for layer in model.layers for p in layer.params.values()) == 308_938
    forward = sum(layer_flops(layer, 1, i > 0)[0] for i, layer in enumerate(model.layers))
    assert forward == 98_241_024  # about 0.098 GFLOP per image, as the docstring says
    small = resnet_cifar(width=(8, 16), seed=0)
    moving = small.layers[1].state["moving_mean"].copy()
    one_fit_step(small)
    assert not np.allclose(small.layers[1].state["moving_mean"], moving)  # BN followed the batch


def test_resnet8_shapes_count_flops_and_one_fit_step():
    model = resnet8(seed=0)
    shapes = [layer.output_shape for layer in model.layers]
    assert shapes[1] == (31, 31, 24) and (15, 15, 48) in shapes and (7, 7, 192) in shapes and (3, 3, 192) in shapes
    assert model.output_shape == (10,) and isinstance(model.layers[6], Residual)
    assert model.count_params() == 1_115_938  # the docstring's count (1,728 of it BN moving statistics)
    assert sum(int(p.size) for layer in model.layers for p in layer.params.values()) == 1_114_210
    forward = sum(layer_flops(layer, 1, i > 0)[0] for i, layer in enumerate(model.layers))
    assert forward == 138_140_736  # about 0.138 GFLOP per image, as the docstring says
    one_fit_step(resnet8(width=(4, 8), seed=0))
    with pytest.raises(ValueError, match="one positive number per stage"):
        resnet8(width=())


def test_resnet_cifar_refuses_a_width_it_cannot_build():
    with pytest.raises(ValueError, match="two or three"):
        resnet_cifar(width=(16,))


def test_model_by_name_knows_the_built_in_models_and_files(tmp_path):
    assert model_by_name("course").count_params() == 1_084_234
    assert model_by_name("resnet").count_params() == 1_115_938  # resnet8 since 0.4.0
    assert model_by_name("resnet_cifar").count_params() == 309_898  # 0.3.0's --model resnet
    small = resnet_cifar(width=(4, 8), seed=0)
    small.save(tmp_path / "m.npz")
    assert model_by_name(str(tmp_path / "m.npz")).count_params() == small.count_params()
    with pytest.raises(ValueError, match="course or resnet"):
        model_by_name("no-such-model")


def test_profile_counts_a_residual_block_as_its_layers():
    model = resnet_cifar(width=(8, 16), seed=0)
    block = model.layers[6]
    assert isinstance(block, Residual) and block.projection is not None
    convs = [layer_flops(sub, 2) for sub in block.sublayers()]
    assert layer_flops(block, 2) == (sum(f for f, _ in convs), sum(b for _, b in convs))
    assert describe(block) == "residual 8→16 (conv, batchnorm, relu, conv, batchnorm; shortcut conv 8→16 1×1)"


def test_doctor_passes_a_residual_block_and_leaves_out_biases_bn_cancels():
    model = resnet_cifar(width=(4, 8), seed=0)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    y = np.arange(4)
    checks = check_gradients(model, x, loss_fn=SoftmaxCrossEntropy(), y=y)
    assert all(c.passed for c in checks), [c.line() for c in checks if not c.passed]
    block = checks[3]
    assert "0_Conv2D/b" in block.details["cancelled"] and "0_Conv2D/W" in block.details["errors"]


def test_explorer_explains_the_channels_after_batch_normalization():
    model = resnet_cifar(width=(4, 8), seed=0)
    explorer = Explorer(model)
    layers = explorer.info()["layers"]
    assert isinstance(model.layers[1], BatchNormalization)
    assert layers[0]["explains"] == 0 and layers[1]["explains"] == 0 and layers[2]["explains"] == 0
    assert layers[3]["class"] == "Residual" and "explains" not in layers[3]  # a block is one step
    image = {"synthetic": True}
    assert len(explorer.forward(image)["layers"]) == len(model.layers)
    e = explorer.explain({"layer": 0, "channel": 1, "row": 5, "col": 7, "image": image})
    assert e["activation"] == "ReLU" and e["normalised"] is not None
    assert e["activated"] == pytest.approx(max(e["normalised"], 0.0), abs=1e-6)


def test_a_run_started_by_0_3_0s_model_resnet_resumes_with_its_own_network(tmp_path):
    from argparse import Namespace

    from minicnn.run import named_model

    resnet_cifar(seed=0).save(tmp_path / "model.npz")  # what 0.3.0's --model resnet trained and saved
    old = Namespace(model="resnet", resume=True, out=str(tmp_path), seed=0)
    assert named_model(old).count_params() == 309_898
    assert named_model(Namespace(model="resnet", resume=False, out=str(tmp_path), seed=0)).count_params() == 1_115_938
    resnet8(seed=0).save(tmp_path / "model.npz")  # a 0.4.0 run
    assert named_model(old).count_params() == 1_115_938


def test_doctor_and_explorer_take_resnet8_whose_bn_follows_a_max_pool():
    model = resnet8(width=(4, 8), seed=0)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    checks = check_gradients(model, x, loss_fn=SoftmaxCrossEntropy(), y=np.arange(4))
    assert all(c.passed for c in checks), [c.line() for c in checks if not c.passed]
    assert len(Explorer(model).forward({"synthetic": True})["layers"]) == len(model.layers)
