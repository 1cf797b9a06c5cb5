"""Deterministic rendering: ``render_scar(spec, canvas)`` draws the scar (and MVO) a ``ScarSpec`` describes.

Every clinical pattern is one rule on two per-pixel numbers:

* ``m``: a smooth lateral field on the (slice, angle) grid, high in the centre of the scar's segments, with noisy
  borders (``fields.py``);
* ``x``: the pixel's transmural distance from the pattern's origin layer in units of the transmurality ``T``:
  ``depth / T`` (ischemic: the endocardium first), ``(1 - depth) / T`` (subepicardial) or
  ``2 |depth - c| / T`` (mid-wall and patchy bands around the centre depth ``c``).

With a lateral threshold ``lam``, the local extent is ``T * taper(q)`` with ``q = clip((m - lam) / ramp, 0, 1)``:
nothing outside the border ``m = lam``, rising over a ramp of width ``ramp`` (in units of ``m``) to the full
extent ``T`` in the core, the ischemic wavefront. A pixel is scar when ``x <= taper(q)``, which holds exactly for
``lam <= m - ramp * taper^-1(x)``. Lowering ``lam`` grows the scar monotonically, so a burden of ``N`` pixels is
met exactly by keeping the ``N`` pixels with the largest critical ``lam`` (no bisection needed).

Real scars are less tidy than that rule (``benchmarks/mask_shape.py``: SMILE masks were more solid, with smoother
borders, than held-out real EMIDEC scars). So ``x`` is divided by a smooth reach in ``[1 - EXTENT_VARIATION, 1]``
along the arc (the scar reaches its transmurality over part of its arc only) and perturbed by pixel-scale noise
(ragged borders through the wall and along it). Neither may break a control: pixels beyond the unperturbed extent
stay out (transmurality), and pixels the perturbation pushed beyond ``x = 1`` are used last, only when the burden
needs them (burden).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.aha.geometry import PatientGeometry
from claim.smile.blobs import render_blobs
from claim.smile.canvas import ScarCanvas, apply_scar
from claim.smile.fields import foci_field, lateral_field, smooth_noise
from claim.smile.spec import Pattern, ScarSpec

__all__ = ["ScarResult", "render_scar", "TAPER", "MVO_DEPTH_SHARE", "RAMP_RANGE"]

TAPER = 2.0  # taper(q) = 1 - (1 - q)**TAPER: the extent rises quickly from the border, flat in the core
MVO_DEPTH_SHARE = 0.6  # the MVO core stays within this share of the scar's extent, on the endocardial side
RAMP_RANGE = (0.15, 0.5)  # width of the border zone (units of the lateral field) over which the extent tapers
# Real scar borders are ragged at the scale of a pixel or two, in both directions (along the wall and through it):
# the transmural distance of every pixel is perturbed by smooth pixel-scale noise of this amplitude (units of x).
PIXEL_NOISE = 0.3
EXTENT_VARIATION = 0.6  # the local transmural reach varies smoothly along the arc between 1 - this and 1
PIXEL_NOISE_SIGMA_PX = 2.0
_TIE_BREAK = 1e-9  # units of the lateral field


@dataclass(frozen=True, eq=False)
class ScarResult:
    """A rendered mask on a canvas.

    Attributes:
        spec: what was rendered.
        canvas: where (the patient's myocardium).
        scar_pixels: sorted indices into the canvas pixels of the infarct (labels 3 and 4).
        mvo_pixels: sorted indices of the MVO core (label 4), a subset of ``scar_pixels``.
    """

    spec: ScarSpec
    canvas: ScarCanvas
    scar_pixels: np.ndarray
    mvo_pixels: np.ndarray

    @property
    def achieved_burden(self) -> float:
        """Infarct (scar + MVO) as a fraction of the LV myocardium."""
        return float(self.scar_pixels.size / max(self.canvas.n_pixels, 1))

    def _mask(self, pixels: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.canvas.shape, dtype=bool)
        mask.reshape(-1)[self.canvas.flat_index[pixels]] = True
        return mask

    def scar_mask(self) -> np.ndarray:
        """``(S, H, W)`` infarct mask (scar and MVO)."""
        return self._mask(self.scar_pixels)

    def mvo_mask(self) -> np.ndarray:
        """``(S, H, W)`` MVO mask."""
        return self._mask(self.mvo_pixels)

    def label_maps(self, source_label_maps: np.ndarray) -> np.ndarray:
        """The source label maps with the myocardium relabelled: 2, scar 3, MVO 4 (outside untouched)."""
        return apply_scar(source_label_maps, self.canvas, self.scar_pixels, self.mvo_pixels)


def _critical_threshold(m: np.ndarray, x: np.ndarray, ramp: float, reachable: np.ndarray | None = None) -> np.ndarray:
    """Largest lateral threshold ``lam`` at which each pixel is scar (-inf: never, its ``x`` exceeds 1).

    ``reachable``: with a perturbed ``x``, the pixels the unperturbed one allows (the transmurality control stays
    hard). Those the perturbation pushes beyond ``x = 1`` still become scar when the burden needs them, after every
    other pixel (their scores lie below all others, the nearest to ``x = 1`` first): shape without a burden unmet.
    """
    need = 1.0 - (1.0 - np.clip(x, 0.0, 1.0)) ** (1.0 / TAPER)  # the q a pixel needs: taper(q) >= x
    score = np.where(x <= 1.0, m - ramp * need, -np.inf)
    if reachable is not None:
        score[~reachable] = -np.inf
        inside = np.isfinite(score)
        floor = float(score[inside].min()) if inside.any() else 0.0
        late = reachable & ~inside
        # Below every other pixel even after _lift_slice_gaps raises a slice (by at most the scores' range).
        top = float(score[inside].max()) if inside.any() else floor
        score[late] = floor - 1.0 - (top - floor) - (x[late] - 1.0)
    return score


def _lift_slice_gaps(score: np.ndarray, slices: np.ndarray, n_slices: int) -> np.ndarray:
    """Raise whole slices so that the slices a scar occupies always form one run, at every burden.

    A slice joins the scar when the threshold falls below its best score. Lifting each slice's scores to the
    unimodal envelope of the per-slice best scores (rising to the peak slice, then falling) means no slice can
    be spared between two scarred ones: an infarct is continuous along the long axis.
    """
    finite = np.isfinite(score)
    best = np.full(n_slices, -np.inf)
    np.maximum.at(best, slices[finite], score[finite])
    present = np.flatnonzero(np.isfinite(best))
    if present.size < 3:
        return score
    values = best[present]
    peak = int(np.argmax(values))
    envelope = values.copy()
    envelope[: peak + 1] = np.maximum.accumulate(values[: peak + 1])
    envelope[peak:] = np.maximum.accumulate(values[peak:][::-1])[::-1]
    # A lifted slice's best score ties with the best of the slice beyond it, and the burden's last pixel could land
    # on the outer one and skip the lifted one. A bonus that shrinks away from the peak (far below any score
    # difference that matters) breaks every such tie towards the peak.
    distance = np.abs(np.arange(present.size) - peak)
    lift = np.zeros(n_slices)
    lift[present] = envelope - values + _TIE_BREAK * (present.size - distance)
    return score + lift[slices]


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Sorted positions of the ``n`` largest finite scores (all finite ones if fewer)."""
    finite = np.flatnonzero(np.isfinite(score))
    if n <= 0 or finite.size == 0:
        return np.zeros(0, dtype=np.int64)
    if n >= finite.size:
        return finite
    chosen = np.argpartition(-score[finite], n - 1)[:n]
    return np.sort(finite[chosen])


def _reach_endocardium(picked: np.ndarray, score: np.ndarray, endocardial: np.ndarray,
                       slices: np.ndarray) -> np.ndarray:
    """An ischemic scar grows from the endocardium on every slice it occupies. The pixel noise can leave a slice's
    last few pixels (where the burden runs out) just off it, about one mask in a thousand on EMIDEC: there, the
    slice's weakest scar pixel gives way to its strongest endocardial candidate. Burden, segments, transmurality and
    slice run are unchanged."""
    chosen = np.zeros(score.size, dtype=bool)
    chosen[picked] = True
    for s in np.unique(slices[picked]):
        on_slice = slices == s
        if (chosen & on_slice & endocardial).any():
            continue
        candidates = np.flatnonzero(on_slice & endocardial & ~chosen & np.isfinite(score))
        if candidates.size == 0:
            continue
        mine = np.flatnonzero(chosen & on_slice)
        chosen[mine[np.argmin(score[mine])]] = False
        chosen[candidates[np.argmax(score[candidates])]] = True
    return np.flatnonzero(chosen)


def _transmural_distance(pattern: Pattern, depth: np.ndarray, centre: np.ndarray | None, extent: float) -> np.ndarray:
    if pattern == Pattern.ISCHEMIC:
        return depth / extent
    if pattern == Pattern.SUBEPICARDIAL:
        return (1.0 - depth) / extent
    return 2.0 * np.abs(depth - centre) / extent  # mid-wall and patchy bands


def _pixel_noise(seed: int, canvas: ScarCanvas, pixels: np.ndarray) -> np.ndarray:
    """Unit-sd noise correlated over ~``PIXEL_NOISE_SIGMA_PX`` in-plane, at the given canvas pixels.

    Its own generator (from the spec's field seed): the draws of the fields and the ramp stay as they were.
    """
    rng = np.random.default_rng([seed, 97])
    volume = rng.standard_normal(canvas.shape)
    smooth = ndimage.gaussian_filter(volume, sigma=(0.0, PIXEL_NOISE_SIGMA_PX, PIXEL_NOISE_SIGMA_PX))
    values = smooth.reshape(-1)[canvas.flat_index[pixels]]
    sd = float(values.std())
    return values / sd if sd > 0 else values


def render_scar(spec: ScarSpec, canvas: ScarCanvas | PatientGeometry) -> ScarResult:
    """Draw the mask ``spec`` describes on a patient's myocardium; pure (same spec, same pixels).

    Args:
        spec: a sampled (or hand-written) spec.
        canvas: the patient's ``ScarCanvas`` (or its ``PatientGeometry``, converted on the fly).

    Returns:
        The scar and MVO pixels; the scar never leaves ``spec.segments`` and the MVO never leaves the scar.
    """
    if isinstance(canvas, PatientGeometry):
        canvas = ScarCanvas.from_geometry(canvas)
    if spec.pattern == Pattern.BLOBS:
        scar = render_blobs(spec, canvas)  # the baseline lives apart from the clinical patterns
        return ScarResult(spec, canvas, scar, np.zeros(0, dtype=np.int64))
    if spec.target_burden is None or spec.transmurality is None:
        raise ValueError(f"{spec.pattern.value} spec needs target_burden and transmurality")
    rng = np.random.default_rng(spec.field_seed)
    allowed = np.flatnonzero(canvas.segment_lookup(spec.segments)[canvas.segment])
    centre_grid = None
    if spec.pattern == Pattern.PATCHY:
        field, centre_grid = foci_field(rng, canvas, spec.segments)
    else:
        field = lateral_field(rng, canvas, spec.segments)
        if spec.pattern == Pattern.MIDWALL:
            # The stripe wanders a little around mid-wall, staying clear of both borders.
            centre_grid = np.clip(0.5 + 0.05 * smooth_noise(rng, canvas.n_slices, 3, 2), 0.38, 0.62)
    cells = canvas.grid_index[allowed]
    m = field.reshape(-1)[cells]
    depth = canvas.depth[allowed]
    centre = centre_grid.reshape(-1)[cells] if centre_grid is not None else None
    x = _transmural_distance(spec.pattern, depth, centre, spec.transmurality)
    reachable = x <= 1.0  # the unperturbed extent: what the burden may always draw on
    local_reach = np.ones_like(x)
    if EXTENT_VARIATION > 0:
        # Real scars reach their peak transmurality over part of their arc only: thinner elsewhere.
        reach = np.clip(1.0 - EXTENT_VARIATION * (0.5 + 0.5 * np.tanh(
            smooth_noise(np.random.default_rng([spec.field_seed, 98]), canvas.n_slices))), 0.2, 1.0)
        local_reach = reach.reshape(-1)[cells]
        x = x / local_reach
    if PIXEL_NOISE > 0:
        x = x + PIXEL_NOISE * _pixel_noise(spec.field_seed, canvas, allowed)
    ramp = float(rng.uniform(*RAMP_RANGE))
    n_target = int(round(spec.target_burden * canvas.n_pixels))
    score = _critical_threshold(m, x, ramp, reachable)
    if spec.pattern != Pattern.PATCHY:  # foci may skip slices; bands and infarcts may not
        score = _lift_slice_gaps(score, canvas.slice_index[allowed], canvas.n_slices)
    picked = _top(score, n_target)
    if spec.pattern == Pattern.ISCHEMIC:
        picked = _reach_endocardium(picked, score, canvas.endocardial[allowed], canvas.slice_index[allowed])
    scar = allowed[picked]
    mvo = np.zeros(0, dtype=np.int64)
    if spec.mvo and spec.pattern == Pattern.ISCHEMIC and picked.size:
        # MVO: the most central, most endocardial part of the scar (same rule with a shallower extent).
        # Within the same share of the scar's local reach, so a thin stretch of scar keeps MVO off its outer edge.
        x_core = depth[picked] / (MVO_DEPTH_SHARE * spec.transmurality * local_reach[picked])
        core = _top(_critical_threshold(m[picked], x_core, ramp), int(round(spec.mvo_fraction * picked.size)))
        mvo = scar[core]
    return ScarResult(spec, canvas, scar, mvo)
