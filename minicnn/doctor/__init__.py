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

One concept per module: :mod:`.checks` (the four checks and :func:`diagnose`), :mod:`.traps`
(reading a gradient check, the known traps), :mod:`.copies` (a float64 twin of a model),
:mod:`.cli` (``python -m minicnn.doctor``).
"""

from __future__ import annotations

from .checks import Check, check_gradients, check_initial_loss, check_learning_rate, check_overfit, diagnose
from .cli import main
from .copies import model_copy
from .traps import RIGHT, SUSPICIOUS, WRONG, gradient_traps, gradient_verdict

__all__ = [
    "Check",
    "diagnose",
    "check_initial_loss",
    "check_gradients",
    "check_learning_rate",
    "check_overfit",
    "gradient_verdict",
    "gradient_traps",
    "model_copy",
    "main",
    "WRONG",
    "SUSPICIOUS",
    "RIGHT",
]
