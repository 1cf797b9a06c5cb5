"""Realism statistics and the blob baseline."""

from __future__ import annotations

import numpy as np
import pytest

from claim.aha.geometry import compute_geometry
from claim.aha.segments import Territory
from claim.labels import myocardium_mask
from claim.smile import Pattern, ScarSpec, SmileConfig, SmileSampler, compare_statistics, scar_statistics
from claim.smile.blobs import sample_blob_segments
from claim.smile.realism import involvement_frequency


@pytest.fixture(scope="module")
def sampler(phantom_cohort):
    case = phantom_cohort[1]
    return SmileSampler(compute_geometry(case.patient), case.patient.label_maps)


def test_statistics_of_a_hand_made_scar(sampler):
    canvas = sampler.canvas
    scar = (canvas.segment == 7) & (canvas.depth <= 0.4)
    mvo = scar & (canvas.depth <= 0.1)
    stats = scar_statistics(canvas, scar, mvo)
    assert stats.burden == pytest.approx(scar.sum() / canvas.n_pixels)
    assert stats.involved == (7,)
    assert stats.territory == Territory.LAD
    assert stats.subendocardial_fraction == 1.0
    assert 0.2 < stats.transmurality <= 0.4
    assert stats.mvo and stats.mvo_fraction == pytest.approx(mvo.sum() / scar.sum())
    empty = scar_statistics(canvas, np.zeros(canvas.n_pixels, bool), np.zeros(canvas.n_pixels, bool))
    assert empty.burden == 0 and empty.territory is None and not empty.involved


def test_identical_sets_are_at_distance_zero(sampler):
    stats = [
        scar_statistics(sampler.canvas, sampler.canvas.segment == s, sampler.canvas.segment < 0) for s in (1, 7, 13)
    ]
    comparison = compare_statistics(stats, stats)
    assert comparison["involvement_distance"] == 0 and comparison["burden_ks"] == 0
    assert comparison["mvo_frequency"]["difference"] == 0
    assert involvement_frequency(stats)[[0, 6, 12]].tolist() == pytest.approx([1 / 3] * 3)


def test_blob_segments_follow_the_original_selection():
    rng = np.random.default_rng(0)
    draws = [sample_blob_segments(rng) for _ in range(400)]
    sizes = [len(d) for d in draws]
    assert all(17 not in d for d in draws)
    assert all(any(s <= 6 for s in d) and any(7 <= s <= 12 for s in d) and any(s >= 13 for s in d) for d in draws)
    # Measured on the original (20,000 draws): mean 10.5 segments, basal segments chosen 75 % of the time.
    assert 9.5 < np.mean(sizes) < 11.5
    basal = np.mean([sum(s <= 6 for s in d) / 6 for d in draws])
    assert 0.65 < basal < 0.85


def test_blobs_render_inside_the_myocardium_without_mvo(sampler):
    blobs = SmileSampler(sampler.canvas.geometry, sampler.label_maps, SmileConfig(pattern=Pattern.BLOBS))
    label_maps, spec = blobs.sample(np.random.default_rng(4))
    assert spec.pattern == Pattern.BLOBS and spec.target_burden is None and not spec.mvo
    source = sampler.label_maps
    myo = myocardium_mask(source)
    np.testing.assert_array_equal(label_maps[~myo], source[~myo])
    assert (label_maps == 3).any() and not (label_maps == 4).any()
    again = blobs.render(ScarSpec.from_json(spec.to_json())).label_maps(source)
    np.testing.assert_array_equal(again, label_maps)
