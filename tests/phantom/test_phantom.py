"""The procedural LGE phantom: determinism, exact labels, anatomy, contrast and ground-truth segments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from claim.aha.segments import Handedness, Level, aha_angle_deg, screen_angle_deg, segment_from_angle, segment_ids
from claim.data.patient import Layout
from claim.labels import Label
from claim.phantom import PhantomCase, PhantomConfig, make_phantom, make_phantom_cohort


@pytest.fixture(scope="module")
def cohort() -> list[PhantomCase]:
    return make_phantom_cohort(8, seed=11)


@pytest.fixture(scope="module")
def pathological_cases() -> list[PhantomCase]:
    return [make_phantom(np.random.default_rng(100 + s), pathological=True) for s in range(6)]


def _mean_direction_deg(mask: np.ndarray, centre_rc: np.ndarray) -> float:
    rows, cols = np.nonzero(mask)
    angles = np.radians(screen_angle_deg(rows, cols, (centre_rc[0], centre_rc[1])))
    return float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360)


def _angle_diff_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_same_seed_gives_identical_patient_and_other_seed_differs() -> None:
    a, b = make_phantom(np.random.default_rng(5)), make_phantom(np.random.default_rng(5))
    c = make_phantom(np.random.default_rng(6))
    np.testing.assert_array_equal(a.patient.images, b.patient.images)
    np.testing.assert_array_equal(a.patient.label_maps, b.patient.label_maps)
    np.testing.assert_array_equal(a.truth.segment_maps, b.truth.segment_maps)
    assert a.truth.origin_screen_deg == b.truth.origin_screen_deg
    assert a.patient.images.shape != c.patient.images.shape or not np.array_equal(a.patient.images, c.patient.images)
    assert a.truth.origin_screen_deg != c.truth.origin_screen_deg


def test_cohort_patient_k_does_not_depend_on_cohort_size(cohort: list[PhantomCase]) -> None:
    small = make_phantom_cohort(3, seed=11)
    for k in range(3):
        assert small[k].patient.patient_id == cohort[k].patient.patient_id
        np.testing.assert_array_equal(small[k].patient.images, cohort[k].patient.images)
        np.testing.assert_array_equal(small[k].patient.label_maps, cohort[k].patient.label_maps)
    assert not np.array_equal(make_phantom_cohort(1, seed=12)[0].patient.label_maps, cohort[0].patient.label_maps)


def test_cohort_ids_interleave_normal_and_pathological(cohort: list[PhantomCase]) -> None:
    ids = [case.patient.patient_id for case in cohort]
    assert ids == [f"Phantom_{'NP'[k % 2]}{k + 1:03d}" for k in range(8)]
    assert [case.truth.pathological for case in cohort] == [k % 2 == 1 for k in range(8)]
    quarter = PhantomConfig(pathological_fraction=0.25, min_slices=3, max_slices=4, shape=(96, 96))
    letters = "".join(case.patient.patient_id[8] for case in make_phantom_cohort(8, seed=1, config=quarter))
    assert letters == "NNNPNNNP"


def test_patient_fields(cohort: list[PhantomCase]) -> None:
    config = PhantomConfig()
    for case in cohort:
        p = case.patient
        assert p.layout == Layout.EMIDEC
        assert p.spacing_mm == (1.4, 1.4) and p.slice_thickness_mm == 10.0
        assert p.images.dtype == np.float32 and p.label_maps.dtype == np.uint8
        assert p.shape == (160, 160) and config.min_slices <= p.n_slices <= config.max_slices
        assert p.slice_positions == tuple(range(p.n_slices))
        assert case.truth.segment_maps.shape == p.label_maps.shape and case.truth.segment_maps.dtype == np.uint8
        assert case.truth.centres_rc.shape == (p.n_slices, 2) and len(case.truth.level_per_slice) == p.n_slices
        assert case.truth.apex_first and case.truth.handedness == Handedness.CCW
        # Raw scanner-like range; air and lungs near zero.
        blood = p.images[p.label_maps == Label.CAVITY].mean()
        assert 300 < blood < 1000
        assert np.percentile(p.images, 1) < 0.1 * blood


def test_label_sets_are_exact(cohort: list[PhantomCase]) -> None:
    for case in cohort:
        values = set(np.unique(case.patient.label_maps).tolist())
        if case.truth.pathological:
            assert {0, 1, 2, 3} <= values <= {0, 1, 2, 3, 4}
        else:
            assert values == {0, 1, 2}
        # Every slice has myocardium; the cavity is missing only on an apical cap.
        for k, level in enumerate(case.truth.level_per_slice):
            assert np.isin(case.patient.label_maps[k], (2, 3, 4)).sum() > 20
            assert (case.patient.label_maps[k] == Label.CAVITY).any() == (level != Level.APEX)


def test_normal_patients_have_no_scar() -> None:
    for seed in range(4):
        case = make_phantom(np.random.default_rng(seed), pathological=False)
        assert not np.isin(case.patient.label_maps, (3, 4)).any()
        assert not case.truth.pathological and case.patient.scar_burden() == 0.0


def test_rv_label_only_when_asked_and_on_the_septal_side() -> None:
    plain = make_phantom(np.random.default_rng(3))
    with_rv = make_phantom(np.random.default_rng(3), PhantomConfig(rv_label=True))
    assert not plain.patient.has_rv and with_rv.patient.has_rv
    # Same draws: only the RV blood pool changes label, the images are identical.
    np.testing.assert_array_equal(plain.patient.images, with_rv.patient.images)
    rv_mask = with_rv.patient.label_maps == Label.RV
    np.testing.assert_array_equal(plain.patient.label_maps[~rv_mask], with_rv.patient.label_maps[~rv_mask])
    assert (plain.patient.label_maps[rv_mask] == 0).all()
    # The RV shrinks toward the apex and sits at the septum (AHA 120 deg) on basal slices.
    rv_area = rv_mask.sum(axis=(1, 2))
    assert rv_area[0] == 0 and rv_area[-1] > 100
    base = with_rv.patient.n_slices - 1
    septum_deg = _mean_direction_deg(rv_mask[base], with_rv.truth.centres_rc[base])
    assert _angle_diff_deg(septum_deg, with_rv.truth.origin_screen_deg + 120.0) < 15.0


def test_clockwise_handedness_puts_origin_on_the_other_side() -> None:
    config = PhantomConfig(rv_label=True, handedness="cw", septum_screen_deg=180.0)
    case = make_phantom(np.random.default_rng(4), config)
    assert case.truth.handedness == Handedness.CW and case.truth.origin_screen_deg == pytest.approx(300.0)
    base = case.patient.n_slices - 1
    rv_deg = _mean_direction_deg(case.patient.label_maps[base] == Label.RV, case.truth.centres_rc[base])
    assert _angle_diff_deg(rv_deg, 180.0) < 15.0
    # Anterior segment 1 is centred at AHA 30 deg: screen 300 - 30 = 270 (down) in this mirrored display.
    seg1_deg = _mean_direction_deg(case.truth.segment_maps[base] == 1, case.truth.centres_rc[base])
    assert _angle_diff_deg(seg1_deg, 270.0) < 10.0


def test_wall_thickness_is_6_to_12_mm(cohort: list[PhantomCase]) -> None:
    for case in cohort[:4]:
        label_maps, spacing = case.patient.label_maps, case.patient.spacing_mm[0]
        for k in range(case.patient.n_slices):
            cavity_mask = label_maps[k] == Label.CAVITY
            if not cavity_mask.any():
                continue
            myo_mask = np.isin(label_maps[k], (2, 3, 4))
            epi_mask = myo_mask & ndimage.binary_dilation(~(myo_mask | cavity_mask))
            # Distance from the outermost myocardial pixel centres to the nearest cavity pixel, plus half a pixel;
            # pixel centres quantise it by up to one pixel either way.
            thickness_mm = (ndimage.distance_transform_edt(~cavity_mask)[epi_mask] + 0.5) * spacing
            assert 6.0 <= np.median(thickness_mm) <= 12.0
            assert np.percentile(thickness_mm, 2) > 6.0 - spacing and np.percentile(thickness_mm, 98) < 12.0 + spacing


def test_cavity_grows_from_apex_to_base(cohort: list[PhantomCase]) -> None:
    for case in cohort:
        areas = (case.patient.label_maps == Label.CAVITY).sum(axis=(1, 2))
        first = int(case.truth.level_per_slice[0] == Level.APEX)
        assert np.all(np.diff(areas[first:]) > 0)
        radius_mm = np.sqrt(areas[[first, -1]] / np.pi) * 1.4
        assert 4.0 < radius_mm[0] < 11.0 and 16.0 < radius_mm[1] < 26.0


def test_levels_follow_the_thirds_rule(cohort: list[PhantomCase]) -> None:
    caps = 0
    for case in cohort:
        levels = case.truth.level_per_slice
        n_cap = int(levels[0] == Level.APEX)
        caps += n_cap
        n = len(levels) - n_cap
        expected = [Level.APEX] * n_cap + [Level.APICAL] * round(n / 3)
        expected += [Level.MID] * (round(2 * n / 3) - round(n / 3)) + [Level.BASAL] * (n - round(2 * n / 3))
        assert list(levels) == expected
    assert 0 < caps < len(cohort)  # both stacks with and without an apical cap occur


def test_segment_map_is_nonzero_exactly_on_myocardium(cohort: list[PhantomCase]) -> None:
    for case in cohort:
        segment_maps, truth = case.truth.segment_maps, case.truth
        np.testing.assert_array_equal(segment_maps > 0, np.isin(case.patient.label_maps, (2, 3, 4)))
        rows, cols = np.indices(case.patient.shape)
        for k, level in enumerate(truth.level_per_slice):
            ids = set(np.unique(segment_maps[k][segment_maps[k] > 0]).tolist())
            assert ids == set(segment_ids(Level(level)))  # a whole ring: every segment of the level is present
            centre = (truth.centres_rc[k, 0], truth.centres_rc[k, 1])
            angle = aha_angle_deg(screen_angle_deg(rows, cols, centre), truth.origin_screen_deg, truth.handedness)
            expected = np.where(segment_maps[k] > 0, segment_from_angle(angle, Level(level)), 0)
            np.testing.assert_array_equal(segment_maps[k], expected)


def test_scar_contrast(pathological_cases: list[PhantomCase]) -> None:
    for case in pathological_cases:
        images, label_maps = case.patient.images, case.patient.label_maps
        blood, myo, scar = (images[label_maps == label].mean() for label in (1, 2, 3))
        assert scar > 1.15 * blood and myo < 0.3 * blood


def test_scar_is_subendocardial_and_contiguous(pathological_cases: list[PhantomCase]) -> None:
    for case in pathological_cases:
        label_maps = case.patient.label_maps
        infarct = np.isin(label_maps, (3, 4))
        assert not (infarct & (case.truth.segment_maps == 0)).any()
        scar_slices = np.flatnonzero(infarct.any(axis=(1, 2)))
        assert 2 <= len(scar_slices) <= 5 and np.all(np.diff(scar_slices) == 1)
        for k in scar_slices:
            components, n = ndimage.label(infarct[k], structure=np.ones((3, 3)))
            touching = ndimage.binary_dilation(label_maps[k] == Label.CAVITY, structure=np.ones((3, 3)))
            assert set(np.unique(components[touching & infarct[k]])) >= set(range(1, n + 1))


def test_mvo_is_a_dark_core_inside_the_scar() -> None:
    config = PhantomConfig(mvo_probability=1.0, scar_transmurality=(0.8, 1.0), scar_width_deg=(100.0, 150.0))
    for seed in range(3):
        case = make_phantom(np.random.default_rng(seed), config, pathological=True)
        images, label_maps = case.patient.images, case.patient.label_maps
        mvo_mask = label_maps == Label.MVO
        assert mvo_mask.sum() > 10
        assert images[mvo_mask].mean() < 0.6 * images[label_maps == Label.INFARCT].mean()
        # Every myocardial neighbour of the MVO is scar (or MVO): the core never touches healthy myocardium.
        ring = ndimage.binary_dilation(mvo_mask, structure=np.ones((1, 3, 3))) & ~mvo_mask
        assert not (ring & (label_maps == Label.MYOCARDIUM)).any()


def test_reversed_order_is_the_exact_reverse() -> None:
    forward = make_phantom(np.random.default_rng(21), pathological=True)
    backward = make_phantom(np.random.default_rng(21), pathological=True, apex_first=False)
    assert not backward.truth.apex_first
    np.testing.assert_array_equal(backward.patient.images, forward.patient.images[::-1])
    np.testing.assert_array_equal(backward.patient.label_maps, forward.patient.label_maps[::-1])
    np.testing.assert_array_equal(backward.truth.segment_maps, forward.truth.segment_maps[::-1])
    np.testing.assert_array_equal(backward.truth.centres_rc, forward.truth.centres_rc[::-1])
    assert backward.truth.level_per_slice == forward.truth.level_per_slice[::-1]
    assert backward.truth.origin_screen_deg == forward.truth.origin_screen_deg
    assert backward.patient.slice_positions == forward.patient.slice_positions


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(min_slices=2),
        dict(min_slices=8, max_slices=6),
        dict(pathological_fraction=1.5),
        dict(handedness="up"),
        dict(spacing_mm=0.0),
        dict(wall_thickness_mm=(12.0, 6.0)),
        dict(scar_transmurality=(0.5, 1.5)),
    ],
)
def test_bad_config_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PhantomConfig(**kwargs)
