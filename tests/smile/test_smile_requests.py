"""Requests a patient cannot meet fail with a clear ClaimError naming the patient and the reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from claim.aha.geometry import compute_geometry
from claim.aha.segments import Territory
from claim.errors import ClaimError
from claim.phantom import make_phantom
from claim.smile import Pattern, ScarSpec, SmileConfig, SmileSampler
from tests.conftest import SMALL


@pytest.fixture(scope="module")
def sampler(phantom_cohort):
    case = phantom_cohort[0]
    return SmileSampler(compute_geometry(case.patient), case.patient.label_maps)


def _sample(sampler: SmileSampler, **controls):
    configured = SmileSampler(sampler.canvas.geometry, sampler.label_maps, SmileConfig(**controls))
    return configured.sample(np.random.default_rng(0))


def test_segments_absent_from_the_stack():
    case = make_phantom(np.random.default_rng(1), replace(SMALL, apex_cap_probability=0.0), patient_id="Case_X")
    no_cap = SmileSampler(compute_geometry(case.patient), case.patient.label_maps)
    assert 17 not in no_cap.canvas.present_segments()
    with pytest.raises(ClaimError, match=r"patient Case_X: segments \[17\] are not in its stack"):
        _sample(no_cap, segments=(13, 17))


def test_burden_above_what_the_territory_holds(sampler):
    with pytest.raises(ClaimError) as error:
        _sample(sampler, territory=Territory.RCA, burden=(0.6, 0.7))
    message = str(error.value)
    assert "Phantom_N001" in message and "RCA" in message and "60.0 %" in message and "at most" in message
    with pytest.raises(ClaimError, match="transmurality <= 20.0 %"):
        _sample(sampler, segments=(7, 8), burden=(0.1, 0.2), transmurality=(0.1, 0.2))


def test_segments_outside_the_requested_territory(sampler):
    with pytest.raises(ClaimError, match=r"segments \[7\] are not in territory RCA"):
        _sample(sampler, territory=Territory.RCA, segments=(7, 9))


def test_ischemic_segments_must_be_contiguous_but_patchy_ones_need_not(sampler):
    with pytest.raises(ClaimError, match="not contiguous"):
        _sample(sampler, segments=(7, 9))
    label_maps, spec = _sample(sampler, pattern=Pattern.PATCHY, segments=(7, 9))
    assert spec.segments == (7, 9)


def test_blobs_have_no_clinical_controls(sampler):
    with pytest.raises(ClaimError, match="no burden"):
        _sample(sampler, pattern=Pattern.BLOBS, burden=(0.1, 0.2))


@pytest.mark.parametrize(
    ("controls", "match"),
    [
        ({"burden": (0.3, 0.1)}, "burden range"),
        ({"transmurality": (0.0, 0.5)}, "transmurality range"),
        ({"mvo_probability": 1.5}, "MVO probability"),
        ({"segments": (0, 7)}, "AHA segment"),
    ],
)
def test_invalid_controls(controls, match):
    with pytest.raises(ClaimError, match=match):
        SmileConfig(**controls)


def test_feasible_edge_is_met(sampler):
    # A burden just below what the whole territory holds at full transmurality is still drawn exactly.
    capacity = sampler.canvas.segment_capacity("endo", 1.0)[[1, 2, 7, 8, 13, 14, 17]].sum() / sampler.canvas.n_pixels
    target = 0.9 * capacity
    label_maps, spec = _sample(sampler, territory=Territory.LAD, burden=(target, target))
    assert abs(spec.target_burden - target) < 1e-6
    assert abs(np.isin(label_maps, (3, 4)).sum() / sampler.canvas.n_pixels - target) < 0.02


def test_spec_rejects_mixed_and_bad_segments():
    with pytest.raises(ValueError):
        ScarSpec(Pattern.MIXED, (1,))
    with pytest.raises(ValueError):
        ScarSpec(Pattern.ISCHEMIC, ())
