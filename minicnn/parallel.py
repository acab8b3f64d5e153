r"""Every CPU core at once: a batch cut into shards that run concurrently on replicas of the model.

Why threads help NumPy at all
-----------------------------
A BLAS matrix product can use many cores, but NumPy's copies and element-wise passes (padding,
the im2col copy, LeakyReLU, max-pool, dropout, Adam) run on one. With BLAS on two threads,
one core idles for about half of every step. Instead, run *whole forward and backward passes*
on different images at the same time: NumPy releases Python's GIL inside BLAS calls, copies and
ufuncs on large arrays, so two threads each doing their own pass keep two cores busy, each with
BLAS on one thread.

Why this is still the same gradient
-----------------------------------
The mini-batch loss is the mean of per-example losses, so its gradient is the mean of
per-example gradients. Cut the batch ``B`` into shards ``B_0 .. B_{K-1}``; shard ``k``'s pass
gives ``g_k``, the gradient of its own mean loss; then::

    grad L = sum_k (|B_k| / |B|) g_k

exactly what :mod:`minicnn.distributed` computes across processes (below, the dense head makes
the weights unnecessary within a process: the shards' gradients simply add up; across
processes ``Communicator.average_gradients`` then weights each process's sum by its count).

The dense head runs in two halves
---------------------------------
Only the layers up to the last ``Flatten`` (the convolutions: much computation on large
activations, few weights) run in 16-image shards. The dense head after it (few activations,
most of the weights: 97% of the documented model's parameters sit in its first Dense layer)
runs in :data:`HEAD_SHARDS` = 2 halves of the batch: each half writes one full 4 MB weight
gradient, so 16-row shards would write eight of them (31 vs 7 ms per 128 images), while
halves cost one extra 4 MB sum and keep both cores busy. So a step is: shards forward
through the body, the halves forward through the head, the loss on the whole batch, the
halves backward, shards backward through the body. Each body shard starts from its rows of
the head's input gradient, the gradient of the *whole batch's* mean loss, so every shard's
gradients are already terms of the batch gradient, and they simply add up. (Data-parallel
convolutions and a differently split dense part: Krizhevsky's "one weird trick", 2014.)

Everything runs on one BLAS thread per worker, the head too: after a product on two BLAS
threads, OpenBLAS's idle worker keeps spinning for a while, on the very core the next shard
needs (measured: a whole-batch head 4 ms faster on two BLAS threads, the shards' backward
after it 35 ms slower).

Reproducible whatever the core count
------------------------------------
The number of shards depends only on the batch size (:data:`SHARD_SIZE` images each), never on
the number of threads; shard ``k`` always runs on replica ``k``, whose Dropout layers draw from
their own stream seeded by ``(seed, epoch, position, shard)``; the shards' gradients are added
in shard order; and BLAS runs on one thread inside every shard. So 1, 2 or 4 threads perform
the same floating-point operations in the same order and give bitwise the same weights. (The
result does differ, by rounding, from one unsharded pass over the whole batch.)

A replica (:meth:`minicnn.layers.Layer.replica`) shares its layer's parameter arrays — an
optimizer step or a load is seen by every replica at once — and has its own gradients,
backward cache and work arrays, so shards never write into each other's memory.

Only the NumPy backend shards: on a GPU one stream already runs each operation on all its
cores, so CuPy keeps one pass per batch and no threads.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor, wait

from .backend import get_array_module, get_backend

SHARD_SIZE = 16  # images per shard: small enough that a conv's patch matrix stays in cache,
# large enough that per-layer Python overhead stays small (measured in benchmarks/)
HEAD_SHARDS = 2  # the dense head runs in two halves of the batch: each writes one full weight
# gradient (4 MB for the documented model), so few and large shards, not 16 rows each


def thread_count(threads=None, processes: int = 1) -> int:
    """The number of worker threads: ``threads``, else ``$MINICNN_THREADS``, else every core this
    process may use, shared among ``processes`` processes on one machine (MPI ranks)."""
    where = "threads"
    if threads is None and os.environ.get("MINICNN_THREADS"):
        threads, where = os.environ["MINICNN_THREADS"], "$MINICNN_THREADS"
        try:
            threads = int(threads)
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


class ShardPool:
    """Replicas of ``model`` (replica ``k`` runs shard ``k``) and the threads that run them.

    ``run(fn, bounds)`` calls ``fn(k, replica_k, start, stop)`` for every shard, on up to
    ``threads`` threads at once, waits for all of them, and returns their results in shard order.
    If a shard raises, the first such error (in shard order) is raised here, after every shard
    has finished: no worker is left running and no shard's result is silently dropped.
    """

    def __init__(self, model):
        self.model = model
        self.replicas: list = []
        self._executor = None
        self._threads = 0

    def ensure(self, k: int):
        """At least ``k`` replicas; rebuilt if the model's parameters were replaced since."""
        stale = self.replicas and any(
            r.params is not l.params for r, l in zip(self.replicas[0].layers, self.model.layers)
        )
        if stale or (self.replicas and len(self.replicas[0].layers) != len(self.model.layers)):
            self.replicas = []
        while len(self.replicas) < k:
            self.replicas.append(self.model.replica())
        return self.replicas[:k]

    def run(self, fn, bounds, threads: int):
        """``fn(k, replica_k, start, stop)`` for every shard ``k`` of ``bounds``, on up to ``threads``
        threads; the results in shard order."""
        replicas = self.ensure(len(bounds))
        return self.call([functools.partial(fn, k, replicas[k], lo, hi) for k, (lo, hi) in enumerate(bounds)], threads)

    def call(self, tasks, threads: int):
        """Call every argument-free function of ``tasks`` on up to ``threads`` threads; their
        results in order (the first error, in order, raised after all have finished)."""
        if threads <= 1 or len(tasks) == 1:
            return [task() for task in tasks]
        if self._executor is None or self._threads != threads:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = ThreadPoolExecutor(threads, thread_name_prefix="minicnn-shard")
            self._threads = threads
        futures = [self._executor.submit(task) for task in tasks]
        wait(futures)
        return [f.result() for f in futures]  # re-raises a task's error, in order


def head_bounds(n: int) -> list[tuple[int, int]]:
    """The head's shards of a batch of ``n``: two halves (one for ``n = 1``), whatever the threads."""
    return shard_bounds(n, max(1, -(-n // HEAD_SHARDS)))


def replicas_needed(n: int) -> int:
    """How many replicas a batch of ``n`` runs on (body shards or head halves, the more)."""
    return max(len(shard_bounds(n)), len(head_bounds(n)))


def head_start(model) -> int:
    """Index of the first layer of the dense head: the layer after the last Flatten (none: no head)."""
    from .layers import Flatten

    flattens = [i for i, layer in enumerate(model.layers) if isinstance(layer, Flatten)]
    return flattens[-1] + 1 if flattens else len(model.layers)


def _join(xp, parts):
    return parts[0] if len(parts) == 1 else xp.concatenate(parts)


def enabled() -> bool:
    """True where batches run in shards: the NumPy backend (a GPU keeps one pass per batch)."""
    return get_backend().name == "numpy"


def sum_shard_gradients(model, replicas, stop, start=0):
    """The model's grads of ``layers[start:stop]`` := the sum of the replicas' grads, in shard order.

    No weights: each shard's backward started from its rows of the whole batch's gradient
    (the loss's, or the head's ``dx``), so its parameter gradients are already terms of the
    batch gradient."""
    for i in range(start, stop):
        for name in model.layers[i].params:
            total = replicas[0].layers[i].grads[name]  # the first shard's own array, added into:
            for replica in replicas[1:]:  # its backward makes a fresh one next step
                total += replica.layers[i].grads[name]
            model.layers[i].grads[name] = total


def sharded_train_step(model, loss_fn, optimizer, xb, yb, reduce_gradients=None, *, threads=1):
    """:func:`minicnn.training.train_step` with the body in shards that run at once on replicas
    and the dense head in two halves (see above); same arguments and returns, plus
    ``threads``. ``reduce_gradients()`` (MPI) runs on the combined gradient before the update."""
    xp = get_array_module(xb)
    pool, bounds, halves, h = shard_pool(model), shard_bounds(len(xb)), head_bounds(len(xb)), head_start(model)
    logits = _sharded_forward(pool, xb, h, threads, training=True)
    loss = loss_fn.forward(logits, yb)
    dlogits = loss_fn.backward()
    dfeatures = _join(
        xp, pool.run(lambda k, r, lo, hi: r.backward(dlogits[lo:hi], need_input_grad=True, start=h), halves, threads)
    )
    pool.run(lambda k, r, lo, hi: r.backward(dfeatures[lo:hi], stop=h), bounds, threads)
    sum_shard_gradients(model, pool.replicas[: len(bounds)], h)
    sum_shard_gradients(model, pool.replicas[: len(halves)], len(model.layers), start=h)
    if reduce_gradients is not None:
        reduce_gradients()
    optimizer.step(run=lambda tasks: pool.call(tasks, threads))  # blocks of rows at once
    return loss, (logits.argmax(axis=1) == yb).sum()


def sharded_logits(model, xb, threads):
    """Inference-mode logits of a batch: the body in shards at once, then the head in halves."""
    return _sharded_forward(shard_pool(model), xb, head_start(model), threads, training=False)


def _sharded_forward(pool, xb, h, threads, training):
    """Logits of a batch: ``layers[:h]`` (the body) in shards, ``layers[h:]`` (the head) in halves."""
    xp = get_array_module(xb)
    features = _join(
        xp,
        pool.run(lambda k, r, lo, hi: r.forward(xb[lo:hi], training=training, stop=h), shard_bounds(len(xb)), threads),
    )
    return _join(
        xp,
        pool.run(
            lambda k, r, lo, hi: r.forward(features[lo:hi], training=training, start=h), head_bounds(len(xb)), threads
        ),
    )


def replicas_of(model) -> list:
    """The replicas the model's pool holds so far (none if it has no pool yet)."""
    pool = model.__dict__.get("_shard_pool")
    return pool.replicas if pool is not None else []


def shard_pool(model) -> ShardPool:
    """The model's pool, made on first use."""
    pool = model.__dict__.get("_shard_pool")
    if pool is None:
        pool = model._shard_pool = ShardPool(model)
    return pool


_controller = None


def one_blas_thread():
    """A context in which NumPy's BLAS runs on one thread (threadpoolctl), so shards, not BLAS,
    use the cores."""
    global _controller
    if _controller is None:  # finding the BLAS libraries takes a while: once per process
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
