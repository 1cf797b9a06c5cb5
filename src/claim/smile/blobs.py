"""The original SMILE's random porous blobs, re-implemented for comparison (``--pattern blobs``).

This reproduces the behaviour of the original ``5_generate_masks.py`` (``original-code.md`` section 2.5) with
numpy/scipy instead of porespy/OpenCV, on the patient's own AHA segments instead of a registered template:

* segments: random basal segments grown into random adjacent mid and apical segments (the original's selection
  algorithm, on our geometric adjacency, which equals its hand tables; segment 17 never chosen);
* per segment a random "volume" V ~ U(3, 12) used as a porosity multiplier (porosity = 0.21 V, so about 80 % of
  the chosen segments fill completely);
* one porous field per mask: uniform noise, Gaussian-smoothed (sigma 2.8 voxels), mapped to [0, 1] through the
  Gaussian CDF, True where below the porosity; eroded in-plane with a random square kernel (1, 3, 5 or 7 px);
* scar = myocardium AND segment AND blob; fill holes, Gaussian sigma 1, threshold 0.3, keep the largest
  6-connected component, then clip to the myocardium (as the original's subject-space step 5.1 did).

No transmurality, no MVO, no burden control. Departures, all for safety: an empty union stays empty (the original
turned the whole background into scar), and the random generator is the mask's own (the original reseeded numpy's
global RNG so that every subject after the first got the same segments).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special

from claim.aha.segments import Level, segment_ids
from claim.smile.adjacency import segment_adjacency
from claim.smile.canvas import ScarCanvas
from claim.smile.spec import ScarSpec

__all__ = ["sample_blob_segments", "render_blobs", "BLOB_VOLUME_RANGE"]

BLOB_VOLUME_RANGE = (3.0, 12.0)  # V ~ U(3, 12) for normal subjects (max_scar_vol=12.0 at the original's HEAD)
_POROSITY_PER_VOLUME = 0.21
# The original's blob sigma was 2.8 voxels of a 1.25 x 1.25 x 2 mm template; our slices are ~10 mm apart, so the
# sigma across slices shrinks by 2/10 (in-plane pixels of LGE short-axis stacks are ~1.25-1.5 mm).
_BLOB_SIGMA = (0.56, 2.8, 2.8)
_POST_SIGMA = (0.2, 1.0, 1.0)
_POST_THRESHOLD = 0.3
_MARGIN_PX = 10  # crop margin around the myocardium: the filters never reach further


def _pick(rng: np.random.Generator, options: list[int], k: int) -> list[int]:
    return [int(v) for v in rng.choice(sorted(options), size=min(k, len(options)), replace=False)]


def sample_blob_segments(rng: np.random.Generator) -> tuple[int, ...]:
    """The original ``select_aha_regions()``: basal seeds, one mid and one apical segment plus neighbours."""
    adjacency = {s: sorted(n - {17}) for s, n in segment_adjacency().items()}
    basal, apical = segment_ids(Level.BASAL), set(segment_ids(Level.APICAL))
    seeds = _pick(rng, list(basal), int(rng.integers(1, 7)))
    selected = set(seeds)
    for b in seeds:  # each basal seed adds 1 or 2 of its neighbours (same ring, or the mid segment below)
        selected |= set(_pick(rng, adjacency[b], int(rng.integers(1, 3))))
    mid_candidates = sorted({b + 6 for b in selected if b <= 6})
    m1 = int(rng.choice(mid_candidates))
    selected.add(m1)
    selected |= set(_pick(rng, adjacency[m1], int(rng.integers(1, len(adjacency[m1])))))
    # Apical candidates: apical neighbours of every selected mid segment (a basal one counts as the mid below).
    apical_candidates = sorted({a for s in selected if s <= 12 for a in adjacency[s if s > 6 else s + 6]} & apical)
    a1 = int(rng.choice(apical_candidates))
    selected.add(a1)
    selected |= set(_pick(rng, adjacency[a1], int(rng.integers(1, len(adjacency[a1])))))
    return tuple(sorted(selected))


def render_blobs(spec: ScarSpec, canvas: ScarCanvas) -> np.ndarray:
    """Blob scar of ``spec`` on the canvas; returns sorted indices into the canvas pixels."""
    rng = np.random.default_rng(spec.field_seed)
    volumes = rng.uniform(*BLOB_VOLUME_RANGE, size=17)
    kernel = 2 * int(rng.integers(0, 4)) + 1
    segment_maps = canvas.geometry.segment_maps
    myo = segment_maps > 0
    _, rows, cols = np.nonzero(myo)
    box = (
        slice(None),
        slice(max(int(rows.min()) - _MARGIN_PX, 0), int(rows.max()) + _MARGIN_PX + 1),
        slice(max(int(cols.min()) - _MARGIN_PX, 0), int(cols.max()) + _MARGIN_PX + 1),
    )
    segments_crop, myo_crop = segment_maps[box], myo[box]
    noise = ndimage.gaussian_filter(rng.random(segments_crop.shape), sigma=_BLOB_SIGMA)
    # porespy's normalisation: standardise, then the Gaussian CDF makes the field uniform on [0, 1].
    uniform = special.ndtr((noise - noise.mean()) / max(float(noise.std()), 1e-12))
    scar = np.zeros(segments_crop.shape, dtype=bool)
    structure = np.ones((1, kernel, kernel), dtype=bool)
    for segment in spec.segments:
        blob = uniform < _POROSITY_PER_VOLUME * volumes[segment - 1]
        if kernel > 1:  # OpenCV erodes with an infinite border: pixels at the crop edge are not eroded
            blob = ndimage.binary_erosion(blob, structure=structure, border_value=1)
        scar |= myo_crop & (segments_crop == segment) & blob
    if scar.any():
        scar = ndimage.binary_fill_holes(scar)
        scar = ndimage.gaussian_filter(scar.astype(np.float32), sigma=_POST_SIGMA) > _POST_THRESHOLD
        labels, n = ndimage.label(scar)  # default structure: 6-connectivity in 3-D
        if n > 1:
            sizes = np.bincount(labels.ravel())[1:]
            scar = labels == int(np.argmax(sizes)) + 1
        scar &= myo_crop
    full = np.zeros(segment_maps.shape, dtype=bool)
    full[box] = scar
    return np.flatnonzero(full.reshape(-1)[canvas.flat_index])
