"""Whitened first-layer filters (minicnn.whitening): what the kernel does to the patches it was computed from."""

import numpy as np
import pytest

import minicnn
from minicnn import whitening
from minicnn.layers.im2col import im2col


def smooth_images(n=40, size=10, channels=3, seed=0):
    """Random images with correlated neighbours (a box blur of noise), as real images have."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, size + 2, size + 2, channels))
    blurred = sum(noise[:, a : a + size, b : b + size] for a in range(3) for b in range(3)) / 3
    return blurred + 0.3 * rng.standard_normal((n, size, size, channels))


def test_the_filters_answer_the_patches_with_uncorrelated_unit_variance():
    x = smooth_images()
    kernel = whitening.whitened_kernel(x, (3, 3), 8, eps=0.0)
    patches = im2col(x, 3, 3, 1, 1, 8, 8)
    responses = (patches - patches.mean(axis=0)) @ kernel.reshape(27, 8)
    half = responses[:, :4]
    np.testing.assert_allclose(np.cov(half, rowvar=False, bias=True), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(responses[:, 4:], -half)  # each direction with its negation


def test_blocks_of_images_give_the_covariance_of_all_patches_at_once():
    x = smooth_images(n=13, seed=3)
    patches = im2col(x, 3, 3, 1, 1, 8, 8)
    eigenvalues = np.linalg.eigvalsh(np.cov(patches, rowvar=False, bias=True))[::-1]
    for per_block in (1, 5, 13):
        blocked = whitening.patch_eigenbasis(x, 3, 3, per_block)[0]
        np.testing.assert_allclose(blocked, eigenvalues, rtol=1e-9, atol=1e-12)


def test_the_strongest_directions_come_first_and_eps_damps_the_weak_ones():
    x = smooth_images(seed=1)
    eigenvalues, vectors = whitening.patch_eigenbasis(x, 3, 3)
    assert np.all(np.diff(eigenvalues) <= 0) and eigenvalues[0] > 5 * eigenvalues[-1]
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(27), atol=1e-10)
    plain = np.linalg.norm(whitening.whitened_kernel(x, (3, 3), 54, eps=0.0).reshape(27, 54), axis=0)
    damped = np.linalg.norm(whitening.whitened_kernel(x, (3, 3), 54, eps=1.0).reshape(27, 54), axis=0)
    np.testing.assert_allclose(plain[:27], 1 / np.sqrt(eigenvalues))
    assert np.all(damped < plain)


def test_init_first_conv_whitened_writes_the_kernel_into_the_model_in_place():
    model = minicnn.models.cifar10_cnn(seed=0)
    first = model.layers[0]
    W_before, second_before = first.params["W"], model.layers[2].params["W"].copy()
    x = smooth_images(n=8, size=32, seed=2).astype(np.float32)
    assert whitening.init_first_conv_whitened(model, x) is first
    assert first.params["W"] is W_before  # the same array: an optimizer holding it sees the new values
    np.testing.assert_allclose(first.params["W"], whitening.whitened_kernel(x, (3, 3), 16), rtol=1e-5)
    assert not np.any(first.params["b"])
    np.testing.assert_array_equal(model.layers[2].params["W"], second_before)


def test_bad_requests_are_refused_with_what_was_expected():
    x = smooth_images(n=4, size=6)
    with pytest.raises(ValueError, match="filters must be even and at most 2\\*kh\\*kw\\*C = 54, got 7"):
        whitening.whitened_kernel(x, (3, 3), 7)
    with pytest.raises(ValueError, match="images 6x6 are smaller than the kernel 7x7"):
        whitening.patch_eigenbasis(x, 7, 7)
    dense_only = minicnn.Sequential([minicnn.layers.Flatten(), minicnn.layers.Dense(3)], input_shape=(6, 6, 3))
    with pytest.raises(ValueError, match="first layer is Flatten, not a Conv2D"):
        whitening.init_first_conv_whitened(dense_only, x)
