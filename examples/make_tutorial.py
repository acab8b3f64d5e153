"""Writes examples/tutorial.ipynb from the cells below (committed without outputs).

    python examples/make_tutorial.py          # after editing a cell here

Edit the cells in this file, not in the notebook: tests/test_tutorial.py checks that the
committed notebook is what this script writes, then runs it top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "tutorial.ipynb"

CELLS = [
    (
        "md",
        r"""
# minicnn, from one layer to a trained network

A hands-on tour of a convolutional network written from scratch: one layer and its shapes,
the im2col trick, a layer you write yourself and prove with a gradient check, the doctor that
finds why a model will not learn, a small CNN trained on real images, where the time goes,
and what the filters learnt, then the test set, read once at the end. It runs top to bottom
on a CPU in well under a minute (about 10 s on an idle 2-core machine).

**On a GPU:** install CuPy (`pip install -e ".[gpu]"`, or any `cupy-cudaXXx`), then set
`BACKEND = "cupy"` in the next cell (or start Jupyter with `MINICNN_BACKEND=cupy`).
Nothing else changes: every array is created on the backend chosen here.
""",
    ),
    (
        "code",
        r"""
import os
import warnings
import numpy as np
import minicnn

# tqdm's notebook bar needs ipywidgets; fit prints lines here
warnings.filterwarnings("ignore", message="IProgress not found")

BACKEND = "numpy"          # "cupy" to run everything on the GPU
backend = minicnn.set_backend(BACKEND)
np.set_printoptions(precision=3, suppress=True, linewidth=110)
print(f"minicnn {minicnn.__version__}, backend {backend.name} on {backend.device_name()}")
""",
    ),
    (
        "md",
        r"""
## 0. Keras code, as it is

If you know Keras, you already know minicnn: `import minicnn as keras` and the code of a Keras
course runs (`docs/from_keras.md`), on layers whose every line is NumPy you can read below. Here
the whole cycle on made-up images (a bright row, column or diagonal, in noise): build, compile,
fit, evaluate.
""",
    ),
    (
        "code",
        r"""
import minicnn as keras
from minicnn.layers import Activation, Conv2D, Dense, Flatten, LeakyReLU, MaxPooling2D
from minicnn.models import Sequential

rng = np.random.default_rng(0)
labels = rng.integers(0, 3, 600)
images = rng.normal(0, 0.3, (600, 8, 8, 1)).astype(np.float32)
for img, label, k in zip(images, labels, rng.integers(1, 7, 600)):
    if label == 0: img[k, :, 0] += 1.5
    elif label == 1: img[:, k, 0] += 1.5
    else: img[np.arange(8), np.arange(8), 0] += 1.5

keras.utils.set_random_seed(0)
model = Sequential()
model.add(Conv2D(8, (3, 3), padding="same", input_shape=(8, 8, 1)))
model.add(LeakyReLU(0.1))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(3))
model.add(Activation("softmax"))
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adamax(learning_rate=1e-2),
              metrics=["accuracy"])
history = model.fit(images[:500], keras.utils.to_categorical(labels[:500], 3), batch_size=32, epochs=5,
                    validation_split=0.2, verbose=0)
loss, accuracy = model.evaluate(images[500:], keras.utils.to_categorical(labels[500:], 3), verbose=0)
print(f"validation accuracy by epoch: {np.round(history.history['val_accuracy'], 3)}")
print(f"held-out accuracy: {accuracy:.3f}")
""",
    ),
    (
        "md",
        r"""
## 1. One layer and its shapes

Images are **NHWC**: `(batch, height, width, channels)`. A `Conv2D` with $F$ filters of size
$k_h \times k_w$ over $C$ input channels holds a kernel $W$ of shape $(k_h, k_w, C, F)$ and a
bias $b$ of shape $(F,)$, and computes for every output pixel

$$y_{n,i,j,f} = b_f + \sum_{a,b',c} x_{n,\,i+a,\,j+b',\,c}\; W_{a,b',c,f}.$$

`padding="same"` adds a border of zeros so that the output keeps the input's height and width.
""",
    ),
    (
        "code",
        r"""
from minicnn.layers import Conv2D

conv = Conv2D(filters=4, kernel_size=3, padding="same")
print("output shape per image:", conv.build((8, 8, 3)))      # shapes never include the batch axis
for name, p in conv.params.items():
    print(f"{name}: shape {p.shape}, {p.dtype}")
print("parameters:", conv.count_params(), "= 3*3*3*4 weights + 4 biases")

x = backend.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 3)), dtype="float32")
y = conv.forward(x)
print("x", x.shape, "-> y", y.shape)
""",
    ),
    (
        "md",
        r"""
## 2. im2col: a convolution as one matrix product

Copy every $k_h \times k_w \times C$ patch of the input into one row of a matrix `cols`; the
convolution is then `cols @ W.reshape(-1, F)`, one fast BLAS call. Here is a 4×4 grey image and
its patch matrix for a 3×3 kernel without padding: the output is 2×2, so there are 4 patches of
9 pixels each.
""",
    ),
    (
        "code",
        r"""
from minicnn.layers.im2col import col2im, im2col, pad2d

img = np.arange(1.0, 17.0).reshape(1, 4, 4, 1)               # one 4x4 image, one channel
print("image:\n", img[0, :, :, 0])
cols = im2col(img, 3, 3, 1, 1, 2, 2)                          # kernel 3x3, stride 1, output 2x2
print("patch matrix, one row per output pixel:\n", cols)
""",
    ),
    (
        "code",
        r"""
W = np.full((3, 3, 1, 1), 1 / 9)                              # a 3x3 box blur: each output is its patch's mean
by_matrix = (cols @ W.reshape(9, 1)).reshape(2, 2)
by_loops = np.array([[(img[0, i:i + 3, j:j + 3, 0] * W[:, :, 0, 0]).sum() for j in range(2)] for i in range(2)])
print("cols @ W:\n", by_matrix, "\nloops over pixels:\n", by_loops)
print("padded with one ring of zeros (what padding='same' does first):\n", pad2d(img, 1, 1, 1, 1)[0, :, :, 0])
""",
    ),
    (
        "md",
        r"""
Backward, each input pixel receives the gradient of every output whose window covered it.
`col2im` is the adjoint of `im2col`: it adds each row of a patch-gradient matrix back where the
patch came from, so overlapping windows **add up**. With every patch gradient equal to 1 the
result counts how many windows cover each pixel. For the blur and $\partial L/\partial y = 1$,
the patch gradients are `dy @ W.T` (each $1/9$), and the input gradient is that count divided by 9.
""",
    ),
    (
        "code",
        r"""
coverage = col2im(np.ones_like(cols), img.shape, 3, 3, 1, 1, 2, 2)
print("windows covering each pixel:\n", coverage[0, :, :, 0])
dy = np.ones((4, 1))                                          # dL/dy = 1 for each of the 4 outputs
dx = col2im(dy @ W.reshape(9, 1).T, img.shape, 3, 3, 1, 1, 2, 2)
print("dL/dx for dL/dy = 1, times 9:\n", 9 * dx[0, :, :, 0])
""",
    ),
    (
        "md",
        r"""
### The same layer on two paths

Every layer's `forward` and `backward` in `minicnn/layers/` are this textbook maths:
`dW = cols.T @ dy`, `dx = col2im(dy @ W.T)`, `db = dy.sum(0)`. Where the same numbers can be
had faster, a layer starts with one early return into `minicnn/kernels/` — for a stride-1
convolution, `dx` as nine shifted matrix products added in place, with no patch matrix. Both
paths are always there: `minicnn.use_kernels("reference")` runs the textbook one, and
`minicnn.layers.naive` holds the same layers once more as plain loops over pixels.
""",
    ),
    (
        "code",
        r"""
import time
from minicnn.layers import naive

layer = Conv2D(32, 3, padding="same")
layer.build((32, 32, 16), dtype="float64", rng=np.random.default_rng(0))
xb = backend.asarray(np.random.default_rng(1).standard_normal((16, 32, 32, 16)))
dyb = backend.asarray(np.random.default_rng(2).standard_normal((16, 32, 32, 32)))
result = {}
for path in ("reference", "fast"):
    with minicnn.use_kernels(path):
        best = float("inf")
        for _ in range(5):
            layer.forward(xb, training=True)
            start = time.perf_counter()
            dx = layer.backward(dyb)
            best = min(best, time.perf_counter() - start)
        result[path] = minicnn.backend.to_numpy(dx)
    print(f"{path:>9}: backward of 16 images in {best * 1e3:.1f} ms")
diff = np.abs(result["fast"] - result["reference"]).max() / np.abs(result["reference"]).max()
print(f"largest difference between the two dx: {diff:.1e} (relative)")

small = Conv2D(2, 3)                                            # and the loops, on a tiny input
small.build((5, 5, 1), dtype="float64", rng=np.random.default_rng(0))
x_small = np.random.default_rng(3).standard_normal((1, 5, 5, 1))
by_layer = minicnn.backend.to_numpy(small.forward(backend.asarray(x_small)))
W_host, b_host = (minicnn.backend.to_numpy(small.params[k]) for k in ("W", "b"))
print("layer = loops:", np.allclose(by_layer, naive.conv_forward(x_small, W_host, b_host, (1, 1), small.pads)))
""",
    ),
    (
        "md",
        r"""
## 3. Write a layer, then prove its backward

A layer is two functions. For $y = \tanh(x)$ the chain rule needs the local derivative
$\frac{dy}{dx} = 1 - \tanh^2 x = 1 - y^2$, so forward keeps $y$ and backward returns
$dx = dy \odot (1 - y^2)$.

A **gradient check** compares that formula with central differences,
$\frac{L(x + \epsilon u) - L(x - \epsilon u)}{2\epsilon} \approx \langle \nabla L, u \rangle$,
along random directions $u$, in float64. CS231n's reading of the relative error:
above $10^{-2}$ the gradient is wrong, $10^{-4}$–$10^{-2}$ suspicious, below $10^{-7}$ right.
""",
    ),
    (
        "code",
        r"""
from minicnn.backend import get_array_module
from minicnn.gradcheck import check_layer
from minicnn.layers import Layer


class Tanh(Layer):
    # y = tanh(x); backward: dx = dy * (1 - y**2)
    def forward(self, x, training=False):
        self._ensure_built(x)               # on its own: build from this first input (see below)
        y = get_array_module(x).tanh(x)
        self.cache = y                      # what backward needs
        return y

    def backward(self, dy, need_input_grad=True):
        y = self.pop_cache()
        return dy * (1 - y * y)


x64 = backend.asarray(np.random.default_rng(1).standard_normal((2, 5, 5, 3)))   # float64
print("Tanh:", check_layer(Tanh(), x64))
""",
    ),
    (
        "md",
        r"""
`self._ensure_built(x)` is the one line every layer's `forward` starts with, the built-in ones
included: a layer used on its own, as `check_layer` uses it here, learns its input shape and
dtype from the first input it sees (`build`). Inside a `Sequential` the model builds every layer
up front, so the call does nothing. The leading underscore says who it is for: the layer classes
that call it (like `_build`, the hook a layer with weights overrides), not code that uses a layer.
""",
    ),
    (
        "code",
        r"""
class BuggyTanh(Tanh):
    def backward(self, dy, need_input_grad=True):
        return dy * (1 - self.pop_cache())          # forgot the square

print("BuggyTanh:", check_layer(BuggyTanh(), x64))
""",
    ),
    (
        "md",
        r"""
## 4. Data

CIFAR-10 when it is on disk (set `MINICNN_DATA` to the folder that holds
`cifar-10-batches-py`; this notebook never downloads), otherwise images the notebook makes:
four classes of thin coloured lines and discs in heavy noise. Either way the pixels are 0..255 and are
**standardised** per channel with the training images' mean and standard deviation:
$x' = (x - \mu_c) / \sigma_c$.

A fifth of the training images is held out as a **validation** set: everything you look at while
choosing and training a model is measured on it. The **test** set is read once, at the very end;
a test figure you have tuned against no longer tells how the model does on new images.
""",
    ),
    (
        "code",
        r"""
from minicnn.datasets import CIFAR10_CLASSES, DatasetError, channel_stats, load_cifar10, standardize


def make_shapes(n, seed):
    # n 32x32 RGB images of thin coloured lines (horizontal, vertical, diagonal) or a disc, in heavy noise
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    yy, xx = np.mgrid[0:32, 0:32]
    images = rng.uniform(0, 200, (n, 32, 32, 3))
    for image, label in zip(images, labels):
        r, c = rng.integers(6, 26, 2)
        shape = [yy == r, xx == c, yy - xx == r - c, (yy - r) ** 2 + (xx - c) ** 2 <= 16][label]
        image[shape] = rng.uniform(80, 255, 3)
    return images.astype(np.uint8), labels


try:
    if not os.environ.get("MINICNN_DATA"):
        raise DatasetError("MINICNN_DATA is not set")
    (x_all, y_all), (x_te, y_te) = load_cifar10(download=False)
    pixels_train, y_train, pixels_test, y_test = x_all[:4000], y_all[:4000], x_te[:1000], y_te[:1000]
    class_names = list(CIFAR10_CLASSES)
except DatasetError as reason:
    print("No CIFAR-10 here:", reason, "- using made-up shapes")
    (pixels_train, y_train), (pixels_test, y_test) = make_shapes(3000, seed=0), make_shapes(600, seed=1)
    class_names = ["horizontal", "vertical", "diagonal", "disc"]

n_val = len(pixels_train) // 5                                # the last fifth: validation
pixels_val, y_val = pixels_train[-n_val:], y_train[-n_val:]
pixels_train, y_train = pixels_train[:-n_val], y_train[:-n_val]
mean, std = channel_stats(pixels_train)                       # the training part's statistics only
x_train, x_val, x_test = (standardize(p, mean, std) for p in (pixels_train, pixels_val, pixels_test))
print(f"{len(x_train)} training, {len(x_val)} validation and {len(x_test)} test images {x_train.shape[1:]}, "
      f"{len(class_names)} classes")
print("channel means", mean, "stds", std)
""",
    ),
    (
        "md",
        r"""
## 5. The doctor: will this model learn?

`minicnn.doctor.diagnose` runs CS231n's sanity checks before you spend an hour training:

1. **initial loss** — a fresh classifier guesses uniformly, so its cross-entropy should be
   $\ln K$ for $K$ classes;
2. **gradients** of every layer, your `Tanh` included, on a float64 copy at the model's shapes;
3. **learning rate** — a few steps on one batch lower the loss, and nothing becomes NaN;
4. **overfitting** 64 images — a model that can learn memorises them quickly.
""",
    ),
    (
        "code",
        r"""
from minicnn.doctor import diagnose
from minicnn.layers import Dense, Flatten, LeakyReLU, MaxPool2D
from minicnn.optim import Adam


def small_cnn(activation, seed=0):
    return minicnn.Sequential([
        Conv2D(8, 3, padding="same"), activation(), MaxPool2D(2),
        Conv2D(16, 3, padding="same"), activation(), MaxPool2D(2),
        Flatten(), Dense(len(class_names)),
    ], input_shape=x_train.shape[1:], seed=seed)


results = diagnose(small_cnn(Tanh), x_train[:256], y_train[:256], optimizer_factory=lambda m: Adam(m, lr=3e-3))
""",
    ),
    (
        "md",
        r"""
The most common mistake it catches: feeding raw pixels. Every logit grows with the inputs'
scale, the softmax is certain from the start, and the loss is far above $\ln K$:
""",
    ),
    (
        "code",
        r"""
raw = pixels_train[:256].astype(np.float32)                   # 0..255, not standardised
check = diagnose(small_cnn(lambda: LeakyReLU(0.1)), raw, y_train[:256], checks=("initial_loss",))[0]
""",
    ),
    (
        "md",
        r"""
## 6. Train a small CNN

A training step is four lines: **forward** (class scores for a batch), **loss** (how wrong they
are), **backward** (every layer's `grads`, by the chain rule from the loss down) and **update**
(the optimizer moves every parameter against its gradient). Here they are by hand, five times on
one batch of 64 images. Expect the loss to jump about before it settles lower: dropout draws a new
mask every step, and Adam's first steps are as large as its learning rate whatever the gradient, so a
single step can overshoot; over the five, the loss ends below where it started.
""",
    ),
    (
        "code",
        r"""
from minicnn.losses import SoftmaxCrossEntropy

model = small_cnn(lambda: LeakyReLU(0.1))
optimizer, loss_fn = Adam(model, lr=3e-3), SoftmaxCrossEntropy()
xb, yb = backend.asarray(x_train[:64]), backend.asarray(y_train[:64])
for step in range(5):
    logits = model.forward(xb, training=True)    # 1. forward: (64, classes) scores, dropout on
    loss = loss_fn.forward(logits, yb)           # 2. loss: mean cross-entropy
    model.backward(loss_fn.backward())           # 3. backward: d(loss)/d(logits) down to every layer's grads
    optimizer.step()                             # 4. update: every parameter a step against its gradient
    print(f"step {step}: loss {float(loss):.3f}")
""",
    ),
    (
        "md",
        r"""
`fit` runs exactly those four lines (`minicnn.training.train_step`) over shuffled mini-batches,
an epoch after another, and measures the held-out **validation** images after each epoch. A few
thousand images and a few epochs are enough to see it learn; the documented model on all 50,000
CIFAR-10 images reaches 80% (`examples/train_cifar.py`).
""",
    ),
    (
        "code",
        r"""
model = small_cnn(lambda: LeakyReLU(0.1))
model.summary()
history = model.fit(x_train, y_train, optimizer=Adam(model, lr=3e-3), epochs=4, batch_size=64,
                    validation_data=(x_val, y_val), verbose=2, seed=0)
print(f"validation accuracy {history['val_accuracy'][-1]:.1%} (chance: {1 / len(class_names):.0%})")
""",
    ),
    (
        "md",
        r"""
Two tricks of the fast recipe (`examples/train_cifar.py --recipe fast`). **Label smoothing**
trains towards the target $(1-\varepsilon)\,\text{onehot} + \varepsilon/K$ instead of the one-hot
vector, so a confident right answer still costs a little (pass it to `fit` as
`loss=SoftmaxCrossEntropy(label_smoothing=0.2)`). **Test-time augmentation** averages the
probabilities of an image and its mirror: `evaluate(..., tta="flip")`.
""",
    ),
    (
        "code",
        r"""
from minicnn.losses import SoftmaxCrossEntropy

logits = model.forward(x_val[:256])  # inference mode: class scores of 256 validation images
for eps in (0.0, 0.2):
    loss = SoftmaxCrossEntropy(label_smoothing=eps).forward(logits, y_val[:256])
    print(f"label_smoothing={eps}: loss {float(loss):.3f}")
for tta in (None, "flip"):
    print(f"tta={tta}: validation accuracy {model.evaluate(x_val, y_val, tta=tta)['accuracy']:.1%}")
""",
    ),
    (
        "md",
        r"""
A third trick changes only where training starts. The 27 numbers of a $3\times3$ colour patch
are strongly correlated, so most of their variance lies along a few smooth directions. The fast
recipe starts its first convolution from those directions, each divided by the square root of its
variance (`minicnn.whitening`): every filter then answers the training patches with unit
variance, and the strongest patterns are there from the first step.
""",
    ),
    (
        "code",
        r"""
from minicnn.whitening import init_first_conv_whitened, patch_eigenbasis

variance, _ = patch_eigenbasis(x_train[:500], 3, 3)
print("variance along the patch directions, largest first:", np.round(variance[:4], 3), "...")
whitened = small_cnn(lambda: LeakyReLU(0.1))
first = init_first_conv_whitened(whitened, x_train[:2000])  # 8 filters: the 4 strongest directions and their negations
print("first-layer kernel", first.params["W"].shape, "- train it with fit as before")
""",
    ),
    (
        "md",
        r"""
## 7. Where the time goes

`minicnn.profile` times every layer's forward and backward inside a training step, counts the
FLOPs a layer must do (a convolution: $2\,H_o W_o\, k_h k_w\, C_{in} C_{out}$ per image forward,
twice that backward) and compares the achieved rate with this machine's matrix-product peak.
For the documented model run `python -m minicnn.profile` in a terminal.
""",
    ),
    (
        "code",
        r"""
from minicnn.profile import profile_model, report

print(report(profile_model(model, batch_size=64, repeats=3)))
""",
    ),
    (
        "md",
        r"""
## 8. What the filters learnt

The first layer's kernels are small RGB images, all on one shared scale (grey is a zero weight).
After a run as short as this one they still look much like their random start, coloured noise; a
trained model's (the fast recipe's 10 epochs on all 50,000 images) are smooth: flat colour patches,
light-dark edges in several orientations, centre-surround spots. Deeper filters are shown
by their **max-stimulus** pattern: starting from a grey image, gradient
ascent on the input raises one filter's mean activation,
$x \leftarrow x + \eta\, \nabla_x \bar a_f(x) / \mathrm{rms}(\nabla_x \bar a_f)$.
""",
    ),
    (
        "code",
        r"""
import tempfile
from IPython.display import Image, display
from minicnn import viz

pictures = tempfile.mkdtemp()
display(Image(filename=str(viz.plot_filters(model.layers[0], os.path.join(pictures, "filters.png")))))
display(Image(filename=str(viz.plot_stimuli(model, os.path.join(pictures, "stimuli.png"), filters_per_layer=6,
                                            mean=mean, std=std))))
""",
    ),
    (
        "md",
        r"""
## 9. See inside it: the explorer

Save the model with its normalisation statistics and class names (as the training script does),
then open it in the explorer, a page served by minicnn on your own machine: every layer's output
for an image you pick or drop in, the prediction, how one convolution output is computed from
its patch, kernel and bias, the filters and the run. The cell prints the command; run it in a
terminal (it serves until Ctrl-C) and open the address it prints.
""",
    ),
    (
        "code",
        r"""
saved = os.path.join(tempfile.mkdtemp(), "model.npz")
model.save(saved, extra={"mean": mean, "std": std, "class_names": class_names})
data = f" --data-dir {os.environ['MINICNN_DATA']}" if class_names == list(CIFAR10_CLASSES) else ""
print(f"python -m minicnn.explore {saved}{data}")
""",
    ),
    (
        "md",
        r"""
## 10. The test set, once

Everything above was chosen and judged on the validation images. Now, and only now, the test
images: the one figure that says how this model does on images it has never been tuned on.
""",
    ),
    (
        "code",
        r"""
test = model.evaluate(x_test, y_test)
print(f"test accuracy {test['accuracy']:.1%} on {len(y_test)} images (validation: {history['val_accuracy'][-1]:.1%})")
""",
    ),
    (
        "md",
        r"""
Next: `examples/train_cifar.py` trains the documented model (then
`python -m minicnn.explore runs/cifar10/model.npz --data-dir DIR` shows its curves and confusion
matrix too), `README.md` traces one batch's path through the library, and every layer's file in
`minicnn/layers/` has its maths beside its code.
""",
    ),
]


def build():
    """The notebook as an ``nbformat`` object (no outputs)."""
    cells = [new_markdown_cell(src.strip()) if kind == "md" else new_code_cell(src.strip()) for kind, src in CELLS]
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: regenerating changes nothing
    return nb


if __name__ == "__main__":
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
