"""ONNX out: ``save_onnx`` writes a minicnn Sequential as a standard ONNX graph.

ONNX is the exchange format most runtimes read (onnxruntime, OpenCV's dnn, TensorRT,
onnxruntime-web in a browser, ...). The graph takes what minicnn takes, float32 pictures
``[N, H, W, C]`` (``N`` symbolic), and returns what ``model.predict`` returns, class
probabilities ``[N, classes]``. One layer becomes these ONNX ops::

    Conv2D          Transpose(NHWC->NCHW), Conv (pads, strides), Transpose(NCHW->NHWC), activation
    Dense           Gemm (x @ W + b), activation
    MaxPool2D       Transpose(NHWC->NCHW), MaxPool (kernel, strides), Transpose(NCHW->NHWC)
    AveragePooling2D  Transpose, AveragePool (kernel, strides, pads, count_include_pad 0), Transpose
    GlobalAveragePooling2D  Transpose, GlobalAveragePool, Flatten (axis 1): (N, C)
    BatchNormalization  Sub (moving_mean), Mul (gamma / sqrt(moving_variance + epsilon)), Add (beta)
    Residual        the block's layers' ops, the projection's (if any), Add; names nested in the Residual's
    ReLU            Relu
    LeakyReLU       LeakyRelu (alpha)
    Activation      Relu | LeakyRelu (alpha 0.2) | Sigmoid | Tanh | Softmax (last axis) | nothing (linear)
    Dropout         nothing: inference is the identity
    Flatten         Flatten (axis 1): the tensor is NHWC there, so H, then W, then C, as minicnn's
    Rescaling       Mul (scale), Add (offset; left out when 0)
    Normalization   Sub (mean), Div (max(sqrt(variance), 1e-7)), constants shaped to broadcast
    (the end)       Softmax (last axis), unless the last layer's own softmax is already there

Between layers the tensor stays NHWC, as in minicnn: ONNX's Conv and MaxPool want NCHW, so
each wraps itself in a pair of Transposes (runtimes cancel the pairs that meet), as the pools
do, and every other op, Flatten and the per-channel constants of Normalization and
BatchNormalization (inference: the moving statistics, folded) included, sees minicnn's layout.
"""

from __future__ import annotations

import numpy as np

from .._version import __version__
from ..backend import to_numpy
from ..layers import (
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
    Normalization,
    ReLU,
    Rescaling,
    Residual,
)
from ..layers.keras_activations import LEAKY_RELU_SLOPE
from ..layers.normalization import EPSILON
from ..run.outputs import write_atomic

MIN_OPSET = 13  # Softmax over one axis (not "flatten from axis") since opset 13
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
SUPPORTED = (Conv2D, Dense, MaxPool2D, ReLU, LeakyReLU, Activation, Dropout, Flatten, Rescaling, Normalization) + (
    BatchNormalization,
    AveragePooling2D,
    GlobalAveragePooling2D,
    Residual,
)


def save_onnx(model, path, opset: int = 17) -> None:
    """Write ``model`` (a built minicnn Sequential) to ``path`` as an ONNX file of opset ``opset``.

    Input ``"input"``: float32 ``[N, H, W, C]``; output ``"probabilities"``: float32
    ``[N, classes]``, what ``model.predict`` gives (see the module's table for each layer's ops).
    Weights are written as float32. A layer kind outside the table is refused by name, with
    a ValueError, before anything is written; the file is checked with
    ``onnx.checker.check_model(full_check=True)`` and written atomically. Needs the ``onnx``
    package (``pip install -e ".[onnx]"``).
    """
    for layer in _every_layer(model.layers):
        if type(layer) not in SUPPORTED:
            raise ValueError(
                f"save_onnx: layer {layer.name!r} ({type(layer).__name__}) has no ONNX form here; "
                f"supported: {', '.join(k.__name__ for k in SUPPORTED)}"
            )
    if not model.layers or model.input_shape is None:
        raise ValueError("save_onnx: build the model first (give it an input_shape), and give it layers")
    onnx = _import_onnx()
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"save_onnx: opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}], got {opset}")
    proto = onnx_model(model, opset)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    write_atomic(path, lambda f: f.write(data))


def onnx_model(model, opset: int = 17):
    """The ``onnx.ModelProto`` that :func:`save_onnx` writes (unchecked)."""
    onnx = _import_onnx()
    graph = _GraphBuilder(onnx.helper)
    x = "input"
    for i, layer in enumerate(model.layers):
        x = graph.layer(layer, x, f"{i}_{layer.name}")
    if not model.outputs_probabilities:  # predict's softmax of the logits
        graph.node("Softmax", [x], "softmax", axis=-1)
    graph.nodes[-1].output[0] = "probabilities"  # the last Softmax's output is the graph's
    tensor = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info("input", tensor, ["N", *model.input_shape])]
    outputs = [onnx.helper.make_tensor_value_info("probabilities", tensor, ["N", *model.output_shape])]
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, model.name, inputs, outputs, graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="minicnn",
        producer_version=__version__,
        doc_string="NHWC float32 pictures in, class probabilities out (minicnn's predict)",
    )
    return proto


class _GraphBuilder:
    """Nodes and initializers, appended one layer at a time; each op's output named after its node."""

    def __init__(self, helper):
        self.helper, self.nodes, self.initializers = helper, [], []

    def node(self, op: str, inputs: list, name: str, **attributes) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def constant(self, name: str, value) -> str:
        array = np.ascontiguousarray(np.asarray(value), dtype=np.float32)  # float32 whatever the model's dtype
        self.initializers.append(
            self.helper.make_tensor(name, 1, array.shape, array.tobytes(), raw=True)  # 1: TensorProto.FLOAT
        )
        return name

    def activation(self, kind: str, x: str, name: str) -> str:
        """The op of a Keras activation name (Conv2D, Dense, Activation); ``x`` itself for linear."""
        if kind == "linear":
            return x
        if kind == "leaky_relu":
            return self.node("LeakyRelu", [x], f"{name}/leaky_relu", alpha=LEAKY_RELU_SLOPE)
        op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}[kind]
        return self.node(op, [x], f"{name}/{kind}", **({"axis": -1} if op == "Softmax" else {}))

    def layer(self, layer, x: str, name: str) -> str:
        """Append ``layer``'s ops reading tensor ``x``; the name of its output tensor."""
        params = {k: to_numpy(v) for k, v in layer.params.items()}  # host copies (CuPy too)
        if isinstance(layer, Conv2D):
            pt, pb, pl, pr = layer.pads
            W = self.constant(f"{name}/W", params["W"].transpose(3, 2, 0, 1))  # (kh, kw, C, F) -> (F, C, kh, kw)
            b = self.constant(f"{name}/b", params["b"])
            x = self.node("Transpose", [x], f"{name}/to_nchw", perm=TO_NCHW)
            x = self.node(
                "Conv", [x, W, b], f"{name}/conv", kernel_shape=list(layer.kernel_size),
                strides=list(layer.strides), pads=[pt, pl, pb, pr],
            )  # fmt: skip
            x = self.node("Transpose", [x], f"{name}/to_nhwc", perm=TO_NHWC)
            return self.activation(layer.activation, x, name)
        if isinstance(layer, Dense):
            W, b = self.constant(f"{name}/W", params["W"]), self.constant(f"{name}/b", params["b"])
            return self.activation(layer.activation, self.node("Gemm", [x, W, b], f"{name}/gemm"), name)
        if isinstance(layer, MaxPool2D):
            x = self.node("Transpose", [x], f"{name}/to_nchw", perm=TO_NCHW)
            x = self.node(
                "MaxPool", [x], f"{name}/max_pool", kernel_shape=list(layer.pool_size), strides=list(layer.strides)
            )
            return self.node("Transpose", [x], f"{name}/to_nhwc", perm=TO_NHWC)
        if isinstance(layer, ReLU):
            return self.activation("relu", x, name)
        if isinstance(layer, LeakyReLU):
            return self.node("LeakyRelu", [x], f"{name}/leaky_relu", alpha=layer.alpha)
        if isinstance(layer, Activation):
            return self.activation(layer.activation, x, name)
        if isinstance(layer, Dropout):
            return x
        if isinstance(layer, Flatten):
            return self.node("Flatten", [x], f"{name}/flatten", axis=1)
        if isinstance(layer, Rescaling):
            x = self.node("Mul", [x, self.constant(f"{name}/scale", layer.scale)], f"{name}/mul")
            if not layer.offset:
                return x
            return self.node("Add", [x, self.constant(f"{name}/offset", layer.offset)], f"{name}/add")
        if isinstance(layer, Normalization):
            mean, variance = layer.statistics()
            d = np.maximum(np.sqrt(variance), EPSILON)  # in float64, then float32, as the layer does
            shape = layer._broadcast_shape
            x = self.node("Sub", [x, self.constant(f"{name}/mean", mean.reshape(shape))], f"{name}/sub")
            return self.node("Div", [x, self.constant(f"{name}/denominator", d.reshape(shape))], f"{name}/div")
        if isinstance(layer, BatchNormalization):
            return self.batchnorm(layer, x, name)
        if isinstance(layer, AveragePooling2D):
            pt, pb, pl, pr = layer.pads
            x = self.node("Transpose", [x], f"{name}/to_nchw", perm=TO_NCHW)
            x = self.node(
                "AveragePool", [x], f"{name}/average_pool", kernel_shape=list(layer.pool_size),
                strides=list(layer.strides), pads=[pt, pl, pb, pr], count_include_pad=0,
            )  # fmt: skip
            return self.node("Transpose", [x], f"{name}/to_nhwc", perm=TO_NHWC)
        if isinstance(layer, GlobalAveragePooling2D):
            x = self.node("Transpose", [x], f"{name}/to_nchw", perm=TO_NCHW)
            x = self.node("GlobalAveragePool", [x], f"{name}/global_average_pool")  # (N, C, 1, 1)
            return self.node("Flatten", [x], f"{name}/flatten", axis=1)
        if isinstance(layer, Residual):
            return self.residual(layer, x, name)
        raise ValueError(f"save_onnx: no ONNX form for {type(layer).__name__}")

    def batchnorm(self, layer, x: str, name: str) -> str:
        """Inference's ``gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta``, over the last
        axis: three element-wise ops whose ``(C,)`` constants broadcast over NHWC (or ``(N, C)``)."""
        state = {k: to_numpy(v).astype(np.float32) for k, v in layer.state.items()}
        invstd = np.float32(1) / np.sqrt(state["moving_variance"] + np.float32(layer.epsilon))  # float32, as the layer
        scale = invstd * to_numpy(layer.params["gamma"]).astype(np.float32) if layer.scale else invstd
        x = self.node("Sub", [x, self.constant(f"{name}/moving_mean", state["moving_mean"])], f"{name}/sub")
        x = self.node("Mul", [x, self.constant(f"{name}/scale", scale)], f"{name}/mul")
        if not layer.center:
            return x
        return self.node("Add", [x, self.constant(f"{name}/beta", to_numpy(layer.params["beta"]))], f"{name}/add")

    def residual(self, layer, x: str, name: str) -> str:
        """``F(x) + P(x)``: the block's ops one after the other, the projection's beside them, an Add.

        Inner names are ``<residual>/<j>_<Class>`` and ``<residual>/projection_<Class>``, as the
        Residual keys its parameters, so they stay unique however deep Residuals nest."""
        f = x
        for j, inner in enumerate(layer.layers):
            f = self.layer(inner, f, f"{name}/{j}_{type(inner).__name__}")
        projection = layer.projection
        p = x if projection is None else self.layer(projection, x, f"{name}/projection_{type(projection).__name__}")
        return self.node("Add", [f, p], f"{name}/add")


def _every_layer(layers):
    """``layers`` and, depth first, the layers inside each Residual (its block, its projection)."""
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _every_layer(layer.sublayers())


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('save_onnx needs the onnx package: pip install onnx (or pip install -e ".[onnx]")') from None
    return onnx
