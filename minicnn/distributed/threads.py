r"""Threads: a batch cut into shards that run at once, behind the model's own interface.

:func:`minicnn.training.train_step` is four lines: ``model.forward``, the loss,
``model.backward``, ``optimizer.step()``. On the NumPy backend :func:`execution` hands it
a :class:`ShardedModel` and a :class:`ShardedOptimizer` instead of the model and its
optimizer: the same four calls, whose work runs on several threads. No layer, optimizer or
``Sequential`` knows about it. (On CuPy one stream already uses the whole GPU: the model and
optimizer go in unchanged.)

Why threads help NumPy: BLAS can use many cores, but NumPy's copies and element-wise passes
(padding, im2col, LeakyReLU, max-pool, dropout, Adam) run on one. NumPy releases the GIL
inside them, so whole forward and backward passes on different images, one per thread (BLAS
on one thread each), keep every core busy.

Why it is the same gradient: the batch loss is the mean of per-example losses, so its
gradient is a sum over shards. The layers up to the last one that takes images, a ``Flatten``
(the body: convolutions, large activations, few weights) run in shards of :data:`SHARD_SIZE` images on *replicas*
(layers sharing the model's parameter arrays, with their own gradients and caches); the dense
head after it (most of the weights) runs in :data:`HEAD_SHARDS` halves. The loss is taken on
the whole batch, so every shard's backward starts from its rows of the whole batch's
gradient and the shards' parameter gradients simply add up (Krizhevsky's "one weird trick").

Why any thread count gives the same bits: the shards depend only on the batch size, shard
``k`` always runs on replica ``k`` (Dropout stream :func:`shard_seed`), gradients are added in
shard order, and BLAS runs on one thread: 1, 2 or 4 threads do the same operations in the
same order. (Different, by rounding, from one unsharded pass.) Figures: benchmarks/RESULTS.md.

BatchNormalization: its training forward normalises by the *batch's* statistics, so a shard's
own would differ from the batch's and the result would depend on the shards. In a model with
such a layer (``mixes_examples``, inside a Residual too) every shard's twin of the layer sums its
partial sums with the other shards' (:class:`ShardGroup`): each shard waits for the others there,
adds the shards' sums in shard order, and goes on with the whole batch's mean and variance (and,
backward, the whole batch's two gradient sums). The shards then run at once, one thread each, of
which ``2 * threads`` compute at a time (a shard waiting for the others lets another one in). The
result is one pass's, by rounding, and the same bits for any thread count. The first shard's
twin alone moves the moving statistics.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from ..backend import get_array_module, get_backend
from ..layers import Dropout
from ..seeds import derive_seed

if TYPE_CHECKING:  # names for the signatures only: importing them here would be circular
    from ..optim_base import Optimizer
    from ..sequential import Sequential

#: Images per body shard: a conv's patch matrix stays in cache, and the per-layer overhead small.
SHARD_SIZE = 16
HEAD_SHARDS = 2  # the head in halves: each shard writes one whole (4 MB) weight gradient, so few of them
_SHARD_STREAM = 10_000  # keeps shard streams apart from Sequential's own derive_seed(seed, position)
_BLOCK = 1 << 17  # elements per block of a threaded optimizer update (512 KB of float32: cache-sized)


def thread_count(threads: int | None = None, processes: int = 1) -> int:
    """The number of worker threads: ``threads``, else ``$MINICNN_THREADS``, else every core this
    process may use, shared among ``processes`` processes on one machine (MPI ranks)."""
    where = "threads"
    if threads is None and os.environ.get("MINICNN_THREADS"):
        where = "$MINICNN_THREADS"
        try:
            threads = int(os.environ["MINICNN_THREADS"])
        except ValueError:
            raise ValueError(f"{where} must be a positive integer, got {os.environ['MINICNN_THREADS']!r}") from None
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // max(1, processes))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{where} must be a positive integer, got {threads!r}")
    return threads


def shard_bounds(n: int, shard_size: int = SHARD_SIZE) -> list[tuple[int, int]]:
    """``(start, stop)`` of the shards of a batch of ``n``: ``ceil(n / shard_size)`` shards as even
    as can be (sizes differ by at most one)."""
    k = max(1, -(-n // shard_size))
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def head_bounds(n: int) -> list[tuple[int, int]]:
    """The head's shards of a batch of ``n``: two halves (one for ``n = 1``), whatever the threads."""
    return shard_bounds(n, max(1, -(-n // HEAD_SHARDS)))


def head_start(model) -> int:
    """Index of the first layer of the dense head: the layer after the last one that takes images
    (an input of more than one axis: a Flatten, a global pooling); no such layer, no head."""
    takes_images = [i for i, layer in enumerate(model.layers) if len(layer.input_shape or ()) > 1]
    return takes_images[-1] + 1 if takes_images else len(model.layers)


def mixes_examples(model) -> bool:
    """True if a layer's training forward couples the examples of a batch (BatchNormalization)."""
    return any(getattr(layer, "mixes_examples", False) for layer in model.layers)


def shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard``'s Dropout stream, from the model's Dropout layer's ``seed``.

    A function of ``(seed, shard)`` alone, never of the thread that runs the shard: so 1, 2 or
    4 threads draw the same masks, and when the model's layer is reseeded (every epoch, from
    ``(seed, epoch, position[, rank])``, see :func:`minicnn.seeds.reseed_dropout`) its shards
    follow."""
    return derive_seed(seed, _SHARD_STREAM + shard)


def enabled() -> bool:
    """True where batches run in shards: the NumPy backend (a GPU keeps one pass per batch)."""
    return get_backend().name == "numpy"


def replica(model):
    """A twin of ``model`` whose layers share its parameter arrays (the same ``params`` dicts: an
    update or a load is seen at once) and have their own ``grads``, backward caches, work arrays
    and Dropout generators, so shards running at once never write into each other's memory."""
    twin = copy.copy(model)
    twin.layers = [layer.twin() for layer in model.layers]  # a Dropout's own generator: see ensure_replicas
    return twin


def _join(parts):
    return parts[0] if len(parts) == 1 else get_array_module(parts[0]).concatenate(parts)


class ShardedModel:
    """``model`` with ``forward``/``backward`` run in shards on ``threads`` threads (see above).

    ``backward`` leaves the batch's gradient in the *model's* ``grads``, where an optimizer (and
    :meth:`minicnn.distributed.Communicator.average_gradients`) expect it. A context manager:
    leaving it stops the threads. Any error in a shard is raised after every shard finished.
    """

    def __init__(self, model, threads: int = 1):
        self.model = model
        self.threads = int(threads)
        self.head = head_start(model)
        self.replicas: list = []  # replica k runs shard k
        self._executor: ThreadPoolExecutor | None = None
        self._bounds: tuple = ((), ())
        self._following: dict = {}  # (shard, position) -> the model's Dropout generator it derives from
        self._mixing = False  # the pass under way couples a batch's examples: see run
        self._crowd: ThreadPoolExecutor | None = None  # a thread per shard, for such passes

    def __enter__(self) -> ShardedModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for executor in (self._executor, self._crowd):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._crowd = None

    def call(self, tasks: Sequence[Callable[[], Any]]) -> list:
        """Call argument-free functions on the threads; their results in order (the first error,
        in order, raised after all have finished: no worker is left running)."""
        if self.threads <= 1 or len(tasks) == 1:
            return [task() for task in tasks]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="minicnn-shard")
        futures = [self._executor.submit(task) for task in tasks]
        wait(futures)
        return [f.result() for f in futures]

    def run(self, fn: Callable, bounds) -> list:
        """``fn(replica_k, start, stop)`` for every shard ``k`` of ``bounds``, on the threads (in a
        training pass that mixes examples, all at once in a :class:`ShardGroup`)."""
        tasks = [functools.partial(fn, self.replicas[k], lo, hi) for k, (lo, hi) in enumerate(bounds)]
        if not self._mixing:
            return self.call(tasks)
        group = ShardGroup(len(tasks), 2 * self.threads)  # two per core: one computes while the other runs Python
        for k, twin in enumerate(self.replicas[: len(tasks)]):
            for layer in all_layers(twin.layers):
                if hasattr(layer, "whole_batch"):  # a layer that sums over the batch (BatchNormalization)
                    layer.whole_batch = functools.partial(group.sum, k)
                    layer.follows_batch = k == 0
        if self._crowd is None or self._crowd._max_workers < len(tasks):
            if self._crowd is not None:
                self._crowd.shutdown(wait=True)  # idle: a larger batch needs more threads
            self._crowd = ThreadPoolExecutor(len(tasks), thread_name_prefix="minicnn-shard-group")
        futures = [self._crowd.submit(group.run, task) for task in tasks]
        wait(futures)
        errors: list[BaseException] = [e for f in futures if (e := f.exception()) is not None]
        if errors:  # the shard's own error, not the broken meeting it left the others with
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return [f.result() for f in futures]

    def ensure_replicas(self, k: int) -> list:
        """At least ``k`` replicas, each Dropout layer on its shard's stream: restarted from
        :func:`shard_seed` whenever the model's own layer was reseeded since (a new generator)."""
        while len(self.replicas) < k:
            self.replicas.append(replica(self.model))
        for shard, twin in enumerate(self.replicas):
            for i, (layer, t) in enumerate(zip(self.model.layers, twin.layers)):
                if isinstance(layer, Dropout) and self._following.get((shard, i)) is not layer.generator:
                    t.reseed(shard_seed(layer.seed, shard))
                    self._following[shard, i] = layer.generator
        return self.replicas[:k]

    def forward(self, x, training: bool = False):
        """Logits of the batch ``x``: the body in shards, then the head in halves."""
        n, h = len(x), self.head
        self._bounds = bounds = (shard_bounds(n), head_bounds(n))
        self._mixing = training and mixes_examples(self.model)
        self.ensure_replicas(max(len(bounds[0]), len(bounds[1])))
        features = _join(self.run(lambda r, lo, hi: r.forward(x[lo:hi], training=training, stop=h), bounds[0]))
        return _join(self.run(lambda r, lo, hi: r.forward(features[lo:hi], training=training, start=h), bounds[1]))

    def backward(self, dlogits) -> None:
        """The head's halves backward, then the body's shards; the model's ``grads`` := the
        replicas' gradients summed in shard order (no weights: see the module docstring)."""
        body, halves = self._bounds
        h = self.head
        head = self.run(lambda r, lo, hi: r.backward(dlogits[lo:hi], need_input_grad=True, start=h), halves)
        dfeatures = _join(head)
        self.run(lambda r, lo, hi: r.backward(dfeatures[lo:hi], stop=h), body)
        self._sum_gradients(range(h), len(body))
        self._sum_gradients(range(h, len(self.model.layers)), len(halves))

    def _sum_gradients(self, positions, shards: int) -> None:
        for i in positions:
            for name in self.model.layers[i].params:
                total = self.replicas[0].layers[i].grads[name]  # the first shard's own array, added into:
                for twin in self.replicas[1:shards]:  # its backward makes a fresh one next step
                    total += twin.layers[i].grads[name]
                self.model.layers[i].grads[name] = total


def all_layers(layers) -> Iterator:
    """Every layer of ``layers``, and those inside each (a Residual's), depth first."""
    for layer in layers:
        yield layer
        yield from all_layers(layer.sublayers() if hasattr(layer, "sublayers") else [])


class ShardGroup:
    """The shards of one pass, run at once, that meet to sum a partial result (see the module
    docstring). At most ``permits`` of them compute at a time; one that waits lets another in.
    An error in one shard breaks the meeting for the others, so no shard waits for ever."""

    def __init__(self, shards: int, permits: int):
        self.permits = threading.Semaphore(permits)
        self.meeting = threading.Barrier(shards)
        self.slots: list[list] = [[None] * shards, [None] * shards]  # two, used in turn (see sum)
        self.calls = [0] * shards

    def run(self, task: Callable[[], Any]):
        with self.permits:
            try:
                return task()
            except BaseException:
                self.meeting.abort()  # the others stop waiting for this shard
                raise

    def sum(self, shard: int, partial):
        """The shards' ``partial`` values (arrays, numbers, or tuples of them) added in shard
        order. Each shard's i-th call meets the others' i-th: a shard can be a call ahead only,
        so alternating two rows of slots keeps one call's values until all have read them."""
        slots = self.slots[self.calls[shard] % 2]
        self.calls[shard] += 1
        slots[shard] = partial
        self.permits.release()
        try:
            self.meeting.wait()
        finally:
            self.permits.acquire()
        total = slots[0]
        for value in slots[1:]:
            total = tuple(a + b for a, b in zip(total, value)) if isinstance(total, tuple) else total + value
        return total


def row_blocks(param) -> list:
    """Row slices of ``param`` of about :data:`_BLOCK` elements each (``[...]`` if it is small)."""
    rows = param.shape[0] if param.ndim else 1
    count = max(1, min(rows, param.size // _BLOCK))
    if param.ndim == 0 or count == 1:
        return [...]
    return [slice(i * rows // count, (i + 1) * rows // count) for i in range(count)]


class ShardedOptimizer:
    """``optimizer.step()`` with large parameters cut into blocks of rows updated at once on the
    threads of ``sharded``: the optimizer's own work (:meth:`Optimizer.updates`), run on threads.
    The update rules are element-wise, so this gives the same bits as one call."""

    def __init__(self, optimizer, sharded: ShardedModel):
        self.optimizer, self.sharded = optimizer, sharded

    def step(self) -> None:
        self.sharded.call(self.optimizer.updates(row_blocks))


@contextlib.contextmanager
def execution(
    model: Sequential, optimizer: Optimizer | None = None, threads: int = 1
) -> Iterator[tuple[Sequential | ShardedModel, Optimizer | ShardedOptimizer | None]]:
    """``(model, optimizer)`` as the training step should call them: on NumPy a
    :class:`ShardedModel` and :class:`ShardedOptimizer` on ``threads`` threads, with BLAS on one
    thread; elsewhere the two unchanged. The one place that chooses (:func:`enabled`)."""
    if not enabled():
        yield model, optimizer
        return
    with one_blas_thread(), ShardedModel(model, threads) as sharded:
        yield sharded, (None if optimizer is None else ShardedOptimizer(optimizer, sharded))


_controller = None


def blas_threads(n: int):
    """A context in which NumPy's BLAS runs on ``n`` threads (threadpoolctl). OpenBLAS splits a
    product's rows and columns among its threads, never the sum, so the bits do not depend on ``n``."""
    global _controller
    if _controller is None:  # finding the BLAS libraries takes a while: once per process
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def one_blas_thread():
    """BLAS on one thread, so that shards, not BLAS, use the cores."""
    return blas_threads(1)
