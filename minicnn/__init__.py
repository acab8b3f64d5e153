"""minicnn: a convolutional network library written from scratch in NumPy/CuPy.

Read it in this order: ``backend`` (the array module) -> ``layers`` (forward and
backward by hand) -> ``losses`` -> ``sequential`` (chaining them) -> ``optim`` (updating
the weights) -> ``training`` (fit, evaluate, predict) -> ``datasets`` / ``interpret`` /
``viz`` (data in, what the network learnt, pictures out). README's table lists every module.
"""

from . import (  # noqa: E402
    callbacks,
    datasets,
    distributed,
    gradcheck,
    interrupts,
    kernels,
    layers,
    losses,
    models,  # noqa: E402
    optim,
    outputs,
    training,
)
from ._version import __version__  # noqa: F401
from .backend import get_array_module, get_backend, set_backend  # noqa: E402
from .checkpoint import CheckpointError  # noqa: E402
from .kernels import get_kernels, set_kernels, use_kernels  # noqa: E402
from .layers import no_grad  # noqa: E402
from .sequential import Sequential, TrainingDiverged, load_model  # noqa: E402


def __getattr__(name):
    # viz pulls in matplotlib; import both on first use so `import minicnn` stays quick.
    if name in ("viz", "interpret"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
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
]
