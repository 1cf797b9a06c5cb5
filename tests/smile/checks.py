"""Invariants every SMILE mask must satisfy, shared by the phantom and real-data property tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from claim.labels import Label, infarct_mask, myocardium_mask
from claim.smile import Pattern, ScarResult

BURDEN_TOLERANCE = 0.02  # +-2 percentage points


def check_mask(source: np.ndarray, out: np.ndarray, result: ScarResult) -> None:
    """Labels outside the myocardium and its extent unchanged; scar in its segments; MVO in scar; burden met."""
    spec = result.spec
    myo = myocardium_mask(source)
    assert out.shape == source.shape and out.dtype == source.dtype
    np.testing.assert_array_equal(out[~myo], source[~myo])
    np.testing.assert_array_equal(myocardium_mask(out), myo)
    scar = infarct_mask(out)
    mvo = out == Label.MVO
    assert not (scar & ~myo).any()
    assert np.array_equal(scar, result.scar_mask())
    assert np.array_equal(mvo, result.mvo_mask())
    assert set(result.mvo_pixels.tolist()) <= set(result.scar_pixels.tolist())
    segments = result.canvas.geometry.segment_maps
    assert set(np.unique(segments[scar]).tolist()) <= set(spec.segments), (spec, np.unique(segments[scar]))
    if spec.pattern != Pattern.ISCHEMIC:
        assert not mvo.any()
    if spec.target_burden is not None:
        assert abs(result.achieved_burden - spec.target_burden) <= BURDEN_TOLERANCE, spec
        assert result.achieved_burden == scar.sum() / myo.sum()
    if spec.transmurality is not None and spec.pattern == Pattern.ISCHEMIC:
        depth = result.canvas.geometry.depth
        assert depth[scar].max(initial=0.0) <= spec.transmurality + 1e-6
    if spec.pattern == Pattern.ISCHEMIC:
        check_endocardial(source, scar)
    if spec.pattern in (Pattern.ISCHEMIC, Pattern.MIDWALL, Pattern.SUBEPICARDIAL):
        occupied = np.flatnonzero(scar.reshape(len(scar), -1).any(axis=1))
        if occupied.size:  # one run of adjacent slices
            assert occupied[-1] - occupied[0] + 1 == occupied.size, occupied


def check_endocardial(source: np.ndarray, scar: np.ndarray) -> None:
    """Every slice the scar occupies (with a cavity) has scar touching the cavity."""
    eight = np.ones((3, 3), dtype=bool)
    for s in range(len(source)):
        cavity = source[s] == Label.CAVITY
        if scar[s].any() and cavity.any():
            assert (ndimage.binary_dilation(cavity, eight) & scar[s]).any(), f"slice {s}: scar off the endocardium"
