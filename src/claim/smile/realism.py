"""Scar statistics shared by the prior fit, the realism benchmark and the tests.

The same estimators describe real scars (from label maps) and generated ones, so fitted priors and comparisons
are like for like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from claim.aha.segments import Territory
from claim.labels import Label, infarct_mask
from claim.smile.adjacency import Dominance, territory_segments
from claim.smile.canvas import ANGLE_BIN_DEG, N_ANGLES, ScarCanvas

__all__ = [
    "INVOLVEMENT_THRESHOLD",
    "ScarStats",
    "scar_statistics",
    "label_map_statistics",
    "involvement_frequency",
    "mean_segment_fraction",
    "compare_statistics",
]

INVOLVEMENT_THRESHOLD = 0.10  # a segment is involved when scar covers at least this share of its myocardium
_RAY_DEG = 10.0  # angular width of the rays along which the transmural extent is measured
_EXTENT_PERCENTILE = 90.0  # peak transmurality = this percentile of the per-ray extents (robust to one ray)


@dataclass(frozen=True)
class ScarStats:
    """Summary of one scar on one patient.

    Attributes:
        patient_id: the patient.
        burden: infarct (incl. MVO) share of the LV myocardium.
        segment_fraction: per segment 1-17, the scarred share of its myocardium (NaN when absent from the stack).
        involved: segments with at least ``INVOLVEMENT_THRESHOLD`` of their myocardium scarred.
        territory: the territory holding most scar pixels (None without scar).
        transmurality: peak transmural extent (90th percentile over 10-degree rays of the deepest scar pixel).
        subendocardial_fraction: share of scar pixels at transmural depth < 0.5 (NaN without scar).
        mvo: whether there is MVO.
        mvo_fraction: MVO share of the infarct.
        fill: scarred share of the involved segments' myocardium (NaN when none is involved).
    """

    patient_id: str
    burden: float
    segment_fraction: tuple[float, ...]
    involved: tuple[int, ...]
    territory: Territory | None
    transmurality: float
    subendocardial_fraction: float
    mvo: bool
    mvo_fraction: float
    fill: float

    def to_json(self) -> dict:
        return {
            "patient_id": self.patient_id,
            "burden": self.burden,
            "segment_fraction": [None if np.isnan(v) else v for v in self.segment_fraction],
            "involved": list(self.involved),
            "territory": self.territory.value if self.territory else None,
            "transmurality": self.transmurality,
            "subendocardial_fraction": None if np.isnan(self.subendocardial_fraction) else self.subendocardial_fraction,
            "mvo": self.mvo,
            "mvo_fraction": self.mvo_fraction,
            "fill": None if np.isnan(self.fill) else self.fill,
        }


def scar_statistics(
    canvas: ScarCanvas, scar: np.ndarray, mvo: np.ndarray, dominance: Dominance = Dominance.RIGHT
) -> ScarStats:
    """Statistics of a scar given as boolean arrays over the canvas pixels (``mvo`` within ``scar``)."""
    n_scar = int(scar.sum())
    myo_per_segment = canvas.segment_pixels.astype(float)
    scar_per_segment = np.bincount(canvas.segment[scar], minlength=18).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(myo_per_segment > 0, scar_per_segment / myo_per_segment, np.nan)[1:]
    involved = tuple(int(s) for s in np.flatnonzero(np.nan_to_num(fraction) >= INVOLVEMENT_THRESHOLD) + 1)
    territory = None
    if n_scar:
        per_territory = {t: scar_per_segment[list(territory_segments(t, dominance))].sum() for t in Territory}
        territory = max(per_territory, key=per_territory.get)
    depth = canvas.depth[scar]
    transmurality = 0.0
    if n_scar:
        rays_per_slice = int(round(360.0 / _RAY_DEG))
        angle_bin = canvas.grid_index[scar] % N_ANGLES
        ray = canvas.slice_index[scar] * rays_per_slice + (angle_bin * ANGLE_BIN_DEG // _RAY_DEG).astype(np.int64)
        extent = np.zeros(canvas.n_slices * rays_per_slice)
        np.maximum.at(extent, ray, depth)
        transmurality = float(np.percentile(extent[np.unique(ray)], _EXTENT_PERCENTILE))
    involved_mass = myo_per_segment[list(involved)].sum() if involved else 0.0
    return ScarStats(
        patient_id=canvas.patient_id,
        burden=n_scar / max(canvas.n_pixels, 1),
        segment_fraction=tuple(float(v) for v in fraction),
        involved=involved,
        territory=territory,
        transmurality=transmurality,
        subendocardial_fraction=float((depth < 0.5).mean()) if n_scar else float("nan"),
        mvo=bool(mvo.any()),
        mvo_fraction=float(mvo.sum() / n_scar) if n_scar else 0.0,
        fill=float(scar_per_segment[list(involved)].sum() / involved_mass) if involved_mass else float("nan"),
    )


def label_map_statistics(
    canvas: ScarCanvas, label_maps: np.ndarray, dominance: Dominance = Dominance.RIGHT
) -> ScarStats:
    """Statistics of the scar (labels 3, 4) in label maps on the canvas' grid (real or generated)."""
    values = label_maps.reshape(-1)[canvas.flat_index]
    return scar_statistics(canvas, infarct_mask(values), values == Label.MVO, dominance)


def involvement_frequency(stats: Sequence[ScarStats]) -> np.ndarray:
    """``(17,)`` share of scars involving each segment (the bull's-eye of involvement)."""
    counts = np.zeros(17)
    for record in stats:
        counts[[s - 1 for s in record.involved]] += 1
    return counts / max(len(stats), 1)


def mean_segment_fraction(stats: Sequence[ScarStats]) -> np.ndarray:
    """``(17,)`` mean scarred share of each segment over scars (segments absent from a stack skipped)."""
    table = np.array([record.segment_fraction for record in stats], dtype=float).reshape(-1, 17)
    with np.errstate(invalid="ignore"):
        return np.array([np.nanmean(col) if np.isfinite(col).any() else np.nan for col in table.T])


def compare_statistics(real: Sequence[ScarStats], generated: Sequence[ScarStats]) -> dict:
    """Distances between real and generated scars (smaller = closer to real).

    Returns:
        ``involvement_distance``: mean absolute difference of the involvement bull's-eyes;
        ``segment_fraction_distance``: the same for the mean scarred share per segment;
        ``burden_ks``: two-sample Kolmogorov-Smirnov statistic of burdens;
        ``subendocardial_fraction``: mean share of scar pixels at depth < 0.5 (real, generated, |difference|);
        ``mvo_frequency``: share of scars with MVO (real, generated, |difference|).
    """
    involvement_real, involvement_gen = involvement_frequency(real), involvement_frequency(generated)
    fraction_real, fraction_gen = mean_segment_fraction(real), mean_segment_fraction(generated)
    both = np.isfinite(fraction_real) & np.isfinite(fraction_gen)
    subendo_real = float(np.nanmean([r.subendocardial_fraction for r in real]))
    subendo_gen = float(np.nanmean([g.subendocardial_fraction for g in generated]))
    mvo_real = float(np.mean([r.mvo for r in real]))
    mvo_gen = float(np.mean([g.mvo for g in generated]))
    return {
        "n_real": len(real),
        "n_generated": len(generated),
        "involvement_real": involvement_real.tolist(),
        "involvement_generated": involvement_gen.tolist(),
        "involvement_distance": float(np.abs(involvement_real - involvement_gen).mean()),
        "segment_fraction_distance": float(np.abs(fraction_real[both] - fraction_gen[both]).mean()),
        "burden_ks": float(scipy_stats.ks_2samp([r.burden for r in real], [g.burden for g in generated]).statistic),
        "burden_median": {
            "real": float(np.median([r.burden for r in real])),
            "generated": float(np.median([g.burden for g in generated])),
        },
        "subendocardial_fraction": {
            "real": subendo_real,
            "generated": subendo_gen,
            "difference": abs(subendo_real - subendo_gen),
        },
        "mvo_frequency": {"real": mvo_real, "generated": mvo_gen, "difference": abs(mvo_real - mvo_gen)},
    }
