"""Which histogram condition to paint a canvas with: a centre chosen for the canvas's own intensity level.

The condition is a histogram of scar intensities in the crop's [-1, 1] units, and the per-patient window puts
scans at different levels: on the standard study's fold 1 the four k-means centres (darkest to brightest) came from
crops whose remote myocardium averaged -0.39, -0.28, -0.06 and +0.30 and blood pool -0.14, +0.06, +0.23 and +0.48,
while the scar's contrast to them (scar - remote over blood - remote) was alike (medians 0.9-1.4). The centres
encode how bright the scan is far more than how bright its scar is. A generator that has learnt to follow its
condition (2,000 steps do; 400 did not) then paints the darkest centre, drawn at random onto a bright scan, as scar
darker than the myocardium around it.

``matched`` draws the centre from its posterior given the canvas's remote-myocardium and blood-pool levels: each
centre's share of the training slices times a Gaussian likelihood of those levels (per-centre mean and sd, measured
on the training crops when the centres are fitted and stored in the checkpoint as ``hist_context``). Where two
centres are equally plausible for a canvas, both are drawn, so scar brightness keeps the spread real scans show.
The per-centre spread is measured per slice; ``claim generate`` and the joint run's synthetic slices read a
canvas's levels as the mean over the slices it paints (one condition per patient, as LeFusion paints), the
consistency batch on its single slice.

``mapped`` draws the centre as ``matched`` does and then moves it into the canvas's frame: the affine map of
intensities that takes the centre's training scans' (remote, blood) levels to the canvas's own. A centre records
absolute intensities, and even the most plausible one comes from scans a little brighter or darker than the canvas;
the map keeps the scar's contrast to its remote myocardium and blood pool as the centre's real scars had it. Where
either pair of levels has no positive blood - remote contrast (a canvas whose blood pool is darker than its
myocardium), the map only shifts, so the scar keeps its offset from remote myocardium.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from claim.generator.histogram import nearest_centre
from claim.labels import Label

__all__ = ["HIST_RULES", "crop_levels", "level_table", "canvas_levels", "centre_context", "choose_centre",
           "map_histogram", "draw_condition"]

HIST_RULES = ("matched", "mapped", "random")
_LEVEL_SD_FLOOR = 0.05  # generator units; keeps a centre fitted on near-identical scans from claiming no spread
# Generator units: below this blood - remote contrast the scale of the map is not measurable, and it only shifts.
_MIN_CONTRAST = 0.05
# Columns of a centre-context table.
_COUNT, _MEAN, _SD = 0, slice(1, 3), slice(3, 5)


def crop_levels(image: np.ndarray, label_map: np.ndarray) -> np.ndarray | None:
    """``(remote myocardium, blood pool)`` mean intensity of one crop (label 2 and label 1 pixels); None when the
    crop holds either no healthy myocardium or no cavity."""
    remote, blood = label_map == Label.MYOCARDIUM, label_map == Label.CAVITY
    if not remote.any() or not blood.any():
        return None
    return np.array([float(image[remote].mean()), float(image[blood].mean())])


def level_table(images: np.ndarray, label_maps: np.ndarray) -> np.ndarray:
    """``(N, 2)`` ``crop_levels`` of ``N`` crops (``(N, H, W)`` each), NaN where a crop cannot be read."""
    rows = [crop_levels(image, labels) for image, labels in zip(images, label_maps, strict=True)]
    return np.array([r if r is not None else (np.nan, np.nan) for r in rows], dtype=np.float64).reshape(-1, 2)


def canvas_levels(crops: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """The mean of ``crop_levels`` over a patient's crops (image, label map), or None when none can be read."""
    levels = [v for v in (crop_levels(image, labels) for image, labels in crops) if v is not None]
    return np.mean(levels, axis=0) if levels else None


def centre_context(hists: np.ndarray, levels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(k, 5)``: per centre, the number of training slices nearest to it and the mean and sd of their
    ``(remote, blood)`` levels (rows of ``levels`` that are NaN are left out of the levels, not of the counts).

    Args:
        hists: ``(N, bins)`` training histograms; levels: ``(N, 2)``; centres: ``(k, bins)``.
    """
    hists, levels, centres = (np.asarray(a, dtype=np.float64) for a in (hists, levels, centres))
    nearest = nearest_centre(hists, centres)
    context = np.zeros((len(centres), 5))
    overall = levels[np.isfinite(levels).all(1)]
    for j in range(len(centres)):
        members = levels[(nearest == j) & np.isfinite(levels).all(1)]
        context[j, _COUNT] = float((nearest == j).sum())
        # A centre with no readable member borrows the whole training set's levels: plausible everywhere, rarely.
        pool = members if len(members) else overall
        context[j, _MEAN] = pool.mean(0) if len(pool) else 0.0
        context[j, _SD] = np.maximum(pool.std(0) if len(pool) > 1 else 0.0, _LEVEL_SD_FLOOR)
    return context


def choose_centre(rng: np.random.Generator, n_centres: int, context: np.ndarray | None = None,
                  levels: np.ndarray | None = None) -> tuple[int, str]:
    """Index of the centre to condition on and the rule that chose it (``matched`` or ``random``).

    ``matched`` needs both the checkpoint's ``context`` and the canvas's ``levels``; without either the centre is
    drawn uniformly, as generators written before the context existed were sampled (the same draw as before).
    Exactly one draw from ``rng`` either way.
    """
    if context is None or levels is None or len(context) != n_centres:
        return int(rng.integers(n_centres)), "random"
    u = rng.random()
    context = np.asarray(context, dtype=np.float64)
    z = (np.asarray(levels, dtype=np.float64)[None] - context[:, _MEAN]) / context[:, _SD]
    log_post = np.log(np.maximum(context[:, _COUNT], 1e-12)) - 0.5 * (z**2).sum(1) - np.log(context[:, _SD]).sum(1)
    post = np.exp(log_post - log_post.max())
    cumulative = np.cumsum(post / post.sum())
    return min(int(np.searchsorted(cumulative, u, side="right")), n_centres - 1), "matched"


def map_histogram(hist: np.ndarray, source_levels: np.ndarray, target_levels: np.ndarray) -> np.ndarray:
    """``hist`` (bins over [-1, 1], as ``scar_histogram``) under the affine intensity map that takes
    ``source_levels`` ``(remote, blood)`` to ``target_levels``: each bin's mass spread evenly over its mapped
    interval, mass mapped beyond [-1, 1] kept in the edge bins (as ``scar_histogram`` clips values). Where either
    blood - remote contrast is below ``_MIN_CONTRAST`` the map is the shift of the remote level alone. The total
    mass is unchanged."""
    hist = np.asarray(hist, dtype=np.float64)
    (s_remote, s_blood), (t_remote, t_blood) = np.asarray(source_levels, float), np.asarray(target_levels, float)
    scale = 1.0
    if s_blood - s_remote >= _MIN_CONTRAST and t_blood - t_remote >= _MIN_CONTRAST:
        scale = (t_blood - t_remote) / (s_blood - s_remote)
    edges = np.linspace(-1.0, 1.0, hist.size + 1)
    # The mass below each inner bin edge, read off the mapped cumulative histogram (linear inside a bin: its mass
    # spread evenly); what falls below -1 or above 1 stays in the edge bins.
    cumulative = np.interp(edges[1:-1], t_remote + (edges - s_remote) * scale, np.concatenate([[0.0], np.cumsum(hist)]))
    out = np.diff(np.concatenate([[0.0], cumulative, [hist.sum()]]))
    return out.astype(np.float32)


def draw_condition(rng: np.random.Generator, centres: np.ndarray, context: np.ndarray | None, levels: np.ndarray | None,
                   rule: str) -> tuple[np.ndarray, int, str]:
    """The condition to paint a canvas with under ``rule`` (``HIST_RULES``): ``(histogram before the sampling
    jitter, centre index, the rule used)``. ``mapped`` and ``matched`` fall back to ``random`` (and say so) without
    the checkpoint's ``context`` or the canvas's ``levels``; the draws from ``rng`` are those of ``choose_centre``."""
    if rule not in HIST_RULES:
        raise ValueError(f"histogram rule {rule!r} must be one of {HIST_RULES}")
    usable = rule != "random" and context is not None and levels is not None
    k, used = choose_centre(rng, len(centres), context if usable else None, levels if usable else None)
    hist = np.asarray(centres[k], dtype=np.float32)
    if rule == "mapped" and used == "matched":
        return map_histogram(hist, np.asarray(context, float)[k, _MEAN], levels), k, "mapped"
    return hist, k, used
