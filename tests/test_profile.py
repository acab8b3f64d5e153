"""minicnn.profile: FLOPs counted by hand, shapes, measured work arrays, the command line.
Timings are never asserted (they depend on the machine and on what else runs)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.models import cifar10_cnn
from minicnn.profile import layer_flops, matmul_peak, profile_model, reading, totals

ROOT = Path(__file__).resolve().parent.parent
B = 4  # a small batch keeps the test fast; every count below is per image times B

# The documented model's matrix products, written out (a multiply-add = 2 FLOPs):
#   conv 3→16  on 32×32, 3×3:  2 · 32·32 · 3·3 · 3·16    =   884,736 per image
#   conv 16→32 on 32×32:       2 · 32·32 · 3·3 · 16·32   = 9,437,184
#   conv 32→32 on 16×16:       2 · 16·16 · 3·3 · 32·32   = 4,718,592
#   conv 32→64 on 16×16:       2 · 16·16 · 3·3 · 32·64   = 9,437,184
#   dense 4096→256:            2 · 4096 · 256            = 2,097,152
#   dense 256→10:              2 · 256 · 10              =     5,120
# Backward: dW costs one forward, dx another; the first layer (index 0) computes no dx.
FORWARD_PER_IMAGE = {0: 884_736, 2: 9_437_184, 6: 4_718_592, 8: 9_437_184, 13: 2_097_152, 16: 5_120}

# Output shapes and parameter counts from docs/API.md's table of the documented model.
SHAPES_PARAMS = [
    ((32, 32, 16), 448),
    ((32, 32, 16), 0),
    ((32, 32, 32), 4640),
    ((32, 32, 32), 0),
    ((16, 16, 32), 0),
    ((16, 16, 32), 0),
    ((16, 16, 32), 9248),
    ((16, 16, 32), 0),
    ((16, 16, 64), 18496),
    ((16, 16, 64), 0),
    ((8, 8, 64), 0),
    ((8, 8, 64), 0),
    ((4096,), 0),
    ((256,), 1048832),
    ((256,), 0),
    ((256,), 0),
    ((10,), 2570),
]


@pytest.fixture(scope="module")
def rows():
    return profile_model(cifar10_cnn(seed=0), batch_size=B, repeats=1, peak=100.0)


def test_flops_of_the_documented_model_match_the_hand_count(rows):
    assert FORWARD_PER_IMAGE[2] == 2 * 32 * 32 * 3 * 3 * 16 * 32  # the arithmetic above, checked once
    assert len(rows) == 17
    for r in rows:
        i = r["index"]
        fwd = FORWARD_PER_IMAGE.get(i, 0) * B
        assert r["fwd_flops"] == fwd, r["layer"]
        assert r["bwd_flops"] == (fwd if i == 0 else 2 * fwd), r["layer"]


def test_totals_add_up(rows):
    per_image = sum(FORWARD_PER_IMAGE.values())  # 26,579,968
    assert per_image == 26_579_968
    t = totals(rows)
    assert t["fwd_flops"] == B * per_image
    assert t["bwd_flops"] == B * (2 * per_image - FORWARD_PER_IMAGE[0])  # no dx in the first layer
    assert t["params"] == 1_084_234
    assert 0.99 < sum(r["share"] for r in rows) + (t["loss_ms"] + t["update_ms"]) / t["step_ms"] < 1.01
    assert set(t["shares"]) == {"Conv2D", "LeakyReLU", "MaxPool2D", "Dropout", "Flatten", "Dense"}


def test_element_wise_layers_report_bytes_not_flops(rows):
    leaky = rows[1]  # LeakyReLU on (B, 32, 32, 16) float32
    n = B * 32 * 32 * 16 * 4
    # forward: read x, write y, write the slope it keeps; backward: read dy and slope, write dx
    assert leaky["fwd_flops"] == leaky["bwd_flops"] == 0
    assert leaky["bytes"] == 3 * n + 3 * n
    assert rows[12]["bytes"] == 0  # Flatten: a view, nothing moves
    assert rows[2]["bytes"] == 0  # conv: FLOPs instead


def test_shapes_and_params_columns(rows):
    assert [(r["output_shape"], r["params"]) for r in rows] == [((None, *s), p) for s, p in SHAPES_PARAMS]
    assert [r["layer"] for r in rows[:3]] == ["conv 3→16 3×3", "leaky_relu 0.1", "conv 16→32 3×3"]


def test_work_bytes_are_measured_arrays(rows):
    conv = rows[2]  # conv 16→32, input (B, 32, 32, 16): the shifted kernels, no patch matrix
    grid = B * 33 * 33  # the shared-padding grid: one zero row and column per image and row
    margins = 2 * (33 + 1)  # the zero rows before the first pixel and after the last
    x_grid = (grid + margins) * 16 * 4
    y_grid = grid * 32 * 4  # the forward's products, before the crop and the bias
    dy_grid = (grid + margins) * 32 * 4  # dy laid out on the same grid (backward, stride 1)
    # (no "term": the shifted products are added in place by BLAS)
    assert conv["work"] == {"x_grid": x_grid, "y_grid": y_grid, "dy_grid": dy_grid}
    assert conv["work_bytes"] == x_grid + y_grid + dy_grid
    deeper = rows[8]  # conv 32→64 at 16×16: shifted too (a grid 13% larger than the output)
    assert set(deeper["work"]) == {"x_grid", "y_grid", "dy_grid"}
    first = rows[0]  # 3 channels: the patch matrix (27 columns); no dx: no dy grid
    assert first["work"]["cols"] == (B * 32 * 32) * (3 * 3 * 3) * 4
    assert set(first["work"]) == {"cols", "x_pad"}
    assert rows[1]["work"] == {"slope": B * 32 * 32 * 16 * 4}
    assert rows[4]["work"] == {"argmax": B * 16 * 16 * 32}  # uint8 winner offsets
    assert rows[5]["work"] == {"cache": B * 16 * 16 * 32 * 4}  # dropout's mask
    assert rows[13]["work"] == {"cache": B * 4096 * 4}  # dense keeps its input


def test_profiling_leaves_the_weights_alone():
    model = cifar10_cnn(seed=1)
    before = [v.copy() for layer in model.layers for v in layer.params.values()]
    profile_model(model, batch_size=2, repeats=1, peak=1.0)
    after = [v for layer in model.layers for v in layer.params.values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_reading_names_convolution_and_the_patch_matrix(rows):
    text = reading(rows)
    assert "of the step is convolution" in text and "of peak" in text and "no patch matrix (shifted GEMMs" in text
    with minicnn.use_kernels("reference"):
        text = reading(profile_model(cifar10_cnn(seed=0), batch_size=2, repeats=1, peak=1.0))
    assert "patch matrix is" in text


def test_layer_flops_for_a_strided_conv_and_dense():
    from minicnn.layers import Conv2D, Dense

    conv = Conv2D(8, 3, strides=2, padding="same")
    conv.build((9, 9, 2))  # output 5×5×8
    assert layer_flops(conv, 3) == (3 * 2 * 5 * 5 * 9 * 2 * 8, 2 * 3 * 2 * 5 * 5 * 9 * 2 * 8)
    dense = Dense(7)
    dense.build((5,))
    assert layer_flops(dense, 2, need_input_grad=False) == (2 * 2 * 5 * 7, 2 * 2 * 5 * 7)


def test_matmul_peak_is_cached():
    first = matmul_peak(n=128)
    assert first > 0 and matmul_peak(n=128) == first


def test_cli_prints_the_table_totals_and_reading():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "minicnn.profile", "--batch-size", "2", "--repeats", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout
    assert "conv 16→32 3×3" in out and "all layers" in out and "1,084,234" in out
    assert "Matrix-product peak here" in out and "Reading:" in out and "of the step is convolution" in out
