"""Summary statistics over patients: mean, sd and the paired bootstrap interval of an arm minus the baseline.

``summarise_arms`` turns the evaluation stage's per-patient records into the per-arm entries of ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["ARM_METRICS", "mean_sd", "paired_bootstrap_ci", "pathological_ids", "summarise_arms", "mean_fidelity"]

# metrics.json name -> claim.evaluation.metrics.patient_metrics name
ARM_METRICS = {
    "infarct_dice": "infarct_dice",
    "myocardium_dice": "myocardium_dice",
    "mvo_dice": "mvo_dice",
    "infarct_volume_ratio_error": "infarct_ratio_error",
}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (ddof 1; 0 for one value) of the finite values; NaN, NaN when none."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    return float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else 0.0


def paired_bootstrap_ci(
    arm: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95,
    strata: Sequence[int] | None = None,
) -> dict[str, float]:
    """Mean of ``arm - baseline`` over paired patients and its percentile bootstrap interval.

    Patients are resampled with replacement (the same draw for both arms, so the pairing is kept); pairs with a
    non-finite value are dropped. With ``strata`` (one label per patient: its cross-validation fold), patients are
    resampled within each stratum, keeping each stratum's size: every resample has each fold's share of patients,
    so a fold's models are never over- or under-represented. Returns ``{"mean", "low", "high", "n"}``; NaN bounds
    for fewer than two pairs.
    """
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    groups = np.zeros(a.shape, int) if strata is None else np.asarray(strata)
    if groups.shape != a.shape:
        raise ValueError(f"strata need one label per pair, got {groups.shape} for {a.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff, groups = a[keep] - b[keep], groups[keep]
    n = int(diff.size)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    if n == 1:
        return {"mean": float(diff[0]), "low": float("nan"), "high": float("nan"), "n": 1}
    rng = np.random.default_rng(seed)
    sums = np.zeros(resamples)
    for label in np.unique(groups):
        members = diff[groups == label]
        sums += members[rng.integers(0, members.size, size=(resamples, members.size))].sum(axis=1)
    means = sums / n
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "n": n}


def _finite(value) -> float:
    return float(value) if value is not None and np.isfinite(value) else float("nan")


def pathological_ids(records: Mapping[str, dict]) -> list[str]:
    """Sorted ids of the test patients whose record says ``pathological`` (the patients the arms are scored on)."""
    return sorted(pid for pid, r in records.items() if r["pathological"])


def summarise_arms(
    per_arm: Mapping[str, Mapping[str, dict]],
    arms: Sequence[str],
    *,
    baseline: str,
    resamples: int,
    seed: int,
    strata: Mapping[str, int] | None = None,
) -> dict[str, dict]:
    """Per arm: mean and sd of each ``ARM_METRICS`` value over the pathological test patients, and for every arm but
    ``baseline`` the paired bootstrap interval of arm minus baseline; plus the per-patient values (normal test
    patients listed apart: their infarct Dice says only whether the arm painted scar where there is none).

    Args:
        per_arm: arm -> test patient id -> ``patient_metrics`` record with ``pathological``.
        arms: the arms, in report order.
        baseline: the arm the others are compared with (its records also decide who is pathological).
        resamples / seed: of the bootstrap.
        strata: patient id -> cross-validation fold: the bootstrap resamples patients within folds.
    """
    pathological = pathological_ids(per_arm[baseline])
    summaries: dict[str, dict] = {}
    for arm in arms:
        records = per_arm[arm]
        entry: dict = {}
        sd, ci = {}, {}
        for key, source in ARM_METRICS.items():
            values = [_finite(records[pid][source]) for pid in pathological]
            entry[key], sd[key] = mean_sd(values)
            if arm != baseline:
                base = [_finite(per_arm[baseline][pid][source]) for pid in pathological]
                ci[key] = paired_bootstrap_ci(values, base, resamples=resamples, seed=seed,
                                              strata=None if strata is None else [strata[p] for p in pathological])
        entry["sd"] = sd
        if ci:
            entry["ci95_minus_real_only"] = ci  # the metrics.json key the report reads, named after the baseline
        entry["n_patients"] = len(pathological)
        entry["per_patient"] = {pid: {key: _finite(records[pid][src]) for key, src in ARM_METRICS.items()}
                                for pid in pathological}
        entry["normal_test_patients"] = {
            pid: {key: _finite(records[pid][src]) for key, src in ARM_METRICS.items()}
            for pid in sorted(records) if not records[pid]["pathological"]
        }
        summaries[arm] = entry
    return summaries


def mean_fidelity(fidelity: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Synthetic arm -> mean judge Dice over its synthetic patients."""
    return {arm: mean_sd(list(scores.values()))[0] for arm, scores in fidelity.items()}
