"""AHA geometry against the phantom's ground truth and on the real EMIDEC data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tests.conftest import EMIDEC_SLICES, EMIDEC_VOLUMES, SMALL

from claim.aha.config import AhaConfig, sector_balance
from claim.aha.geometry import assign_levels, compute_geometry, infer_apex_first, transmural_depth
from claim.aha.orientation import OrientationMethod, estimate_orientation
from claim.aha.segments import Level
from claim.data.layouts import read_dataset
from claim.demo import score_phantom_geometry
from claim.labels import Label
from claim.phantom import PhantomConfig, make_phantom_cohort
from claim.stages.aha import run_aha


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def cohort():
    return make_phantom_cohort(6, seed=11, config=PhantomConfig(min_slices=6, max_slices=10))


def test_segments_agree_with_phantom_truth(cohort):
    scores = [score_phantom_geometry(case) for case in cohort]
    agreement = [s["agreement_known_orientation"] for s in scores]
    assert min(agreement) >= 0.99, agreement
    assert all(s["apex_side_correct"] for s in scores)


def test_apex_side_from_anatomy_not_file_order(cohort):
    for case in cohort[:3]:
        labels = case.patient.label_maps
        assert infer_apex_first(labels) == case.truth.apex_first
        assert infer_apex_first(labels[::-1]) == (not case.truth.apex_first)
        levels = assign_levels(labels, infer_apex_first(labels))
        reversed_levels = assign_levels(labels[::-1], infer_apex_first(labels[::-1]))
        assert levels == reversed_levels[::-1]


def test_levels_split_in_thirds_with_apical_cap():
    label_map = np.zeros((8, 20, 20), dtype=np.uint8)
    label_map[:, 5:15, 5:15] = 2
    for s in range(1, 8):  # slice 0 has no cavity: apical cap; cavity grows towards the base
        size = 1 + s // 2
        label_map[s, 10 - size : 10 + size, 10 - size : 10 + size] = 1
    levels = assign_levels(label_map, infer_apex_first(label_map))
    # 7 slices below the cap: round(7/3) = 2 apical, up to round(14/3) = 5 mid, the rest basal.
    expected = [Level.APEX] + [Level.APICAL] * 2 + [Level.MID] * 3 + [Level.BASAL] * 2
    assert levels == tuple(expected)


def test_every_myocardial_pixel_and_no_other_gets_a_segment(cohort):
    for case in cohort:
        geometry = compute_geometry(case.patient)
        myo = case.patient.myocardium_mask
        assert np.array_equal(geometry.segment_maps > 0, myo)
        assert geometry.segment_maps.max() <= 17
        assert np.isfinite(geometry.depth[myo]).all() and np.isnan(geometry.depth[~myo]).all()


def test_transmural_depth_runs_endo_to_epi():
    label_map = np.zeros((61, 61), dtype=np.uint8)
    rr, cc = np.mgrid[:61, :61]
    radius = np.hypot(rr - 30, cc - 30)
    label_map[radius < 20] = 2
    label_map[radius < 12] = 1
    depth = transmural_depth(label_map)
    myo = label_map == 2
    inner = myo & (radius < 13)
    outer = myo & (radius > 19)
    assert depth[inner].mean() < 0.15 and depth[outer].mean() > 0.85
    assert depth[myo].min() == 0.0 and depth[myo].max() == 1.0
    # Depth grows with radius across the wall.
    assert np.corrcoef(radius[myo], depth[myo])[0, 1] > 0.97


def test_orientation_from_rv_label():
    cases = make_phantom_cohort(4, seed=5, config=replace(SMALL, rv_label=True))
    for case in cases:
        assert (case.patient.label_maps == Label.RV).any()
        orientation = estimate_orientation(case.patient.images, case.patient.label_maps)
        assert orientation.method == OrientationMethod.RV_LABEL
        assert _angle_error(orientation.origin_screen_deg, case.truth.origin_screen_deg) < 12.0


def test_orientation_from_image_on_phantom(cohort):
    errors = []
    for case in cohort:
        orientation = estimate_orientation(case.patient.images, case.patient.label_maps)
        assert orientation.method == OrientationMethod.IMAGE
        errors.append(_angle_error(orientation.origin_screen_deg, case.truth.origin_screen_deg))
    assert np.median(errors) < 20.0, errors


def test_given_angle_is_used_and_recorded(cohort):
    case = cohort[0]
    geometry = compute_geometry(case.patient, orientation_kind="angle", angle_deg=100.0)
    assert geometry.orientation.method == OrientationMethod.ANGLE
    assert geometry.orientation.insertion_screen_deg == 100.0
    assert geometry.orientation.origin_screen_deg == 40.0


@pytest.mark.realdata
def test_real_slices_every_myocardial_pixel_gets_a_segment_and_rings_are_balanced():
    patients = read_dataset(EMIDEC_SLICES)
    assert len(patients) == 75
    cvs = []
    for patient in patients:
        geometry = compute_geometry(patient)
        assert np.array_equal(geometry.segment_maps > 0, patient.myocardium_mask)
        assert set(np.unique(geometry.segment_maps)) <= set(range(18))
        assert geometry.apex_first, patient.patient_id  # slice000 lies toward the apex in this folder
        cvs += list(sector_balance(geometry).values())
    assert np.median(cvs) < 0.35


@pytest.mark.realdata
def test_real_volumes_apex_side_and_outputs(tmp_path):
    summary = run_aha(EMIDEC_VOLUMES, tmp_path / "aha", AhaConfig(), progress=False)
    by_id = {p["patient_id"]: p for p in summary["patients"]}
    assert by_id["samplePositive"]["apex_side"] == "first"
    assert by_id["sampleNegative"]["apex_side"] == "first"
    assert sum(by_id["samplePositive"]["scar_pixels"].values()) == 759 + 29
    assert (tmp_path / "aha" / "samplePositive" / "Segments" / "samplePositive.nii.gz").exists()
    assert (tmp_path / "aha" / "bullseye" / "sampleNegative.png").exists()


def test_contrast_weighted_slices_follow_the_clear_ones(cohort):
    """A stack whose noisy slices are turned a quarter turn: weighting by contrast-to-noise keeps to the clean ones."""
    from claim.aha.orientation_image import ImageCues, estimate_septum_from_image

    case = cohort[0]
    images, labels = case.patient.images.astype(np.float64), case.patient.label_maps
    clean = estimate_septum_from_image(images, labels)
    half = round(len(images) * 2 / 3)  # most slices turned, so equal weights follow them
    rng = np.random.default_rng(0)
    turned = np.rot90(images[:half], axes=(1, 2))
    scale = float(np.median(images[labels == Label.CAVITY]) - np.median(images[labels == Label.MYOCARDIUM]))
    mixed = np.concatenate([turned + rng.normal(0.0, 0.3 * scale, turned.shape), images[half:]])
    mixed_labels = np.concatenate([np.rot90(labels[:half], axes=(1, 2)), labels[half:]])
    equal = estimate_septum_from_image(mixed, mixed_labels)
    weighted = estimate_septum_from_image(mixed, mixed_labels, ImageCues(contrast_weighted=True))
    assert _angle_error(equal.septum_screen_deg, clean.septum_screen_deg) > 45.0
    assert _angle_error(weighted.septum_screen_deg, clean.septum_screen_deg) < 20.0
