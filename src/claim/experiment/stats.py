"""Summary statistics over patients: mean, sd and the paired bootstrap interval of an arm minus the baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mean_sd", "paired_bootstrap_ci"]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (ddof 1; 0 for one value) of the finite values; NaN, NaN when none."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    return float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else 0.0


def paired_bootstrap_ci(
    arm: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of ``arm - baseline`` over paired patients and its percentile bootstrap interval.

    Patients are resampled with replacement (the same draw for both arms, so the pairing is kept); pairs with a
    non-finite value are dropped. Returns ``{"mean", "low", "high", "n"}``; NaN bounds for fewer than two pairs.
    """
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    n = int(diff.size)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    if n == 1:
        return {"mean": float(diff[0]), "low": float("nan"), "high": float("nan"), "n": 1}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "n": n}
