"""Scar contrast proxy."""

from __future__ import annotations

import numpy as np
import pytest

from claim.generator.quality import compare_scar_contrast, scar_contrast


def test_scar_contrast_on_a_hand_made_slice():
    labels = np.array([[1, 1, 2, 2, 3, 3]])
    image = np.array([[0.5, 0.7, -0.8, -0.6, 0.9, 0.7]])
    c = scar_contrast(image, labels)
    assert c.scar_mean == pytest.approx(0.8) and c.remote_mean == pytest.approx(-0.7)
    assert c.scar_vs_remote == pytest.approx(1.5) and c.scar_vs_blood == pytest.approx(0.2)
    assert scar_contrast(image, np.array([[1, 1, 2, 2, 2, 2]])) is None
    summary = compare_scar_contrast([c], [c])
    assert summary["gap_scar_vs_remote"] == pytest.approx(0.0)
