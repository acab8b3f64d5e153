"""A doctor for models that will not learn: CS231n's sanity checks, run for you.

    from minicnn.doctor import diagnose
    results = diagnose(model, x, y)          # prints one PASS/FAIL line per check
    [r for r in results if r.passed is False]

or ``python -m minicnn.doctor [--data-dir DIR]`` on the documented model. The checks, in the
order CS231n's "Neural Networks 3" notes give them:

1. **Initial loss.** A freshly built classifier knows nothing, so its softmax should be close
   to uniform and its cross-entropy close to ``ln K`` for ``K`` classes (2.303 for ten).
   Far above it: the logits are large — usually inputs that were not standardised (pixels
   0..255 multiply every logit by about 255), or weights initialised too large.
2. **Gradients, layer by layer.** Each layer of a float64 copy of the model, at the model's own
   shapes and on the inputs it really sees (a couple of examples), is checked with
   :func:`minicnn.gradcheck.check_layer` (dropout masks fixed by their seeds). CS231n's reading
   of a relative error: above 1e-2 the gradient is wrong; 1e-4..1e-2 is suspicious unless the
   function has kinks there; below 1e-4 is fine for kinked functions (ReLU, max-pool), and
   below 1e-7 is right. When a check is off, the known traps are looked for and named: float32
   arithmetic, inputs within ``eps`` of a (Leaky)ReLU's kink, max-pool windows with tied
   maxima, a random layer whose mask cannot be fixed — and the check is repeated with the
   inputs moved off the kinks and ties, so that a trap is not mistaken for a bug.
3. **Learning rate.** A few steps on one batch must bring its loss down and keep it finite.
4. **Overfitting a tiny subset.** A model that can learn must be able to memorise 64 examples
   (reach 99% training accuracy) within a few dozen steps. If it cannot, something between
   the loss and the update is broken.

Every check trains a copy: the model passed in is left as it was.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import get_array_module, get_backend, set_backend, to_numpy
from .gradcheck import check_layer, check_loss
from .input_checks import check_labels
from .layers import LeakyReLU, MaxPool2D, ReLU, no_grad
from .layers.im2col import windows
from .losses import SoftmaxCrossEntropy
from .optim import Adam
from .sequential import Sequential
from .training import train_step

__all__ = ["Check", "diagnose", "gradient_verdict", "gradient_traps", "model_copy", "main"]

WRONG, SUSPICIOUS, KINKED_OK = 1e-2, 1e-4, 1e-7


@dataclass
class Check:
    """One check's result: ``passed`` is True, False, or None when it was skipped;
    ``number`` is the figure it was judged on (a loss, a relative error, an accuracy)."""

    name: str
    passed: bool | None
    number: float | None
    advice: str
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        """The check as one printed line: PASS/FAIL/SKIP, its name, its number and the advice."""
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        number = "" if self.number is None else f"  {self.number:.3g}"
        return f"{mark}  {self.name}{number}: {self.advice}"

    def __str__(self):
        return self.line()


# -- copies of the model -----------------------------------------------------------------------
def model_copy(model, dtype=None) -> Sequential:
    """A new :class:`Sequential` with the same layers and weights (in ``dtype``), no shared state.

    Each layer is rebuilt from its config (``type(layer)(**layer.get_config())``, which also
    rebuilds subclasses); a layer whose constructor does not take its config is copied
    shallowly and built afresh. Dropout masks get fixed seeds (the model's ``seed=0``).
    """
    layers = []
    for layer in model.layers:
        try:
            new = type(layer)(**layer.get_config())
        except TypeError:
            new = copy.copy(layer)
            new.params, new.grads, new.cache, new._scratch, new.output_shape = {}, {}, None, {}, None
        layers.append(new)
    clone = Sequential(layers, input_shape=model.input_shape, dtype=dtype or model.dtype, seed=0)
    backend = get_backend()
    for src, dst in zip(model.layers, clone.layers):
        for k, v in src.params.items():
            dst.params[k][...] = backend.asarray(v, dtype=dst.params[k].dtype)
    return clone


# -- reading a gradient check ------------------------------------------------------------------
def gradient_verdict(error: float, kinked: bool = False) -> tuple[str, bool]:
    """CS231n's reading of a relative error: ``(words, acceptable)``."""
    if not math.isfinite(error) or error > WRONG:
        return "wrong (> 1e-2)", False
    if error > SUSPICIOUS:
        return "suspicious (1e-4..1e-2)", False
    if error > KINKED_OK:
        return (
            "fine for a function with kinks (1e-7..1e-4)"
            if kinked
            else "high for a smooth function (1e-7..1e-4; expect < 1e-7 in float64)"
        ), kinked
    return "right (< 1e-7)", True


def _is_kinked(layer) -> bool:
    return isinstance(layer, (ReLU, LeakyReLU, MaxPool2D))


def gradient_traps(layer, x, eps: float = 1e-6) -> dict:
    """The known ways a correct backward fails a gradient check, found on this layer and input.

    Returns ``{trap: explanation}`` for each that is present:
    ``"float32"`` (the input, the parameters or the output are not float64),
    ``"kink"`` (inputs of a ReLU/LeakyReLU within ``eps`` of 0, where a step of ``eps`` can
    cross the kink), ``"ties"`` (max-pool windows whose two largest values are within
    ``2·eps``: the perturbation can change the winner), ``"random"`` (two identical forwards
    give different outputs and the layer has no ``reseed`` to fix its mask).
    """
    xp = get_array_module(x)
    traps = {}
    dtypes = {str(x.dtype)} | {str(v.dtype) for v in layer.params.values()}
    if dtypes != {"float64"}:
        traps["float32"] = (
            f"arrays in {'/'.join(sorted(dtypes))}: float32 keeps ~7 digits, and a central "
            f"difference with eps=1e-6 loses most of them; check in float64"
        )
    if isinstance(layer, (ReLU, LeakyReLU)):
        near = int((xp.abs(x) <= eps).sum())
        if near:
            traps["kink"] = (
                f"{near} of {x.size} inputs lie within eps={eps:g} of the kink at 0, where the "
                f"function has no derivative; a central difference across it is wrong"
            )
    if isinstance(layer, MaxPool2D):
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        ho, wo, _ = layer.output_shape
        win = windows(x, ph, pw, sh, sw, ho, wo)  # (N, Ho, Wo, ph, pw, C)
        win = xp.moveaxis(win, 5, 3).reshape(*win.shape[:3], win.shape[5], ph * pw)
        top2 = xp.sort(win, axis=-1)[..., -2:] if ph * pw > 1 else None
        if top2 is not None:
            tied = int(((top2[..., 1] - top2[..., 0]) <= 2 * eps).sum())
            if tied:
                traps["ties"] = (
                    f"{tied} pooling windows have their two largest values within 2·eps: a step "
                    f"of eps can change which one wins, and the max has no derivative there"
                )
    if layer.output_shape is not None and not hasattr(layer, "reseed"):
        y1 = to_numpy(layer.forward(x, training=True))
        y2 = to_numpy(layer.forward(x, training=True))
        layer.cache = None
        if y1.shape == y2.shape and not np.array_equal(y1, y2):
            traps["random"] = (
                "two identical forwards differ (a random mask that is not fixed): the central "
                "difference compares two different functions; give the layer a seed and "
                "restart its generator before every forward, as Dropout.reseed does"
            )
    return traps


def _away_from_traps(x, traps, eps, rng):
    """``x`` moved off kinks and ties, so a correct backward can show it is correct."""
    xp = get_array_module(x)
    x = x.copy()
    if "kink" in traps:
        near = xp.abs(x) <= 1e3 * eps
        x[near] = xp.where(x[near] < 0, -1e3 * eps, 1e3 * eps)
    if "ties" in traps:
        x += xp.asarray(rng.uniform(0, 1e-3, x.shape))
    return x


# -- the checks --------------------------------------------------------------------------------
def _on_backend(a, dtype=None):
    return get_backend().asarray(a, dtype=dtype)


def check_initial_loss(model, x, y, loss_fn, tolerance=0.25) -> Check:
    """The untrained model's loss on ``x`` against ``ln K`` for ``K`` classes (what uniform guessing
    gives), within ``tolerance`` (relative); far above it: inputs not standardised or a bad init."""
    k = int(np.prod(model.output_shape))
    expected = math.log(k)
    with no_grad():
        logits = model.forward(_on_backend(x, model.dtype), training=False)
    value = float(loss_fn.forward(logits, _on_backend(y)))
    host_x = to_numpy(x).astype(np.float64)
    x_mean, x_std = float(host_x.mean()), float(host_x.std())
    logit_std = float(to_numpy(logits).std())
    details = {"loss": value, "expected": expected, "input_mean": x_mean, "input_std": x_std, "logit_std": logit_std}
    name = f"initial loss vs ln({k}) = {expected:.3f}"
    if not math.isfinite(value):
        return Check(
            name,
            False,
            value,
            f"the loss is not finite (logits std {logit_std:.3g}); "
            f"check the inputs for NaN/inf and their scale (mean {x_mean:.3g}, std {x_std:.3g})",
            details,
        )
    if abs(value - expected) <= tolerance * expected:
        return Check(
            name,
            True,
            value,
            f"a fresh model is unsure of every class, as it should be (logits std {logit_std:.2g})",
            details,
        )
    if value > expected:
        if abs(x_mean) > 3 or x_std > 5 or x_std < 0.05:
            hint = "pixels 0..255? " if x_std > 20 else ""
            advice = (
                f"inputs are not standardised (mean {x_mean:.3g}, std {x_std:.3g}; {hint}they scale every "
                f"logit up, here to std {logit_std:.3g}): standardise them per channel with "
                f"minicnn.datasets.standardize(x, *minicnn.datasets.channel_stats(x_train))"
            )
        else:
            advice = (
                f"the logits are too large (std {logit_std:.3g}) although the inputs look standardised "
                f"(mean {x_mean:.2g}, std {x_std:.2g}): a bad initialisation, weights too large for this "
                f"network — if you set them yourself, go back to Glorot-uniform kernels and zero biases "
                f"(the layers' default); if these are the defaults, scale the last layer's W down "
                f"(e.g. by 0.1) so that the first predictions are nearly uniform"
            )
    else:
        advice = (
            "the loss is well below chance: the model is not freshly built (already trained?) or the "
            "labels are predictable from something trivial; run this check before training"
        )
    return Check(name, False, value, advice, details)


def check_gradients(model, x, *, loss_fn=None, y=None, examples=2, eps=1e-6, seed=0) -> list[Check]:
    """One :class:`Check` per layer (and one for the loss): ``check_layer`` on a float64 copy,
    on the inputs that layer sees for the first ``examples`` examples, training mode."""
    m64 = model_copy(model, "float64")
    rng = np.random.default_rng(seed)
    h = _on_backend(to_numpy(x[:examples]), np.float64)
    results = []
    for i, layer in enumerate(m64.layers):
        name = f"gradient of layer {i} {layer.name} ({type(layer).__name__})"
        errors = check_layer(layer, h, seed=seed, eps=eps, training=True)
        worst_key = max(errors, key=lambda k: errors[k])
        worst = float(errors[worst_key])
        words, ok = gradient_verdict(worst, _is_kinked(layer))
        details = {"errors": {k: float(v) for k, v in errors.items()}}
        advice = f"d{worst_key} {words}"
        if worst > KINKED_OK:
            traps = gradient_traps(layer, h, eps)
            details["traps"] = traps
            if traps:
                advice = f"d{worst_key} {worst:.2g} at first, {words}; known traps here: " + "; ".join(
                    f"[{k}] {v}" for k, v in traps.items()
                )
                if {"kink", "ties"} & set(traps):
                    again = check_layer(layer, _away_from_traps(h, traps, eps, rng), seed=seed, eps=eps, training=True)
                    worst = float(max(again.values()))
                    words_again, ok = gradient_verdict(worst, _is_kinked(layer))
                    details["errors_away_from_traps"] = {k: float(v) for k, v in again.items()}
                    advice += f". Re-checked with the inputs moved off them: {worst:.2g}, {words_again}" + (
                        " — the trap was the cause, the backward is right"
                        if ok
                        else " — so the backward itself is wrong"
                    )
            elif not ok:
                advice += (
                    "; none of the known traps (float32, kinks, ties, unfixed masks) is present, so the "
                    "backward disagrees with the forward: write dL/dx (and each dL/dparam) out by hand "
                    "for one element and compare"
                )
        results.append(Check(name, ok, worst, advice, details))
        if hasattr(layer, "reseed"):
            layer.reseed(layer.seed)
        h = layer.forward(h, training=True)  # the next layer's real input
        layer.cache = None
    if y is not None and hasattr(loss_fn, "backward"):
        errors = check_loss(loss_fn, h, _on_backend(to_numpy(y[:examples])), seed=seed, eps=eps)
        worst = float(errors["logits"])
        words, ok = gradient_verdict(worst)
        results.append(
            Check(f"gradient of the loss ({type(loss_fn).__name__})", ok, worst, f"dlogits {words}", {"errors": errors})
        )
    return results


def check_learning_rate(model, x, y, loss_fn, optimizer_factory, steps=10, batch=64) -> Check:
    """Train a copy for ``steps`` steps on one batch; its loss (measured without dropout)
    must fall and stay finite."""
    m = model_copy(model)
    opt = optimizer_factory(m)
    xb, yb = _on_backend(x[:batch], m.dtype), _on_backend(y[:batch])

    def eval_loss():
        with no_grad():
            return float(loss_fn.forward(m.forward(xb, training=False), yb))

    before = eval_loss()
    losses = []
    with np.errstate(all="ignore"):  # a diverging run overflows: that is what this check looks for
        for _ in range(steps):
            losses.append(float(train_step(m, loss_fn, opt, xb, yb)[0]))
            if not math.isfinite(losses[-1]):
                after = float("nan")
                break
        else:
            after = eval_loss()
    lr = getattr(opt, "lr", "?")
    name = f"learning rate {lr:g}" if isinstance(lr, float) else "learning rate"
    details = {"before": before, "after": after, "train_losses": losses}
    if not all(math.isfinite(v) for v in losses + [after]):
        step = next(i for i, v in enumerate(losses + [after]) if not math.isfinite(v))
        return Check(
            name,
            False,
            after,
            f"the loss became NaN/inf at step {step + 1}: the learning rate is far "
            f"too high — divide it by 10 until the loss falls",
            details,
        )
    if after >= before:
        return Check(
            name,
            False,
            after,
            f"after {steps} steps on one batch the loss rose from {before:.3g} to "
            f"{after:.3g}: the learning rate is too high (divide it by 3-10), or the update goes "
            f"the wrong way",
            details,
        )
    if after > before * 0.999:
        return Check(
            name,
            False,
            after,
            f"the loss barely moved ({before:.4g} -> {after:.4g} in {steps} steps): "
            f"the learning rate is too low (multiply it by 10), or the gradients do not reach the "
            f"weights",
            details,
        )
    return Check(name, True, after, f"loss {before:.3g} -> {after:.3g} in {steps} steps on one batch, finite", details)


def check_overfit(
    model, x, y, loss_fn, optimizer_factory, examples=64, target=0.99, max_steps=150, max_seconds=30.0, every=5
) -> Check:
    """Train a copy full-batch on ``examples`` examples until its accuracy on them (measured
    without dropout) reaches ``target``, for at most ``max_steps`` steps or ``max_seconds``."""
    m = model_copy(model)
    opt = optimizer_factory(m)
    n = min(examples, len(x))
    xb, yb = _on_backend(x[:n], m.dtype), _on_backend(y[:n])
    name = f"overfit {n} examples to {target:.0%}"
    start = time.perf_counter()
    accuracy, step = 0.0, 0
    while step < max_steps and time.perf_counter() - start < max_seconds:
        with np.errstate(all="ignore"):
            loss, _ = train_step(m, loss_fn, opt, xb, yb)
        step += 1
        if step % every == 0 or step == max_steps:
            with no_grad():
                accuracy = float((m.forward(xb, training=False).argmax(axis=1) == yb).mean())
            if accuracy >= target or not math.isfinite(float(loss)):
                break
    seconds = time.perf_counter() - start
    details = {"accuracy": accuracy, "steps": step, "seconds": seconds}
    if accuracy >= target:
        return Check(
            name,
            True,
            accuracy,
            f"reached {accuracy:.0%} in {step} steps ({seconds:.1f} s): the model can learn",
            details,
        )
    return Check(
        name,
        False,
        accuracy,
        f"only {accuracy:.0%} after {step} steps ({seconds:.1f} s): a model that "
        f"cannot memorise {n} examples will not learn from 50,000 — look for a broken backward "
        f"(gradient checks), a learning rate off by 10x, labels that do not match the images, or "
        f"too much regularisation",
        details,
    )


def diagnose(
    model,
    x,
    y,
    *,
    loss=None,
    optimizer_factory=None,
    gradient_examples=2,
    overfit_examples=64,
    overfit_target=0.99,
    overfit_steps=150,
    overfit_seconds=30.0,
    lr_steps=10,
    seed=0,
    verbose=True,
    checks=("initial_loss", "gradients", "learning_rate", "overfit"),
) -> list[Check]:
    """Run CS231n's sanity checks on ``model`` (freshly built) with examples ``x`` (as the model
    will see them: standardised or not) and integer labels ``y``.

    Returns the list of :class:`Check` results (name, passed, number, advice) and, with
    ``verbose``, prints one line per check. ``optimizer_factory(model) -> optimizer``
    (default: ``Adam(model, lr=1e-3)``) is what the learning-rate and overfitting checks
    train with; ``loss`` defaults to :class:`~minicnn.losses.SoftmaxCrossEntropy`.
    The overfitting check is skipped when the learning-rate check fails (it would fail too).
    """
    loss_fn = loss or SoftmaxCrossEntropy()
    optimizer_factory = optimizer_factory or (lambda m: Adam(m, lr=1e-3))
    x, y = to_numpy(x), to_numpy(y)
    check_labels(y, len(x), int(np.prod(model.output_shape)), "doctor")  # on the host, before any reaches the GPU
    results: list[Check] = []

    def add(check):
        results.append(check)
        if verbose:
            print(check.line(), flush=True)

    if "initial_loss" in checks:
        add(check_initial_loss(model, x[:256], y[:256], loss_fn))
    if "gradients" in checks:
        for check in check_gradients(model, x, loss_fn=loss_fn, y=y, examples=gradient_examples, seed=seed):
            add(check)
    lr_ok = True
    if "learning_rate" in checks:
        lr_check = check_learning_rate(model, x, y, loss_fn, optimizer_factory, steps=lr_steps)
        lr_ok = lr_check.passed
        add(lr_check)
    if "overfit" in checks:
        if lr_ok:
            add(
                check_overfit(
                    model,
                    x,
                    y,
                    loss_fn,
                    optimizer_factory,
                    examples=overfit_examples,
                    target=overfit_target,
                    max_steps=overfit_steps,
                    max_seconds=overfit_seconds,
                )
            )
        else:
            add(
                Check(
                    f"overfit {min(overfit_examples, len(x))} examples",
                    None,
                    None,
                    "skipped: fix the learning rate first",
                )
            )
    if verbose:
        failed = [r.name for r in results if r.passed is False]
        skipped = sum(r.passed is None for r in results)
        print(
            f"{sum(r.passed is True for r in results)} of {len(results)} checks passed"
            + (f", {skipped} skipped" if skipped else "")
            + (f"; failed: {', '.join(failed)}" if failed else ""),
            flush=True,
        )
    return results


def main(argv=None) -> int:
    """``python -m minicnn.doctor``: the checks on the documented model; exit status 1 if one fails."""
    p = argparse.ArgumentParser(
        prog="python -m minicnn.doctor", description="CS231n's sanity checks on the documented CIFAR-10 CNN."
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="CIFAR-10 folder (as load_cifar10 takes it, never downloaded); random data otherwise",
    )
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--examples", type=int, default=64, help="examples to overfit (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    set_backend(args.backend)
    from .models import cifar10_cnn

    rng = np.random.default_rng(args.seed)
    n = max(args.examples, 256)
    if args.data_dir:
        from .datasets import channel_stats, load_cifar10, standardize

        (x_train, y_train), _ = load_cifar10(args.data_dir, download=False)
        x = standardize(x_train[:n], *channel_stats(x_train))
        y = y_train[:n]
        print(f"{n} CIFAR-10 training images from {args.data_dir}, standardised per channel")
    else:
        x = rng.standard_normal((n, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, n)
        print(f"{n} random images (standard normal) with random labels (no --data-dir)")
    results = diagnose(
        cifar10_cnn(seed=args.seed),
        x,
        y,
        overfit_examples=args.examples,
        seed=args.seed,
        optimizer_factory=lambda m: Adam(m, lr=args.lr),
    )
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
