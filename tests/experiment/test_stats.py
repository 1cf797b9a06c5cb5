from __future__ import annotations

import math

import numpy as np
import pytest

from claim.experiment.stats import mean_sd, paired_bootstrap_ci


def test_paired_bootstrap_on_a_hand_example():
    baseline = [0.50, 0.60, 0.70, 0.40]
    arm = [0.60, 0.70, 0.80, 0.50]  # every patient gains exactly 0.1: the interval collapses onto it
    ci = paired_bootstrap_ci(arm, baseline, resamples=500, seed=0)
    assert ci["n"] == 4
    assert ci["mean"] == pytest.approx(0.1)
    assert ci["low"] == pytest.approx(0.1) and ci["high"] == pytest.approx(0.1)


def test_paired_bootstrap_interval_brackets_the_mean_and_is_seeded():
    baseline = [0.5, 0.5, 0.5, 0.5, 0.5]
    arm = [0.5, 0.6, 0.7, 0.4, 0.8]  # gains 0, .1, .2, -.1, .3: mean .1
    first = paired_bootstrap_ci(arm, baseline, resamples=4000, seed=3)
    again = paired_bootstrap_ci(arm, baseline, resamples=4000, seed=3)
    assert first == again
    assert first["mean"] == pytest.approx(0.1)
    assert -0.1 <= first["low"] < 0.1 < first["high"] <= 0.3
    # Resample means of 5 values drawn from {-.1, 0, .1, .2, .3}: the 95 % interval is about mean +- 1.96 sd/sqrt(5).
    sd = np.std([0, 0.1, 0.2, -0.1, 0.3]) / math.sqrt(5)
    assert first["low"] == pytest.approx(0.1 - 1.96 * sd, abs=0.03)
    assert first["high"] == pytest.approx(0.1 + 1.96 * sd, abs=0.03)


def test_pairs_with_nan_are_dropped_and_tiny_samples_have_no_interval():
    ci = paired_bootstrap_ci([0.2, float("nan"), 0.4], [0.1, 0.3, 0.2])
    assert ci["n"] == 2 and ci["mean"] == pytest.approx(0.15)
    single = paired_bootstrap_ci([0.3], [0.1])
    assert single["n"] == 1 and math.isnan(single["low"])
    with pytest.raises(ValueError):
        paired_bootstrap_ci([0.1, 0.2], [0.1])


def test_mean_sd():
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_sd([2.0]) == (2.0, 0.0)
    assert all(math.isnan(v) for v in mean_sd([]))


def test_stratified_bootstrap_resamples_within_folds():
    # Fold 1 gains exactly +1 per patient, fold 2 exactly 0: resampling within folds keeps two of each in every
    # draw, so the mean difference cannot move; pooled resampling mixes the folds and widens the interval.
    arm, base = [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]
    strat = paired_bootstrap_ci(arm, base, resamples=500, seed=0, strata=[1, 1, 2, 2])
    assert strat["mean"] == 0.5 and strat["low"] == 0.5 and strat["high"] == 0.5 and strat["n"] == 4
    pooled = paired_bootstrap_ci(arm, base, resamples=500, seed=0)
    assert pooled["low"] < 0.5 < pooled["high"]
    # Without strata the result is the plain patient bootstrap it always was.
    diff = np.asarray(arm) - np.asarray(base)
    means = diff[np.random.default_rng(0).integers(0, 4, size=(500, 4))].mean(axis=1)
    assert (pooled["low"], pooled["high"]) == tuple(np.percentile(means, [2.5, 97.5]))
    with pytest.raises(ValueError, match="one label per pair"):
        paired_bootstrap_ci(arm, base, strata=[1, 2])
