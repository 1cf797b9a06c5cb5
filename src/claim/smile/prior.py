"""The learned prior: distributions of real scars (burden, territory, segments, transmurality, MVO) as small JSON.

``fit_prior`` turns ``ScarStats`` of labelled pathological patients into quantile tables and frequencies;
``sample_scar_spec`` draws from them. The package ships ``default_prior.json``, fitted on real EMIDEC scars.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from claim import __version__
from claim.aha.segments import Territory
from claim.data.io import write_json
from claim.errors import ClaimError, InputError
from claim.smile.adjacency import Dominance
from claim.smile.realism import INVOLVEMENT_THRESHOLD, ScarStats

__all__ = ["PRIOR_FORMAT", "QUANTILE_LEVELS", "Prior", "fit_prior", "load_prior", "save_prior", "default_prior"]

PRIOR_FORMAT = "claim-smile-prior/1"
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)  # quantiles stored at 0, 5, ..., 100 %
_MVO_THRESHOLD_QUANTILE = 0.1  # "large, highly transmural": above the 10th percentile of scars that carry MVO


def _quantiles(values: Sequence[float]) -> tuple[float, ...]:
    array = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if array.size == 0:
        raise ClaimError("cannot fit a prior: no scar to measure")
    return tuple(round(float(q), 5) for q in np.quantile(array, QUANTILE_LEVELS))


@dataclass(frozen=True)
class Prior:
    """Distributions of real ischemic scars.

    Attributes:
        burden_quantiles / transmurality_quantiles / fill_quantiles / mvo_fraction_quantiles: values at
            ``QUANTILE_LEVELS`` (sampled by inverse CDF, linear in between).
        burden_transmurality_copula: Gaussian-copula correlation of burden and transmurality (large scars are
            more transmural), from their Spearman correlation.
        territory_probabilities: share of scars whose main territory is each territory.
        segment_involvement: per main territory, per segment 1-17, share of scars involving the segment
            (Laplace-smoothed).
        mvo_probability: chance of MVO for a scar with burden >= ``mvo_min_burden`` and transmurality >=
            ``mvo_min_transmurality`` (calibrated so the overall share of scars with MVO matches the data).
        dominance: dominance used to assign territories.
        n_patients: scars fitted.
        source: where they came from; ``notes`` says how.
    """

    burden_quantiles: tuple[float, ...]
    transmurality_quantiles: tuple[float, ...]
    fill_quantiles: tuple[float, ...]
    burden_transmurality_copula: float
    territory_probabilities: dict[Territory, float]
    segment_involvement: dict[Territory, tuple[float, ...]]
    mvo_probability: float
    mvo_min_burden: float
    mvo_min_transmurality: float
    mvo_fraction_quantiles: tuple[float, ...]
    dominance: Dominance = Dominance.RIGHT
    n_patients: int = 0
    source: str = ""
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The schema of a prior file: a wrong length, a NaN or a share outside [0, 1] is named here, once, instead
        # of failing (or sampling nonsense) masks later.
        n = len(QUANTILE_LEVELS)
        for name in ("burden_quantiles", "transmurality_quantiles", "fill_quantiles", "mvo_fraction_quantiles"):
            _check_shares(name, getattr(self, name), length=n)
        _check_shares("mvo probability, min_burden, min_transmurality",
                      (self.mvo_probability, self.mvo_min_burden, self.mvo_min_transmurality))
        if not (math.isfinite(self.burden_transmurality_copula) and -1.0 <= self.burden_transmurality_copula <= 1.0):
            raise ValueError(f"burden_transmurality_copula {self.burden_transmurality_copula} must lie in [-1, 1]")
        probabilities = list(self.territory_probabilities.values())
        _check_shares("territory_probabilities", probabilities)
        if not probabilities or sum(probabilities) <= 0:
            raise ValueError("territory_probabilities must name at least one territory with a share > 0")
        for territory, involvement in self.segment_involvement.items():
            _check_shares(f"segment_involvement[{territory.value}]", involvement, length=17)

    @staticmethod
    def cdf(quantiles: Sequence[float], value: float) -> float:
        """Cumulative probability of ``value`` under a quantile table (linear between quantiles)."""
        table = np.maximum.accumulate(np.asarray(quantiles, dtype=float))
        return float(np.interp(value, table, QUANTILE_LEVELS))

    @staticmethod
    def quantile(quantiles: Sequence[float], level: float) -> float:
        """Value at cumulative probability ``level`` (inverse of ``cdf``)."""
        return float(np.interp(level, QUANTILE_LEVELS, np.maximum.accumulate(np.asarray(quantiles, dtype=float))))

    @classmethod
    def sample_quantile(
        cls, rng: np.random.Generator, quantiles: Sequence[float], lo: float = 0.0, hi: float = 1.0
    ) -> float:
        """One draw from a quantile table truncated to ``[lo, hi]`` (uniform in the range when outside support)."""
        u_lo, u_hi = cls.cdf(quantiles, lo), cls.cdf(quantiles, hi)
        if u_hi - u_lo <= 1e-9:
            return float(rng.uniform(lo, hi))
        return float(np.clip(cls.quantile(quantiles, rng.uniform(u_lo, u_hi)), lo, hi))

    def to_json(self) -> dict:
        return {
            "format": PRIOR_FORMAT,
            "source": self.source,
            "n_patients": self.n_patients,
            "dominance": self.dominance.value,
            "notes": self.notes,
            "quantile_levels": [round(float(v), 3) for v in QUANTILE_LEVELS],
            "burden_quantiles": list(self.burden_quantiles),
            "transmurality_quantiles": list(self.transmurality_quantiles),
            "fill_quantiles": list(self.fill_quantiles),
            "burden_transmurality_copula": self.burden_transmurality_copula,
            "territory_probabilities": {t.value: p for t, p in self.territory_probabilities.items()},
            "segment_involvement": {t.value: list(v) for t, v in self.segment_involvement.items()},
            "mvo": {
                "probability": self.mvo_probability,
                "min_burden": self.mvo_min_burden,
                "min_transmurality": self.mvo_min_transmurality,
                "fraction_quantiles": list(self.mvo_fraction_quantiles),
            },
        }

    @classmethod
    def from_json(cls, record: dict) -> Prior:
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        if record.get("format") != PRIOR_FORMAT:
            raise ValueError(f"format {record.get('format')!r} is not {PRIOR_FORMAT!r}")
        levels = record.get("quantile_levels")
        if levels is not None and len(levels) != len(QUANTILE_LEVELS):
            raise ValueError(f"expected {len(QUANTILE_LEVELS)} quantile levels, got {len(levels)}")
        mvo = record["mvo"]
        return cls(
            burden_quantiles=tuple(record["burden_quantiles"]),
            transmurality_quantiles=tuple(record["transmurality_quantiles"]),
            fill_quantiles=tuple(record["fill_quantiles"]),
            burden_transmurality_copula=float(record["burden_transmurality_copula"]),
            territory_probabilities={Territory(t): float(p) for t, p in record["territory_probabilities"].items()},
            segment_involvement={Territory(t): tuple(v) for t, v in record["segment_involvement"].items()},
            mvo_probability=float(mvo["probability"]),
            mvo_min_burden=float(mvo["min_burden"]),
            mvo_min_transmurality=float(mvo["min_transmurality"]),
            mvo_fraction_quantiles=tuple(mvo["fraction_quantiles"]),
            dominance=Dominance(record.get("dominance", "right")),
            n_patients=int(record.get("n_patients", 0)),
            source=str(record.get("source", "")),
            notes=dict(record.get("notes", {})),
        )


def _check_shares(name: str, values: Sequence[float], *, length: int | None = None) -> None:
    values = list(values)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} needs {length} values, got {len(values)}")
    bad = [v for v in values if not isinstance(v, int | float) or not math.isfinite(v) or not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"{name} must hold finite shares in [0, 1], got {bad[:3]}")


def fit_prior(
    stats: Sequence[ScarStats],
    *,
    source: str,
    dominance: Dominance = Dominance.RIGHT,
    notes: dict | None = None,
) -> Prior:
    """Fit a prior from statistics of real scars (one per pathological patient).

    Args:
        stats: ``ScarStats`` of patients with scar (``label_map_statistics``); scar-free entries are skipped.
        source: where the scars came from (recorded in the JSON).
        dominance: dominance used for territories (must match ``stats``).
        notes: extra provenance recorded in the JSON.
    """
    scars = [s for s in stats if s.burden > 0]
    if len(scars) < 3:
        raise ClaimError(f"cannot fit a prior from {len(scars)} scarred patients; at least 3 are needed")
    territories = list(Territory)
    counts = {t: sum(s.territory == t for s in scars) for t in territories}
    # Involvement per main territory, Laplace-smoothed so that no segment is impossible.
    involvement = {}
    for territory in territories:
        group = [s for s in scars if s.territory == territory] or scars
        hits = np.zeros(17)
        for record in group:
            hits[[k - 1 for k in record.involved]] += 1
        involvement[territory] = tuple(round(float(v), 4) for v in (hits + 0.5) / (len(group) + 1.0))
    with_mvo = [s for s in scars if s.mvo]
    if with_mvo:
        min_burden = float(np.quantile([s.burden for s in with_mvo], _MVO_THRESHOLD_QUANTILE))
        min_extent = float(np.quantile([s.transmurality for s in with_mvo], _MVO_THRESHOLD_QUANTILE))
        eligible = [s for s in scars if s.burden >= min_burden and s.transmurality >= min_extent]
        # Calibrated so the share of scars with MVO matches the data (a few MVO scars fall below the thresholds).
        probability = min(1.0, len(with_mvo) / max(len(eligible), 1))
        fractions = _quantiles([s.mvo_fraction for s in with_mvo])
    else:
        min_burden, min_extent, probability, fractions = 1.0, 1.0, 0.0, tuple(0.0 for _ in QUANTILE_LEVELS)
    spearman = float(scipy_stats.spearmanr([s.burden for s in scars], [s.transmurality for s in scars]).statistic)
    copula = 2.0 * np.sin(np.pi * np.nan_to_num(spearman) / 6.0)  # Spearman -> Gaussian-copula correlation
    record_notes = {
        "claim_version": __version__,
        "involvement_threshold": INVOLVEMENT_THRESHOLD,
        "estimators": "claim.smile.realism.scar_statistics (burden = infarct incl. MVO / LV myocardium; "
        "transmurality = 90th percentile over 10-degree rays of the deepest scar pixel; fill = scarred share "
        "of the involved segments)",
        "mvo_rule": "MVO drawn with `probability` when burden >= min_burden and transmurality >= min_transmurality "
        "(10th percentiles of scars with MVO); probability = scars with MVO / eligible scars, so the overall MVO "
        "share matches the data",
        "n_with_mvo": len(with_mvo),
    } | dict(notes or {})
    return Prior(
        burden_quantiles=_quantiles([s.burden for s in scars]),
        transmurality_quantiles=_quantiles([s.transmurality for s in scars]),
        fill_quantiles=_quantiles([s.fill for s in scars]),
        burden_transmurality_copula=round(float(np.clip(copula, -0.99, 0.99)), 4),
        territory_probabilities={t: round(counts[t] / len(scars), 4) for t in territories},
        segment_involvement=involvement,
        mvo_probability=round(float(probability), 4),
        mvo_min_burden=round(min_burden, 5),
        mvo_min_transmurality=round(min_extent, 5),
        mvo_fraction_quantiles=fractions,
        dominance=Dominance(dominance),
        n_patients=len(scars),
        source=source,
        notes=record_notes,
    )


def save_prior(prior: Prior, path: Path) -> Path:
    """Write a prior as JSON (atomically)."""
    return write_json(Path(path), prior.to_json())


def load_prior(path: Path) -> Prior:
    """Read a prior JSON; errors name the file and the problem."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "prior file not found") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON prior ({exc})") from exc
    try:
        return Prior.from_json(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"not a SMILE prior ({type(exc).__name__}: {exc}); fit one with --fit-prior") from exc


@cache
def default_prior() -> Prior:
    """The prior shipped with claim (fitted on real EMIDEC scars; see its ``source`` and ``notes``)."""
    text = resources.files("claim.smile").joinpath("default_prior.json").read_text(encoding="utf-8")
    return Prior.from_json(json.loads(text))
