"""minicnn: a convolutional network library written from scratch in NumPy/CuPy.

Read it in this order: ``backend`` (the array module) -> ``layers`` (forward and
backward by hand) -> ``losses`` -> ``sequential`` (chaining them) -> ``optim`` (updating
the weights) -> ``training`` (fit, evaluate, predict) -> ``datasets`` / ``interpret`` /
``viz`` (data in, what the network learnt, pictures out). README's table lists every module.
"""

from . import _moved, kernels, layers, losses, optim, training  # the book: what one training step runs
from ._version import __version__  # noqa: F401
from .backend import get_array_module, get_backend, set_backend
from .kernels import get_kernels, set_kernels, use_kernels
from .layers import no_grad
from .layers.base import Input
from .sequential import Sequential, TrainingDiverged, load_model

_moved.install()  # minicnn.checkpoint, minicnn.parallel, ...: the 0.2 names of modules now in rooms

# Loaded on first use (`minicnn.datasets`, `from minicnn import utils`), so `import minicnn` stays light:
# data sets, MPI, plots and file formats are not imported until a program touches them.
LAZY = (
    "callbacks",
    "datasets",
    "distributed",
    "gradcheck",
    "interop",
    "interpret",
    "interrupts",
    "keras_style",
    "models",
    "optimizers",
    "outputs",
    "run",
    "utils",
    "viz",
)


# Keras names minicnn does not have, each refused with what to do instead.
NOT_IN_MINICNN = {
    "Model": "minicnn has no functional API (keras.Model(inputs, outputs)) nor subclassed models: build a Sequential",
    "Functional": "minicnn has no functional API: build a Sequential",
    "ops": "minicnn has no keras.ops: its layers compute with NumPy/CuPy (minicnn.get_backend().xp)",
    "mixed_precision": "minicnn has no mixed precision: a model is float32 or float64 (Sequential(dtype=...))",
    "distribution": "minicnn has no distribution strategies: see minicnn.distributed (MPI) and threads in fit",
    "applications": "minicnn has no pretrained applications: minicnn.models.cifar10_cnn is its ready-made model",
}


# Names from the tools' rooms, found there on first use: {name: module}.
LAZY_NAMES = {"CheckpointError": "run.checkpoint"}


def __getattr__(name):
    if name in LAZY or name in LAZY_NAMES or f"minicnn.{name}" in _moved.MOVED:
        import importlib

        module = importlib.import_module(_moved.new_name(f"minicnn.{name}") or f"minicnn.{LAZY_NAMES.get(name, name)}")
        return getattr(module, name) if name in LAZY_NAMES else module
    if name in NOT_IN_MINICNN:
        raise layers.NotInMinicnn(f"minicnn.{name}: {NOT_IN_MINICNN[name]} (docs/from_keras.md)")
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")


__all__ = [
    "__version__",
    "set_backend",
    "get_backend",
    "get_array_module",
    "set_kernels",
    "get_kernels",
    "use_kernels",
    "Sequential",
    "Input",
    "load_model",
    "TrainingDiverged",
    "CheckpointError",
    "layers",
    "kernels",
    "losses",
    "optim",
    "models",
    "datasets",
    "gradcheck",
    "callbacks",
    "distributed",
    "interrupts",
    "outputs",
    "training",
    "interpret",
    "viz",
    "no_grad",
    "utils",
    "optimizers",
    "interop",
    "keras_style",
]
