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

exactly what :mod:`minicnn.distributed` computes across processes. One :class:`GradientBuffer`
does the weighted sum for both: here over the shards of one process, there over the processes
too (their shards' sums are added by one Allreduce before the division).

The dense head runs once
------------------------
Only the layers up to the last ``Flatten`` (the convolutions: much computation on large
activations, few weights) run in shards. The dense head after it (few activations, most of the
weights: 97% of the documented model's parameters sit in its first Dense layer) runs once on
the whole batch, on ``threads`` BLAS threads: sharded, every shard would write a full 4 MB
weight gradient from a 16-row product. So a step is: shards forward through the body, the
head forward, the loss, the head backward, shards backward through the body. The head's
input gradient is the gradient of the *whole batch's* mean loss, so each shard's body
gradients are already terms of the batch gradient, and they simply add up. (This split of
data-parallel convolutions and a whole-batch dense part is Krizhevsky's "one weird trick",
2014.)

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

import os
from concurrent.futures import ThreadPoolExecutor, wait

from .backend import get_array_module, get_backend

SHARD_SIZE = 16   # images per shard: small enough that a conv's patch matrix stays in cache,
                  # large enough that per-layer Python overhead stays small (measured in benchmarks/)


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


class GradientBuffer:
    """One flat array holding every parameter's gradient, in the model's parameter order.

    ``pack`` writes ``sum_k weights[k] * (gradient of sources[k])`` into it, source after source
    in a fixed order; ``unpack`` divides by a total and makes each layer's ``grads`` a view of it.
    A flat buffer is also what one MPI Allreduce sends (see :mod:`minicnn.distributed`).
    """

    def __init__(self):
        self.flat = None

    def pack(self, model, terms):
        """``terms(i)`` -> ``[(grads_dict, weight), ...]`` for layer ``i``: the flat buffer gets
        ``sum weight * grads_dict[name]`` for each of its parameters, terms in the order given
        (none, a zero weight or a missing gradient: nothing added). Returns the flat buffer."""
        params = [(i, name, p) for i, layer in enumerate(model.layers) for name, p in layer.params.items()]
        xp = get_array_module(params[0][2]) if params else get_backend().xp
        size = sum(p.size for _, _, p in params)
        dtype = params[0][2].dtype if params else model.dtype
        if self.flat is None or self.flat.size != size or self.flat.dtype != dtype or get_array_module(self.flat) is not xp:
            self.flat = xp.empty(size, dtype=dtype)
        offset = 0
        for i, name, p in params:
            part = self.flat[offset:offset + p.size]
            parts = [(grads.get(name), w) for grads, w in terms(i) if w]
            parts = [(g, w) for g, w in parts if g is not None]
            if not parts:
                part[...] = 0
            for k, (g, w) in enumerate(parts):
                if k == 0:
                    xp.multiply(g.reshape(-1), dtype.type(w), out=part)
                else:
                    part += g.reshape(-1) * dtype.type(w)
            offset += p.size
        return self.flat

    def unpack(self, model, total):
        """Divide the sum by ``total`` and hand each layer a view of its part as ``grads``."""
        self.flat /= self.flat.dtype.type(total)
        offset = 0
        for layer in model.layers:
            for name, p in layer.params.items():
                layer.grads[name] = self.flat[offset:offset + p.size].reshape(p.shape)
                offset += p.size


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
        self.buffer = GradientBuffer()
        self._executor = None
        self._threads = 0

    def ensure(self, k: int):
        """At least ``k`` replicas; rebuilt if the model's parameters were replaced since."""
        stale = self.replicas and any(r.params is not l.params for r, l in zip(self.replicas[0].layers, self.model.layers))
        if stale or (self.replicas and len(self.replicas[0].layers) != len(self.model.layers)):
            self.replicas = []
        while len(self.replicas) < k:
            self.replicas.append(self.model.replica())
        return self.replicas[:k]

    def run(self, fn, bounds, threads: int):
        replicas = self.ensure(len(bounds))
        jobs = [(k, replicas[k], lo, hi) for k, (lo, hi) in enumerate(bounds)]
        if threads <= 1 or len(jobs) == 1:
            return [fn(*job) for job in jobs]
        if self._executor is None or self._threads != threads:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = ThreadPoolExecutor(threads, thread_name_prefix="minicnn-shard")
            self._threads = threads
        futures = [self._executor.submit(fn, *job) for job in jobs]
        wait(futures)
        return [f.result() for f in futures]          # re-raises a shard's error, in shard order


def head_start(model) -> int:
    """Index of the first layer of the dense head: the layer after the last Flatten (none: no head)."""
    from .layers import Flatten
    flattens = [i for i, layer in enumerate(model.layers) if isinstance(layer, Flatten)]
    return flattens[-1] + 1 if flattens else len(model.layers)


def _forward(layers, x, training):
    for layer in layers:
        x = layer.forward(x, training=training)
    return x


def _backward(layers, dy, input_grad):
    for i in reversed(range(len(layers))):
        dy = layers[i].backward(dy, need_input_grad=i > 0 or input_grad)
    return dy


def _join(xp, parts):
    return parts[0] if len(parts) == 1 else xp.concatenate(parts)


def sharded_train_step(model, loss_fn, optimizer, xb, yb, threads=1, communicator=None, global_batch=None):
    """:func:`minicnn.training.train_step` with the body in shards that run at once on replicas
    and the dense head once on the whole batch (see above). With a ``communicator`` the gradient
    is then averaged over processes (``global_batch``: the batch size summed over them).
    Returns ``(loss, correct)`` for the batch, as :func:`~minicnn.training.train_step` does."""
    xp = get_array_module(xb)
    pool, bounds, h = shard_pool(model), shard_bounds(len(xb)), head_start(model)
    body = pool.run(lambda k, r, lo, hi: _forward(r.layers[:h], xb[lo:hi], True), bounds, threads)
    features = _join(xp, body)
    with blas_threads(threads):
        logits = _forward(model.layers[h:], features, True)
        loss = loss_fn.forward(logits, yb)
        dfeatures = _backward(model.layers[h:], loss_fn.backward(), input_grad=h > 0)
    if h > 0:
        pool.run(lambda k, r, lo, hi: _backward(r.layers[:h], dfeatures[lo:hi], False), bounds, threads)
    replicas = pool.replicas[:len(bounds)]

    def terms(i, weight=1):
        return [(r.layers[i].grads, weight) for r in replicas] if i < h else [(model.layers[i].grads, weight)]

    if communicator is None:
        pool.buffer.pack(model, terms)
        pool.buffer.unpack(model, 1)
    else:                      # this rank's mean gradient, weighted by its example count, then the Allreduce
        communicator.average_gradients(model, len(xb), global_batch, terms=lambda i: terms(i, len(xb)))
    optimizer.step()
    return loss, (logits.argmax(axis=1) == yb).sum()


def sharded_logits(model, xb, threads):
    """Inference-mode logits of a batch: the body in shards at once, the head on the whole batch."""
    xp = get_array_module(xb)
    h = head_start(model)
    body = shard_pool(model).run(lambda k, r, lo, hi: _forward(r.layers[:h], xb[lo:hi], False),
                                 shard_bounds(len(xb)), threads)
    with blas_threads(threads):
        return _forward(model.layers[h:], _join(xp, body), False)


def shard_pool(model) -> ShardPool:
    """The model's pool, made on first use."""
    pool = model.__dict__.get("_shard_pool")
    if pool is None:
        pool = model._shard_pool = ShardPool(model)
    return pool


_controller = None


def blas_threads(n: int):
    """A context in which NumPy's BLAS runs on ``n`` threads (threadpoolctl)."""
    global _controller
    if _controller is None:          # finding the BLAS libraries takes a while: once per process
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def one_blas_thread():
    """A context in which BLAS runs on one thread, so shards, not BLAS, use the cores."""
    return blas_threads(1)
