from __future__ import annotations

import numpy as np
import pytest

from claim.aha.geometry import compute_geometry
from claim.experiment.transplant import transplant_scar
from claim.labels import Label, infarct_mask, myocardium_mask


@pytest.fixture(scope="module")
def donor_and_canvas(phantom_cohort):
    patients = [case.patient for case in phantom_cohort]
    donor = next(p for p in patients if infarct_mask(p.label_maps).any())
    canvas = next(p for p in patients if not infarct_mask(p.label_maps).any())
    return donor, compute_geometry(donor), canvas, compute_geometry(canvas)


def test_transplanted_scar_lies_in_the_donor_segments_inside_myocardium(donor_and_canvas):
    donor, donor_geo, canvas, canvas_geo = donor_and_canvas
    label_maps = transplant_scar(donor, donor_geo, canvas, canvas_geo)
    scar = infarct_mask(label_maps)
    assert scar.any()
    # Inside the canvas myocardium, nothing outside it changed.
    assert np.all(myocardium_mask(canvas.label_maps)[scar])
    outside = ~myocardium_mask(canvas.label_maps)
    assert np.array_equal(label_maps[outside], canvas.label_maps[outside])
    assert np.array_equal(myocardium_mask(label_maps), myocardium_mask(canvas.label_maps))
    # Same AHA segments: nearly every transplanted pixel sits in a segment the donor's scar occupies.
    donor_segments = set(np.unique(donor_geo.segment_maps[infarct_mask(donor.label_maps)]).tolist()) - {0}
    in_donor_segments = np.isin(canvas_geo.segment_maps[scar], list(donor_segments))
    assert in_donor_segments.mean() >= 0.9
    # Burden is comparable (same territory, similar extent).
    assert 0.3 < canvas_geo.segment_maps[scar].size / max(infarct_mask(donor.label_maps).sum(), 1) * (
        donor_geo.myocardium_mask.sum() / canvas_geo.myocardium_mask.sum()
    ) < 3.0


def test_transplanted_mvo_lies_inside_scar(donor_and_canvas):
    donor, donor_geo, canvas, canvas_geo = donor_and_canvas
    # Force an MVO core into the donor: the deepest third of its scar.
    labels = donor.label_maps.copy()
    deep = infarct_mask(labels) & (np.nan_to_num(donor_geo.depth) < 0.3)
    labels[deep] = Label.MVO
    donor_mvo = donor.with_arrays(label_maps=labels)
    label_maps = transplant_scar(donor_mvo, donor_geo, canvas, canvas_geo)
    mvo = label_maps == Label.MVO
    assert mvo.any()
    assert np.all(infarct_mask(label_maps)[mvo])
    assert np.all(myocardium_mask(canvas.label_maps)[mvo])


def test_normal_donor_gives_no_scar(donor_and_canvas):
    _, _, canvas, canvas_geo = donor_and_canvas
    label_maps = transplant_scar(canvas, canvas_geo, canvas, canvas_geo)
    assert not infarct_mask(label_maps).any()
    assert np.array_equal(label_maps, canvas.label_maps)
