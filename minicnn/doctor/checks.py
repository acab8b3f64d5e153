"""The doctor's four checks (CS231n's order) and :func:`diagnose`, which runs them all."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_backend, to_numpy
from ..gradcheck import check_layer, check_loss
from ..input_checks import check_labels
from ..layers import no_grad
from ..losses import SoftmaxCrossEntropy
from ..optim import Adam
from ..training import train_step
from .copies import model_copy
from .traps import RIGHT, _away_from_traps, _is_kinked, cancelled_biases, gradient_traps, gradient_verdict


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
        cancelled = cancelled_biases(layer)  # zero gradients: their relative error is noise, left out
        errors = {k: v for k, v in errors.items() if k not in cancelled}
        worst_key = max(errors, key=lambda k: errors[k])
        worst = float(errors[worst_key])
        words, ok = gradient_verdict(worst, _is_kinked(layer))
        details = {"errors": {k: float(v) for k, v in errors.items()}, "cancelled": cancelled}
        advice = f"d{worst_key} {words}"
        if cancelled:
            advice += f" ({len(cancelled)} conv biases before a BN left out: their true gradient is 0)"
        if worst > RIGHT:
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
