"""Soft masks: range, sum to one, zero bins, exponent, and the mixture is conserved."""

from __future__ import annotations

import numpy as np
import pytest

from nmfsep.errors import ParameterError
from nmfsep.masks import iter_masks, soft_masks


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0, 8.0])
def test_masks_in_unit_interval_and_sum_to_one(rng, power):
    H = rng.random((30, 4)).astype(np.float32)
    U = rng.random((4, 50)).astype(np.float32)
    U[:, :5] = 0.0  # frames nothing explains
    H[:, 2] = 0.0  # a dead component
    masks = soft_masks(H, U, power)
    assert masks.shape == (4, 30, 50)
    assert masks.min() >= 0 and masks.max() <= 1
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-6)
    # policy for bins no component explains: equal split
    np.testing.assert_allclose(masks[:, :, :5], 0.25)
    assert np.all(masks[2, :, 5:] == 0)


def test_mask_is_the_wiener_ratio(rng):
    H, U = rng.random((6, 3)), rng.random((3, 7))
    masks = soft_masks(H, U, 2.0)
    parts = np.stack([np.outer(H[:, j], U[j]) ** 2 for j in range(3)])
    np.testing.assert_allclose(masks, parts / parts.sum(axis=0), rtol=1e-5)


def test_larger_power_is_harder(rng):
    H, U = rng.random((20, 3)), rng.random((3, 20))
    soft, hard = soft_masks(H, U, 1.0), soft_masks(H, U, 10.0)
    assert np.mean(np.abs(hard - 0.5)) > np.mean(np.abs(soft - 0.5))


def test_no_overflow_for_large_values():
    H = np.full((4, 2), 1e20, dtype=np.float32)
    U = np.full((2, 5), 1e20, dtype=np.float32)
    masks = soft_masks(H, U, 4.0)
    np.testing.assert_allclose(masks, 0.5)


def test_masked_spectra_sum_to_the_mixture(rng):
    H, U = rng.random((16, 3)), rng.random((3, 12))
    X = (rng.standard_normal((2, 16, 12)) + 1j * rng.standard_normal((2, 16, 12))).astype(np.complex64)
    total = sum(X * mask for mask in iter_masks(H, U, 2.0))
    np.testing.assert_allclose(total, X, atol=1e-5)


def test_shape_mismatch_and_bad_power():
    with pytest.raises(ParameterError, match="Shape mismatch"):
        soft_masks(np.ones((4, 2)), np.ones((3, 5)))
    with pytest.raises(ParameterError, match="mask power"):
        soft_masks(np.ones((4, 2)), np.ones((2, 5)), 0.0)
