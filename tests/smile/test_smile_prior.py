"""The learned prior: fit, save/load round trip, sampling from it, and the shipped EMIDEC prior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from claim.aha.geometry import compute_geometry
from claim.aha.segments import Territory
from claim.errors import ClaimError, InputError
from claim.smile import (
    Prior,
    ScarCanvas,
    SmileConfig,
    SmileSampler,
    default_prior,
    fit_prior,
    label_map_statistics,
    load_prior,
    save_prior,
)
from claim.stages.masks import fit_prior_from_folder
from tests.conftest import EMIDEC_SLICES


@pytest.fixture(scope="module")
def samplers(phantom_cohort):
    return [SmileSampler(compute_geometry(c.patient), c.patient.label_maps) for c in phantom_cohort]


def _generated_stats(samplers, prior: Prior, n: int, seed: int = 0):
    stats = []
    for k in range(n):
        sampler = samplers[k % len(samplers)]
        sampler = SmileSampler(sampler.canvas.geometry, sampler.label_maps, SmileConfig(), prior)
        label_maps, _ = sampler.sample(np.random.default_rng([seed, k]))
        stats.append(label_map_statistics(sampler.canvas, label_maps))
    return stats


def test_default_prior_is_documented_real_emidec_statistics():
    prior = default_prior()
    assert prior.n_patients == 50 and "emidec" in prior.source.lower()
    assert prior.notes["fitted_with"].startswith("claim masks --fit-prior")
    assert abs(sum(prior.territory_probabilities.values()) - 1.0) < 1e-3
    assert all(len(v) == 17 for v in prior.segment_involvement.values())
    assert 0.0 < prior.burden_quantiles[10] < 0.5 and 0.0 <= prior.mvo_probability <= 1.0


def test_save_load_round_trip_gives_identical_samples(tmp_path, samplers):
    prior = default_prior()
    path = save_prior(prior, tmp_path / "prior.json")
    loaded = load_prior(path)
    assert loaded.to_json() == prior.to_json()
    a = SmileSampler(samplers[0].canvas.geometry, samplers[0].label_maps, prior=prior)
    b = SmileSampler(samplers[0].canvas.geometry, samplers[0].label_maps, prior=loaded)
    for seed in range(5):
        assert a.sample_spec(np.random.default_rng(seed)) == b.sample_spec(np.random.default_rng(seed))


def test_fit_then_sample_reproduces_the_fitted_distributions(samplers):
    # Fit a prior to masks drawn from a known prior, then check the refit recovers its main statistics.
    source = default_prior()
    stats = _generated_stats(samplers, source, 60)
    refit = fit_prior(stats, source="phantom masks")
    assert refit.n_patients == 60
    assert abs(refit.burden_quantiles[10] - source.burden_quantiles[10]) < 0.06
    mvo_share = np.mean([s.mvo for s in stats])
    assert abs(mvo_share - 0.5) < 0.3
    # ...and sampling from the refit prior gives burdens from the refit distribution.
    again = _generated_stats(samplers, refit, 40, seed=1)
    assert abs(np.median([s.burden for s in again]) - refit.burden_quantiles[10]) < 0.06


def test_territory_probabilities_steer_the_sampler(samplers):
    prior = default_prior()
    only_rca = Prior.from_json(prior.to_json() | {"territory_probabilities": {"LAD": 0.0, "RCA": 1.0, "LCx": 0.0}})
    sampler = SmileSampler(samplers[1].canvas.geometry, samplers[1].label_maps, prior=only_rca)
    territories = [sampler.sample_spec(np.random.default_rng(k)).territory for k in range(20)]
    assert territories.count(Territory.RCA) >= 17


def test_quantile_sampling_is_truncated():
    rng = np.random.default_rng(0)
    quantiles = tuple(np.linspace(0.0, 1.0, 21))
    draws = [Prior.sample_quantile(rng, quantiles, 0.2, 0.3) for _ in range(200)]
    assert min(draws) >= 0.2 and max(draws) <= 0.3
    assert Prior.cdf(quantiles, 0.5) == pytest.approx(0.5)


def test_bad_prior_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="prior file not found"):
        load_prior(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="bad.json"):
        load_prior(bad)
    with pytest.raises(ClaimError, match="at least 3"):
        fit_prior([], source="nothing")


@pytest.mark.realdata
def test_fit_prior_from_real_slices_matches_the_shipped_prior():
    prior = fit_prior_from_folder(EMIDEC_SLICES)
    shipped = default_prior()
    assert prior.n_patients == shipped.n_patients == 50
    np.testing.assert_allclose(prior.burden_quantiles, shipped.burden_quantiles, atol=1e-4)
    assert prior.territory_probabilities == shipped.territory_probabilities


def test_fit_from_phantom_canvas(phantom_cohort):
    stats = [
        label_map_statistics(ScarCanvas.from_geometry(compute_geometry(c.patient)), c.patient.label_maps)
        for c in phantom_cohort
    ]
    scarred = [s for s in stats if s.burden > 0]
    assert len(scarred) == 2
    with pytest.raises(ClaimError):
        fit_prior(stats, source="two scars")
