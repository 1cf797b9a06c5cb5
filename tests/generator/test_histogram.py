"""Scar histograms and the seeded k-means of their centres."""

from __future__ import annotations

import numpy as np
import pytest

from claim.generator.histogram import kmeans_centres, perturb_histogram, scar_histogram


def test_histogram_bins_and_empty_mask():
    image = np.array([[-1.0, -0.9, 0.0], [0.06, 0.99, 1.0]])
    hist = scar_histogram(image, np.ones_like(image, dtype=bool))
    assert hist.shape == (16,) and np.isclose(hist.sum(), 1.0)
    assert hist[0] == 2 / 6 and hist[8] == 2 / 6 and hist[15] == 2 / 6
    assert not scar_histogram(image, np.zeros_like(image, dtype=bool)).any()


def test_kmeans_is_seeded_and_finds_two_groups():
    rng = np.random.default_rng(0)
    dark = np.tile(np.eye(16)[3], (20, 1)) + rng.normal(0, 0.01, (20, 16))
    bright = np.tile(np.eye(16)[12], (20, 1)) + rng.normal(0, 0.01, (20, 16))
    data = np.concatenate([bright, dark])
    a, b = kmeans_centres(data, 2, seed=5), kmeans_centres(data, 2, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 16)
    assert a[0].argmax() == 3 and a[1].argmax() == 12  # sorted darkest first
    assert kmeans_centres(data[:1], 4).shape == (1, 16)


def test_perturbation_stays_within_ten_percent_per_bin():
    hist = np.linspace(0, 1, 16).astype(np.float32)
    out = perturb_histogram(hist, np.random.default_rng(1))
    assert np.all(np.abs(out - hist) <= 0.1 * hist + 1e-7)


def test_histogram_wasserstein_moves_mass_in_intensity_units():
    from claim.generator.histogram import histogram_wasserstein

    a, b = np.zeros(16), np.zeros(16)
    a[2], b[10] = 1.0, 1.0
    assert histogram_wasserstein(a, b) == pytest.approx(8 * 2.0 / 16)  # 8 bins of width 1/8 apart
    assert histogram_wasserstein(a, a) == 0.0
    assert np.isnan(histogram_wasserstein(a, np.zeros(16)))
