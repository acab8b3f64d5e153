"""See inside a trained model: a local page served by minicnn itself.

    python -m minicnn.explore runs/cifar10/model.npz --data-dir ~/.cache/minicnn

:mod:`.api` computes the answers (:mod:`.one_number` writes one convolution output out, :mod:`.wire`
encodes arrays and checks indices) (the model's own forward pass and :mod:`minicnn.interpret`),
:mod:`.watch` follows a run folder that training is still writing, :mod:`.server` serves them as
JSON with the page in ``static/``, :mod:`.__main__` is the command. Never imported by
``import minicnn``: the package stays as light as it was.
"""

from .api import Explorer
from .server import make_server
from .watch import WatchedRun
from .wire import ApiError

__all__ = ["ApiError", "Explorer", "WatchedRun", "make_server"]
