"""Property tests: every SMILE mask is plausible, on phantom patients and on real EMIDEC patients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from claim.aha.geometry import compute_geometry
from claim.aha.segments import Territory
from claim.data.layouts import read_dataset
from claim.labels import Label, infarct_mask
from claim.smile import (
    Pattern,
    ScarSpec,
    SmileConfig,
    SmileSampler,
    is_contiguous,
    render_scar,
    sample_scar_spec,
    territory_segments,
)
from claim.smile.canvas import ScarCanvas
from tests.conftest import EMIDEC_SLICES
from tests.smile.checks import check_mask

FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PATTERNS = st.sampled_from([Pattern.ISCHEMIC, Pattern.MIDWALL, Pattern.SUBEPICARDIAL, Pattern.PATCHY, Pattern.MIXED])


class _Cases(list):
    """Patients and geometries; a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"<{len(self)} patients: {', '.join(p.patient_id for p, _ in self)}>"


@pytest.fixture(scope="module")
def phantom_geometries(phantom_cohort):
    return _Cases((case.patient, compute_geometry(case.patient)) for case in phantom_cohort)


@pytest.fixture(scope="module")
def real_geometries():
    if not EMIDEC_SLICES.is_dir():
        pytest.skip(f"real data not found at {EMIDEC_SLICES}")
    patients = read_dataset(EMIDEC_SLICES)
    chosen = patients[::8]  # 10 patients, normal and pathological, to keep the tests fast
    return _Cases((p, compute_geometry(p)) for p in chosen)


def _draw(patient, geometry, config: SmileConfig, seed: int):
    sampler = SmileSampler(geometry, patient.label_maps, config)
    result = sampler.sample_result(np.random.default_rng(seed))
    return result, result.label_maps(patient.label_maps)


@FEW
@given(index=st.integers(0, 3), pattern=PATTERNS, seed=st.integers(0, 2**32 - 1))
# A tie between a lifted slice and the slice beyond it once skipped slice 4 of 0-5 (scar slices must be one run).
@example(index=3, pattern=Pattern.SUBEPICARDIAL, seed=488289)
def test_phantom_masks_are_plausible(phantom_geometries, index, pattern, seed):
    patient, geometry = phantom_geometries[index]
    result, out = _draw(patient, geometry, SmileConfig(pattern=pattern), seed)
    check_mask(patient.label_maps, out, result)
    assert result.scar_pixels.size > 0


@FEW
@given(
    index=st.integers(0, 3),
    territory=st.sampled_from(list(Territory)),
    burden=st.floats(0.02, 0.15),
    seed=st.integers(0, 2**32 - 1),
)
def test_requested_territory_and_burden_are_met(phantom_geometries, index, territory, burden, seed):
    patient, geometry = phantom_geometries[index]
    config = SmileConfig(territory=territory, burden=(burden, burden + 0.01), transmurality=(0.5, 1.0))
    result, out = _draw(patient, geometry, config, seed)
    check_mask(patient.label_maps, out, result)
    scar_segments = set(np.unique(geometry.segment_maps[infarct_mask(out)]).tolist())
    assert scar_segments <= set(territory_segments(territory))
    assert result.spec.territory == territory
    assert burden - 0.02 <= result.achieved_burden <= burden + 0.03


@FEW
@given(
    segments=st.sampled_from([(7, 8, 13), (3, 4, 9, 10), (5, 11), (14, 15, 17), (1,)]),
    pattern=st.sampled_from([Pattern.ISCHEMIC, Pattern.MIDWALL, Pattern.SUBEPICARDIAL, Pattern.PATCHY]),
    seed=st.integers(0, 2**32 - 1),
)
def test_requested_segments_are_respected(phantom_geometries, segments, pattern, seed):
    patient, geometry = phantom_geometries[1]
    result, out = _draw(patient, geometry, SmileConfig(pattern=pattern, segments=segments), seed)
    check_mask(patient.label_maps, out, result)
    assert result.spec.segments == tuple(sorted(segments))


@FEW
@given(index=st.integers(0, 3), pattern=st.sampled_from(list(Pattern)), seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_mask_and_spec_replays(phantom_geometries, index, pattern, seed):
    patient, geometry = phantom_geometries[index]
    sampler = SmileSampler(geometry, patient.label_maps, SmileConfig(pattern=pattern))
    first, spec = sampler.sample(np.random.default_rng(seed))
    second, spec_again = sampler.sample(np.random.default_rng(seed))
    assert spec == spec_again
    np.testing.assert_array_equal(first, second)
    # The logged spec alone redraws the mask (JSON round trip, geometry instead of the canvas).
    replayed = render_scar(ScarSpec.from_json(spec.to_json()), geometry)
    np.testing.assert_array_equal(replayed.label_maps(patient.label_maps), first)


def test_ischemic_scar_grows_with_burden_from_the_endocardium(phantom_geometries):
    patient, geometry = phantom_geometries[0]
    sampler = SmileSampler(geometry, patient.label_maps)
    spec = sampler.sample_spec(np.random.default_rng(0))
    small = render_scar(ScarSpec.from_json(spec.to_json() | {"target_burden": 0.05, "mvo": False}), geometry)
    large = render_scar(ScarSpec.from_json(spec.to_json() | {"target_burden": 0.15, "mvo": False}), geometry)
    # Monotone: the smaller scar lies inside the larger one (same fields, lower threshold).
    assert set(small.scar_pixels.tolist()) <= set(large.scar_pixels.tolist())
    depth = sampler.canvas.depth
    assert depth[small.scar_pixels].mean() <= depth[large.scar_pixels].mean() + 0.05


def test_mvo_is_an_endocardial_core(phantom_geometries):
    patient, geometry = phantom_geometries[1]
    sampler = SmileSampler(geometry, patient.label_maps, SmileConfig(burden=(0.25, 0.3), mvo_probability=1.0))
    spec = sampler.sample_spec(np.random.default_rng(3))
    assert spec.mvo
    result = sampler.render(spec)
    depth = sampler.canvas.depth
    assert 0 < result.mvo_pixels.size < result.scar_pixels.size
    assert depth[result.mvo_pixels].mean() < depth[result.scar_pixels].mean()
    no_mvo = SmileSampler(geometry, patient.label_maps, SmileConfig(burden=(0.25, 0.3), mvo_probability=0.0))
    assert not no_mvo.sample_spec(np.random.default_rng(3)).mvo


def test_spec_sampling_uses_only_the_given_rng(phantom_geometries):
    patient, geometry = phantom_geometries[2]
    sampler = SmileSampler(geometry, patient.label_maps)
    np.random.seed(1)
    a = sample_scar_spec(np.random.default_rng(9), sampler.canvas)
    np.random.seed(2)
    b = sample_scar_spec(np.random.default_rng(9), sampler.canvas)
    assert a == b


@pytest.mark.realdata
@FEW
@given(index=st.integers(0, 9), pattern=PATTERNS, seed=st.integers(0, 2**32 - 1))
def test_real_patients_masks_are_plausible(real_geometries, index, pattern, seed):
    patient, geometry = real_geometries[index]
    result, out = _draw(patient, geometry, SmileConfig(pattern=pattern), seed)
    check_mask(patient.label_maps, out, result)


@pytest.mark.realdata
@FEW
# Found by a fresh draw: the pixel noise left slice 8's last 7 scar pixels off the endocardium (one now moves onto
# it).
@example(index=4, territory=Territory.RCA, burden=0.1015625, seed=13195)
@given(
    index=st.integers(0, 9),
    territory=st.sampled_from(list(Territory)),
    burden=st.floats(0.03, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
def test_real_patients_requested_territory_and_burden(real_geometries, index, territory, burden, seed):
    patient, geometry = real_geometries[index]
    config = SmileConfig(territory=territory, burden=(burden, burden), transmurality=(0.6, 1.0))
    result, out = _draw(patient, geometry, config, seed)
    check_mask(patient.label_maps, out, result)
    scar_segments = set(np.unique(geometry.segment_maps[infarct_mask(out)]).tolist())
    assert scar_segments <= set(territory_segments(territory))
    assert abs(result.achieved_burden - burden) <= 0.02


@FEW
@given(index=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_strict_territory_keeps_ischemic_scars_in_one_territory(phantom_geometries, index, seed):
    patient, geometry = phantom_geometries[index]
    result, out = _draw(patient, geometry, SmileConfig(strict_territory=True), seed)
    spec = result.spec
    assert spec.pattern == Pattern.ISCHEMIC and spec.territory is not None
    allowed = set(territory_segments(Territory(spec.territory)))
    scarred = set(np.unique(geometry.segment_maps[infarct_mask(out)]).tolist()) - {0}
    assert scarred <= allowed, (spec.territory, scarred)


def test_default_scars_start_in_their_territory_and_some_grow_beyond_it(phantom_geometries):
    beyond = 0
    for index, (patient, geometry) in enumerate(phantom_geometries):
        for seed in range(10):
            result, out = _draw(patient, geometry, SmileConfig(), 100 * index + seed)
            spec = result.spec
            assert spec.pattern == Pattern.ISCHEMIC and spec.territory is not None
            assert is_contiguous(spec.segments)
            own = set(territory_segments(Territory(spec.territory)))
            assert own & set(spec.segments)  # grown from a seed segment of its territory
            scarred = set(np.unique(geometry.segment_maps[infarct_mask(out)]).tolist()) - {0}
            assert scarred <= set(spec.segments)
            beyond += bool(scarred - own)
    # The prior's real scars reach beyond their territory: so do some of the 40 drawn here, not all.
    assert 0 < beyond < 40, beyond


def _arc_extent_cv_and_roughness(result, geometry) -> tuple[float, float]:
    """Spread of the transmural extent along the arc (cv over angle bins) and border roughness, pooled over slices."""
    from claim.evaluation.realism import shape_statistics

    scar = result.scar_mask()
    cvs, rough = [], []
    for s in range(scar.shape[0]):
        if scar[s].sum() < 20:
            continue
        myo = ~np.isnan(geometry.depth[s])
        bins = (geometry.angle_deg[s][myo & scar[s]] // 10).astype(int)
        depth = geometry.depth[s][myo & scar[s]]
        extent = np.array([depth[bins == b].max() for b in np.unique(bins)])
        cvs.append(extent.std() / extent.mean())
        polar = np.zeros((8, 36))
        rough.append(shape_statistics(scar[s], polar)["scar_border_roughness"])
    return float(np.mean(cvs)), float(np.nanmean(rough))


def test_scar_borders_are_ragged_and_its_reach_varies_without_losing_the_controls(phantom_geometries, monkeypatch):
    import claim.smile.render as render

    patient, geometry = phantom_geometries[0]
    spec = ScarSpec(pattern=Pattern.ISCHEMIC, segments=tuple(territory_segments(Territory.LAD)),
                    target_burden=0.12, transmurality=0.8, field_seed=3)
    irregular = render_scar(spec, geometry)
    monkeypatch.setattr(render, "PIXEL_NOISE", 0.0)
    monkeypatch.setattr(render, "EXTENT_VARIATION", 0.0)
    smooth = render_scar(spec, geometry)
    # The clinical controls hold exactly either way: burden, territory, transmurality.
    for result in (irregular, smooth):
        assert result.scar_pixels.size == int(round(0.12 * result.canvas.n_pixels))
        scar = result.scar_mask()
        assert geometry.depth[scar].max() <= 0.8 + 1e-6
        assert set(np.unique(geometry.segment_maps[scar]).tolist()) <= set(territory_segments(Territory.LAD))
    cv_irregular, rough_irregular = _arc_extent_cv_and_roughness(irregular, geometry)
    cv_smooth, rough_smooth = _arc_extent_cv_and_roughness(smooth, geometry)
    assert cv_irregular > cv_smooth + 0.05  # measured 0.52 vs 0.31
    assert rough_irregular > rough_smooth + 0.03  # measured 1.64 vs 1.40


def _long_axis_counts(geometries) -> tuple[int, float]:
    """Over 10 LAD scars (burden 0.12, MVO 0.2) per patient: how many run through every myocardium slice, and the
    mean share of their scar slices that carry MVO. The controls are checked on every mask."""
    whole, mvo_share = 0, []
    for _, geometry in geometries:
        for seed in range(10):
            spec = ScarSpec(pattern=Pattern.ISCHEMIC, segments=tuple(territory_segments(Territory.LAD)),
                            target_burden=0.12, transmurality=0.8, field_seed=seed, mvo=True, mvo_fraction=0.2)
            result = render_scar(spec, geometry)
            assert result.scar_pixels.size == int(round(0.12 * result.canvas.n_pixels))
            assert geometry.depth[result.scar_mask()].max() <= 0.8 + 1e-6
            per_slice = result.scar_mask().sum(axis=(1, 2))
            myocardium_slices = (~np.isnan(geometry.depth)).any(axis=(1, 2))
            whole += int((per_slice > 0).sum() == myocardium_slices.sum())
            mvo_slices = result.mvo_mask().any(axis=(1, 2))
            assert not (mvo_slices & (per_slice == 0)).any()
            mvo_share.append(mvo_slices.sum() / (per_slice > 0).sum())
    return whole, float(np.mean(mvo_share))


def test_scars_concentrate_along_the_long_axis_and_mvo_sits_in_their_core(phantom_geometries, monkeypatch):
    import claim.smile.fields as fields

    # Real EMIDEC infarcts run through the whole stack in a third to a half of patients, and their MVO through
    # about 0.6 of their scar slices (benchmarks/mask_shape.py); without the long-axis focus SMILE scarred every
    # slice and put MVO on three quarters of them.
    focused, focused_mvo = _long_axis_counts(phantom_geometries)
    monkeypatch.setattr(fields, "LONG_AXIS_FOCUS", 0.0)
    spread, spread_mvo = _long_axis_counts(phantom_geometries)
    assert focused <= 30 and focused < spread - 10  # measured 23 vs 40 of 40
    assert focused_mvo < spread_mvo - 0.1  # measured 0.58 vs 0.76


def test_canvas_endocardial_layer_is_the_myocardium_beside_the_cavity(phantom_geometries):
    eight = np.ones((3, 3), dtype=bool)
    for patient, geometry in phantom_geometries:
        canvas = ScarCanvas.from_geometry(geometry)
        rim = np.zeros(canvas.shape, dtype=bool)
        rim.reshape(-1)[canvas.flat_index[canvas.endocardial]] = True
        cavity = patient.label_maps == Label.CAVITY
        beside = np.stack([ndimage.binary_dilation(c, eight) if c.any() else c for c in cavity])
        np.testing.assert_array_equal(rim, beside & geometry.myocardium_mask)
        assert rim.any()


def test_reach_endocardium_moves_one_pixel_onto_the_endocardium_where_a_slice_has_none():
    from claim.smile.render import _reach_endocardium

    # Slice 0 already touches (pixel 1); slice 1's picks (5, 6) do not; pixel 7 is its best endocardial candidate,
    # pixel 8 is endocardial but unreachable (-inf); slice 2 has no endocardial pixel at all.
    slices = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2])
    endocardial = np.array([0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    score = np.array([5.0, 4.0, 3.0, 1.0, 2.5, 2.0, 3.0, 1.5, -np.inf, 9.0, 8.0])
    picked = np.array([0, 1, 4, 6, 9])
    moved = _reach_endocardium(picked, score, endocardial, slices)
    # Slice 1 trades its weakest pick (4) for pixel 3 or 7, the stronger of them (7); the rest stays; same count.
    np.testing.assert_array_equal(moved, [0, 1, 6, 7, 9])
    np.testing.assert_array_equal(_reach_endocardium(moved, score, endocardial, slices), moved)
