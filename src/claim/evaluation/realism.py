"""Realism of scar, measured against real scar: what a classifier, an intensity histogram and a bull's-eye see.

Per slice with scar (``scar_samples``):
- a scar-centred crop in contrast units (remote myocardium 0, blood pool 1), for the image two-sample test;
- the scar mask in the patient's polar frame (AHA angle x transmural depth), for the mask two-sample test;
- intensity statistics relative to the same slice's remote myocardium and blood pool, and of MVO where present.
Per patient, the scar fraction of each AHA segment (``segment_fractions``), for the paper's frequency-map Dice.

Contrast units make scanners and windowing comparable: real and synthetic slices are judged on how scar relates
to the tissue around it, not on absolute grey levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import wasserstein_distance
from skimage.measure import perimeter
from skimage.morphology import convex_hull_image
from skimage.transform import resize

from claim.aha.geometry import PatientGeometry
from claim.labels import Label, infarct_mask

__all__ = ["RealismConfig", "ScarSample", "contrast_units", "scar_levels", "scar_samples", "segment_fractions",
           "soft_dice", "STATISTICS", "SHAPE_STATISTICS", "shape_statistics", "wasserstein_table", "split_half_floor"]

# Per-slice statistics (contrast units: (value - remote median) / (blood median - remote median)).
STATISTICS = {
    "scar_contrast": "median scar intensity, contrast units",
    "scar_to_remote_ratio": "median scar / median remote myocardium (signal-intensity ratio)",
    "scar_texture_sd": "sd of scar intensities, contrast units",
    "scar_border_step": "median scar minus median of the myocardium ring just outside it, contrast units",
    "mvo_contrast": "median MVO intensity, contrast units (slices with MVO)",
    "mvo_to_scar_ratio": "median MVO / median scar around it (slices with MVO; real MVO is a dark core)",
}
# Per-slice shape of the scar mask alone (what a mask source is judged on, with the mask two-sample test).
SHAPE_STATISTICS = {
    "scar_solidity": "scar pixels / pixels of their convex hull",
    "scar_border_roughness": "scar perimeter / perimeter of the scar smoothed with a 1.5 px Gaussian (1 = smooth)",
    "scar_lateral_taper": "mean transmural extent over the outer quarters of the scar's arc / over its central half "
                          "(1 = flat to the edges, < 1 = the ends taper)",
    "scar_components": "connected scar pieces of at least 3 pixels (patchiness)",
}
_SMOOTH_SIGMA_PX = 1.5


@dataclass(frozen=True)
class RealismConfig:
    """crop_px: side of the scar-centred crop in source pixels; input_px: side the classifier sees;
    polar_bins: (depth, angle) bins of the polar mask map; remote_gap_px: remote myocardium lies this far from
    any scar; min_scar_px: smaller scars are skipped (no statistics on a handful of pixels)."""

    crop_px: int = 48
    input_px: int = 32
    polar_bins: tuple[int, int] = (8, 48)
    remote_gap_px: float = 5.0
    min_scar_px: int = 10


@dataclass
class ScarSample:
    """One slice with scar: its group (patient or canvas), crop, polar mask map and statistics; ``view`` and
    ``view_mask`` are the crop at source resolution and its scar mask (for galleries)."""

    group: str
    slice_index: int
    crop: np.ndarray
    polar: np.ndarray
    stats: dict[str, float]
    view: np.ndarray | None = None
    view_mask: np.ndarray | None = None


def _crop(image: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    r0, c0 = int(round(centre[0] - size / 2)), int(round(centre[1] - size / 2))
    padded = np.pad(image, size, mode="edge")
    return padded[r0 + size:r0 + 2 * size, c0 + size:c0 + 2 * size]


def _polar_map(scar: np.ndarray, myo: np.ndarray, angle: np.ndarray, depth: np.ndarray,
               bins: tuple[int, int]) -> np.ndarray:
    """Scar share of the myocardium in each (depth, angle) bin; 0 where a bin holds no myocardium."""
    d = np.clip((depth[myo] * bins[0]).astype(int), 0, bins[0] - 1)
    a = np.clip((angle[myo] / 360.0 * bins[1]).astype(int), 0, bins[1] - 1)
    total = np.zeros(bins)
    scarred = np.zeros(bins)
    np.add.at(total, (d, a), 1)
    np.add.at(scarred, (d, a), scar[myo])
    return np.divide(scarred, total, out=np.zeros(bins), where=total > 0).astype(np.float32)


def _lateral_taper(polar: np.ndarray) -> float:
    """Outer-quarter over central-half mean transmural extent along the scar's arc in a polar map."""
    extent = polar.mean(axis=0)
    if not (extent > 0).any() or (extent > 0).all():
        return float("nan")  # no scar, or a ring with no ends
    # Roll the longest run of empty angle bins to the end, so the scar's arc is contiguous from the start.
    empty = np.concatenate([extent == 0, extent == 0])
    runs, best, start = 0, (0, 0), 0
    for i, flag in enumerate(empty):
        runs = runs + 1 if flag else 0
        if runs > best[0]:
            best, start = (runs, i), i
    rolled = np.roll(extent, -((start + 1) % extent.size))
    arc = rolled[: int(np.flatnonzero(rolled > 0).max()) + 1]
    if arc.size < 4:
        return float("nan")
    quarter = max(arc.size // 4, 1)
    centre = arc[quarter: arc.size - quarter]
    ends = np.concatenate([arc[:quarter], arc[-quarter:]])
    return float(ends.mean() / centre.mean()) if centre.mean() > 0 else float("nan")


def shape_statistics(scar: np.ndarray, polar: np.ndarray) -> dict[str, float]:
    """``SHAPE_STATISTICS`` of one slice's scar mask and its polar map (``_polar_map``)."""
    hull = convex_hull_image(scar)
    smooth_perimeter = float(perimeter(ndimage.gaussian_filter(scar.astype(float), _SMOOTH_SIGMA_PX) > 0.5))
    pieces, n = ndimage.label(scar, structure=np.ones((3, 3)))
    sizes = np.bincount(pieces.ravel())[1:] if n else np.zeros(0)
    return {
        "scar_solidity": float(scar.sum() / max(hull.sum(), 1)),
        "scar_border_roughness": float(perimeter(scar) / smooth_perimeter) if smooth_perimeter > 0 else float("nan"),
        "scar_lateral_taper": _lateral_taper(polar),
        "scar_components": float((sizes >= 3).sum()),
    }


def contrast_units(image: np.ndarray, labels: np.ndarray,
                   config: RealismConfig = RealismConfig()) -> tuple[np.ndarray, float] | None:
    """One slice in contrast units (remote myocardium 0, blood pool 1) and its remote median intensity; None when
    the slice has too little remote myocardium or blood, or no contrast between them to measure in."""
    image = np.asarray(image, np.float64)
    scar = infarct_mask(labels)
    remote = (labels == Label.MYOCARDIUM) & (ndimage.distance_transform_edt(~scar) > config.remote_gap_px)
    blood = ndimage.binary_erosion(labels == Label.CAVITY, iterations=1)
    if remote.sum() < 10 or blood.sum() < 10:
        return None
    r, b = float(np.median(image[remote])), float(np.median(image[blood]))
    if b - r <= 1e-6 * max(abs(b), 1.0):
        return None
    return (image - r) / (b - r), r


def scar_levels(unit: np.ndarray, labels: np.ndarray, config: RealismConfig = RealismConfig()) -> dict[str, float]:
    """How bright a slice's scar and MVO are in contrast units (``unit`` from ``contrast_units``): ``scar_contrast``,
    the median over the infarct with its MVO, where it has at least ``min_scar_px`` pixels; ``mvo_contrast``, the
    median over the MVO, where the MVO and the scar around it have at least 3 pixels each. Only the keys measured."""
    levels = {}
    scar = infarct_mask(labels)
    if scar.sum() >= config.min_scar_px:
        levels["scar_contrast"] = float(np.median(unit[scar]))
    mvo, core = labels == Label.MVO, labels == Label.INFARCT
    if mvo.sum() >= 3 and core.sum() >= 3:
        levels["mvo_contrast"] = float(np.median(unit[mvo]))
    return levels


def scar_samples(images: np.ndarray, label_maps: np.ndarray, geometry: PatientGeometry, group: str,
                 config: RealismConfig = RealismConfig()) -> list[ScarSample]:
    """Every slice of a patient with at least ``min_scar_px`` scar pixels, a remote myocardium and a blood pool."""
    samples = []
    for s in range(len(label_maps)):
        labels, image = label_maps[s], np.asarray(images[s], np.float64)
        scar = infarct_mask(labels)
        if scar.sum() < config.min_scar_px:
            continue
        measured = contrast_units(image, labels, config)
        if measured is None:
            continue
        unit, r = measured
        healthy = labels == Label.MYOCARDIUM
        ring = healthy & ndimage.binary_dilation(scar, iterations=3)
        stats = scar_levels(unit, labels, config) | {
            "scar_to_remote_ratio": float(np.median(image[scar]) / r) if r > 0 else float("nan"),
            "scar_texture_sd": float(unit[scar].std()),
            "scar_border_step": float(np.median(unit[scar]) - np.median(unit[ring])) if ring.any() else float("nan"),
        }
        mvo, core = labels == Label.MVO, labels == Label.INFARCT
        if "mvo_contrast" in stats:
            scar_median = float(np.median(image[core]))
            stats["mvo_to_scar_ratio"] = float(np.median(image[mvo]) / scar_median) if scar_median > 0 else float(
                "nan")
        centre = ndimage.center_of_mass(scar)
        view = np.clip(_crop(unit, centre, config.crop_px), -1.0, 3.0).astype(np.float32)
        crop = resize(view, (config.input_px, config.input_px), order=1, anti_aliasing=True).astype(np.float32)
        myo = ~np.isnan(geometry.depth[s]) & ~np.isnan(geometry.angle_deg[s])
        polar = _polar_map(scar, myo, geometry.angle_deg[s], geometry.depth[s], config.polar_bins)
        stats |= shape_statistics(scar, polar)
        samples.append(ScarSample(group, s, crop, polar, stats, view, _crop(scar, centre, config.crop_px)))
    return samples


def segment_fractions(label_maps: np.ndarray, geometry: PatientGeometry) -> np.ndarray:
    """Scar share of each AHA segment's myocardium (17 values; NaN for a segment the stack does not hold)."""
    seg = geometry.segment_maps
    myo = np.bincount(seg.ravel(), minlength=18)[1:18].astype(float)
    scar = np.bincount(seg[infarct_mask(label_maps) & (seg > 0)], minlength=18)[1:18].astype(float)
    return np.divide(scar, myo, out=np.full(17, np.nan), where=myo > 0)


def soft_dice(first: np.ndarray, second: np.ndarray) -> float:
    """2 sum(ab) / (sum a^2 + sum b^2) of two non-negative maps (segments missing in either are left out)."""
    a, b = np.asarray(first, float), np.asarray(second, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    denominator = float((a * a).sum() + (b * b).sum())
    return 2.0 * float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def _values(samples: Sequence[ScarSample], key: str) -> np.ndarray:
    values = np.array([s.stats.get(key, np.nan) for s in samples], float)
    return values[np.isfinite(values)]


def wasserstein_table(real: Sequence[ScarSample], other: Sequence[ScarSample],
                      keys: Sequence[str] = tuple(STATISTICS)) -> dict[str, dict]:
    """Per statistic in ``keys``: 1-D Wasserstein distance between ``other``'s and ``real``'s slice values, both
    medians and the sample sizes (NaN distance when either side has no value)."""
    table = {}
    for key in keys:
        a, b = _values(real, key), _values(other, key)
        table[key] = {"wasserstein": float(wasserstein_distance(a, b)) if a.size and b.size else float("nan"),
                      "real_median": float(np.median(a)) if a.size else float("nan"),
                      "median": float(np.median(b)) if b.size else float("nan"),
                      "n_real": int(a.size), "n": int(b.size)}
    return table


def split_half_floor(real: Sequence[ScarSample], repeats: int = 20, seed: int = 0,
                     keys: Sequence[str] = tuple(STATISTICS)) -> dict[str, dict]:
    """The distance two halves of the real patients (split by group) lie apart: what no synthetic set can beat.
    Mean and sd over ``repeats`` random halvings, per statistic in ``keys``."""
    groups = sorted({s.group for s in real})
    rng = np.random.default_rng([seed, 5])
    draws: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(repeats):
        half = set(rng.permutation(groups)[: len(groups) // 2])
        first = [s for s in real if s.group in half]
        second = [s for s in real if s.group not in half]
        for key, entry in wasserstein_table(first, second, keys).items():
            draws[key].append(entry["wasserstein"])
    return {key: {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
                  "sd": float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")}
            for key, v in ((k, np.asarray(vals, float)) for k, vals in draws.items())}
