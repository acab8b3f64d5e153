"""ONNX export checked by onnxruntime: the graph computes what minicnn's ``predict`` does.

Two models: the documented CIFAR-10 CNN, and one with every other layer kind (each activation,
odd strides and paddings, Rescaling, Normalization, BatchNormalization with moving statistics that
are not the initial ones, average pooling "valid" and "same", global average pooling, Residuals
with and without a projection, one nested). onnxruntime runs on the CPU, in float32.
"""

import subprocess
import sys

import numpy as np
import pytest
from export_fixture import randomize_batchnorm

import minicnn
from minicnn import Sequential
from minicnn.interop import save_onnx
from minicnn.interop.onnx_export import onnx_model
from minicnn.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    MaxPooling2D,
    Normalization,
    ReLU,
    Rescaling,
    Residual,
    no_grad,
)

onnx = pytest.importorskip("onnx", reason='the onnx package is not installed: pip install -e ".[onnx,test]"')
ort = pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install -e ".[test]"')


def every_layer_kind(last_activation=None) -> Sequential:
    """Every layer kind and activation minicnn has, with strides, paddings and statistics that are not the defaults."""
    model = Sequential(
        [
            Rescaling(1 / 127.5, offset=-1),
            Normalization(mean=[0.1, -0.2, 0.3], variance=[0.5, 1.0, 2.0]),
            BatchNormalization(),
            AveragePooling2D(2, strides=1),  # "valid": 29x22 -> 28x21
            AveragePooling2D(3, strides=1, padding="same"),  # the border windows average fewer pixels
            AveragePooling2D(3, strides=2, padding="same"),  # -> 14x11, pads 0/1 rows, 1/1 columns
            Residual([Conv2D(3, 3, padding="same", activation="relu"), BatchNormalization(center=False)]),
            Residual([Conv2D(4, 3, padding="same"), BatchNormalization(scale=False)]),  # a 1x1 Conv2D shortcut
            Residual([Residual([Conv2D(4, 1)]), Dropout(0.5)], projection=Conv2D(4, 1)),
            Conv2D(4, (3, 2), strides=(2, 1), padding=1, activation="relu"),
            Conv2D(5, 3, padding="same", activation="leaky_relu"),
            Conv2D(3, 2, strides=2, padding="same", activation="sigmoid"),
            Conv2D(4, 2, activation="tanh"),
            Conv2D(4, 1, activation="softmax"),
            MaxPooling2D(2, strides=1),
            MaxPool2D((2, 1)),
            ReLU(),
            LeakyReLU(0.3),
            *(Activation(a) for a in ("tanh", "sigmoid", "relu", "leaky_relu", "linear", None)),
            Dropout(0.5),
            Residual([Flatten(), Dense(4, activation="tanh"), BatchNormalization()], GlobalAveragePooling2D()),
            Dense(7, activation="relu"),
            Dense(6, activation="sigmoid"),
            Dense(5, activation="tanh"),
            Dense(4, activation="leaky_relu"),
            Dense(3, activation=last_activation),
        ],
        input_shape=(29, 22, 3),
        seed=0,
    )
    return randomize_batchnorm(model)


def onnx_predict(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"input": x})
    return probabilities


@pytest.mark.parametrize(
    "make, pixels",
    [
        (lambda: minicnn.models.cifar10_cnn(seed=0), False),
        (every_layer_kind, True),
        (lambda: every_layer_kind("softmax"), True),
    ],
    ids=["cifar10_cnn", "every_layer_kind", "ends_in_softmax"],
)
def test_onnxruntime_gives_minicnn_predictions(tmp_path, make, pixels):
    model = make()
    rng = np.random.default_rng(0)
    shape = (6, *model.input_shape)
    x = (rng.uniform(0, 255, shape) if pixels else rng.normal(size=shape)).astype(np.float32)
    save_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    assert proto.graph.node[-1].op_type == "Softmax"  # probabilities out, whether the model ends in logits or not
    assert [n.op_type for n in proto.graph.node[-2:]].count("Softmax") == 1
    got = onnx_predict(tmp_path / "m.onnx", x)
    assert got.dtype == np.float32 and got.shape == (6, model.output_shape[-1])
    print(f"max |onnxruntime - predict| = {np.abs(got - model.predict(x)).max():.2e}")
    np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=1e-5)
    assert onnx_predict(tmp_path / "m.onnx", x[:1]).shape[0] == 1  # the batch axis is symbolic


def test_model_save_by_suffix_writes_the_same_graph(tmp_path):
    model = minicnn.models.cifar10_cnn(seed=0)
    model.save(tmp_path / "x.onnx")
    save_onnx(model, tmp_path / "y.onnx")
    assert (tmp_path / "x.onnx").read_bytes() == (tmp_path / "y.onnx").read_bytes()


def test_an_unsupported_layer_is_refused_by_name_before_writing(tmp_path):
    class Doubling(ReLU):
        def forward(self, x, training=False):
            return 2 * x

    model = Sequential([Flatten(), Doubling(name="twice"), Dense(2)], input_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="'twice' \\(Doubling\\)"):
        save_onnx(model, tmp_path / "m.onnx")
    inside = Sequential([Residual([Doubling(name="inner")]), Flatten(), Dense(2)], input_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="'inner' \\(Doubling\\)"):  # found inside a Residual too
        save_onnx(inside, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_the_new_layers_become_the_documented_ops(tmp_path):
    save_onnx(every_layer_kind(), tmp_path / "m.onnx")
    nodes = onnx.load(tmp_path / "m.onnx").graph.node
    ops = {n.op_type for n in nodes}
    assert {"AveragePool", "GlobalAveragePool", "Add", "Mul", "Sub"} <= ops
    assert "BatchNormalization" not in ops  # folded into Sub, Mul, Add on the NHWC tensor
    pools = [n for n in nodes if n.op_type == "AveragePool"]
    assert all(
        onnx.helper.get_attribute_value(a) == 0 for n in pools for a in n.attribute if a.name == "count_include_pad"
    )
    assert len({n.name for n in nodes}) == len(nodes)
    assert any(n.name.endswith("/0_Residual/0_Conv2D/conv") for n in nodes)  # a Residual in a Residual


def test_an_opset_older_than_13_is_refused(tmp_path):
    with pytest.raises(ValueError, match="opset"):
        save_onnx(minicnn.models.cifar10_cnn(seed=0), tmp_path / "m.onnx", opset=11)


def test_import_minicnn_never_imports_onnx():
    code = "import sys, minicnn, minicnn.interop; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_layers_output_in_onnxruntime_is_minicnns(tmp_path):
    # Layer by layer, not only the probabilities: a final softmax can squash a wrong layer's error.
    model = every_layer_kind()
    proto = onnx_model(model)
    last_output = {}  # layer index -> the output of its last node (layers with no node are left out)
    for node in proto.graph.node:
        index = node.name.split("_", 1)[0]
        if index.isdigit():
            last_output[int(index)] = node.output[0]
    for name in last_output.values():
        proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(proto, tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(0, 255, (3, *model.input_shape)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x}), strict=True))
    worst_of_all = 0.0
    with no_grad():
        for i, layer in enumerate(model.layers):
            x = layer.forward(x)
            if i in last_output:
                worst = np.abs(got[last_output[i]] - x).max()
                assert worst <= 1e-5 * max(1.0, np.abs(x).max()), f"{layer.name}: {worst:.2e}"
                worst_of_all = max(worst_of_all, worst)
    print(f"\nlayer by layer, max |onnxruntime - minicnn| = {worst_of_all:.2e}")


def test_keras_export_writes_the_onnx_graph(tmp_path):
    import onnx

    model = minicnn.models.Sequential([Flatten(input_shape=(4, 4, 3)), Dense(5)], seed=0)
    model.export(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    with pytest.raises(ValueError, match="format='tf_saved_model' is not available"):
        model.export(tmp_path / "m", format="tf_saved_model")
