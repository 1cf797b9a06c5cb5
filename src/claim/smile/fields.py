"""Smooth random fields on the polar (slice, angle) grid: scar borders that are irregular but smooth.

A field is a sum of a few random Fourier harmonics of the circumferential angle, modulated along the long axis,
so it costs a few hundred thousand flops per mask and never produces speckle.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from claim.smile.canvas import ANGLE_BIN_DEG, N_ANGLES, ScarCanvas

__all__ = ["smooth_noise", "lateral_field", "foci_field", "BORDER_NOISE"]

BORDER_NOISE = 0.22  # amplitude of the border noise relative to the 0..1 region field
_REGION_SIGMA_DEG = 14.0  # soft edge of the segment region (in-plane)
_REGION_SIGMA_SLICES = 0.6  # soft edge across slices: keeps the scar contiguous between neighbouring slices
# Real infarcts are thickest around one level and thin out or stop towards the stack's ends; without this term a
# scar whose segments span every level spread thinly over the whole stack. Penalty (units of the 0..1 region
# field) for slices far from the scar's centre, along the long-axis bump.
LONG_AXIS_FOCUS = 1.0


def _angles_rad() -> np.ndarray:
    return np.radians((np.arange(N_ANGLES) + 0.5) * ANGLE_BIN_DEG)


def _long_axis(n_slices: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_slices) if n_slices > 1 else np.zeros(1)


def smooth_noise(rng: np.random.Generator, n_slices: int, harmonics: int = 5, long_terms: int = 3) -> np.ndarray:
    """``(S, N_ANGLES)`` zero-mean, unit-std smooth random field (periodic in angle).

    Harmonic ``k`` of the angle gets amplitude ``~ k**-1.2`` so large-scale undulation dominates; along the stack
    it varies as ``cos(pi * l * z + phase)`` for ``l < long_terms``.
    """
    theta = _angles_rad()[None, :]
    z = _long_axis(n_slices)[:, None]
    field = np.zeros((n_slices, N_ANGLES))
    for k in range(1, harmonics + 1):
        for ell in range(long_terms):
            amplitude = rng.normal() * k**-1.2 / (1.0 + ell)
            field += (
                amplitude
                * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                * np.cos(np.pi * ell * z + rng.uniform(0, 2 * np.pi))
            )
    std = float(field.std())
    return field / std if std > 0 else field


def lateral_field(rng: np.random.Generator, canvas: ScarCanvas, segments: tuple[int, ...]) -> np.ndarray:
    """``(S, N_ANGLES)`` field that peaks inside ``segments`` around a random centre and has noisy borders.

    The region indicator is blurred (soft borders, continuity across slices), weighted by a broad bump around a
    centre drawn inside the region (an infarct grows from the centre of its perfusion bed), lowered on slices far
    from that centre (``LONG_AXIS_FOCUS``: the scar is thickest around one level and reaches the stack's ends only
    when its burden needs them), then perturbed by smooth noise so that thresholding it gives irregular, smooth
    borders.
    """
    region = canvas.region_grid(segments)
    sigma = (_REGION_SIGMA_SLICES, _REGION_SIGMA_DEG / ANGLE_BIN_DEG)
    base = ndimage.gaussian_filter(region, sigma=sigma, mode=("nearest", "wrap"))
    inside = np.flatnonzero(region.ravel() > 0)
    centre = int(inside[rng.integers(inside.size)]) if inside.size else 0
    s0, a0 = divmod(centre, N_ANGLES)
    d_angle = (np.arange(N_ANGLES) - a0 + N_ANGLES / 2) % N_ANGLES - N_ANGLES / 2
    d_slice = np.arange(canvas.n_slices) - s0
    spread_deg, spread_slices = rng.uniform(50.0, 110.0), rng.uniform(1.5, 4.0)
    bump = np.exp(
        -0.5 * ((d_angle[None, :] * ANGLE_BIN_DEG / spread_deg) ** 2 + (d_slice[:, None] / spread_slices) ** 2)
    )
    long_axis = LONG_AXIS_FOCUS * (1.0 - np.exp(-0.5 * (d_slice / spread_slices) ** 2))
    # 2 * base - 1 puts the segment border at 0: the scar reaches it only when the burden needs the whole set.
    return ((2.0 * base - 1.0) * (0.7 + 0.3 * bump) - long_axis[:, None]
            + BORDER_NOISE * smooth_noise(rng, canvas.n_slices))


def foci_field(
    rng: np.random.Generator, canvas: ScarCanvas, segments: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Patchy pattern: one focus per segment. Returns the lateral field and the band-centre depth per grid cell.

    Each focus is an anisotropic bump centred at a random angle inside its segment, on a random slice holding
    that segment; its band centre depth is drawn in [0.3, 0.7] so foci sit at different layers of the wall.
    """
    field = np.full((canvas.n_slices, N_ANGLES), -np.inf)
    centre_depth = np.full((canvas.n_slices, N_ANGLES), 0.5)
    angle_index = np.arange(N_ANGLES)
    for segment in segments:
        rows = np.unique(canvas.slice_index[canvas.segment == segment])
        cells = np.unique(canvas.grid_index[canvas.segment == segment] % N_ANGLES)
        if rows.size == 0:
            continue
        s0 = int(rows[rng.integers(rows.size)])
        a0 = int(cells[rng.integers(cells.size)])
        spread_deg, spread_slices = rng.uniform(10.0, 28.0), rng.uniform(0.4, 1.1)
        amplitude, depth = rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.7)
        d_angle = (angle_index - a0 + N_ANGLES / 2) % N_ANGLES - N_ANGLES / 2
        d_slice = np.arange(canvas.n_slices) - s0
        bump = amplitude * np.exp(
            -0.5 * ((d_angle[None, :] * ANGLE_BIN_DEG / spread_deg) ** 2 + (d_slice[:, None] / spread_slices) ** 2)
        )
        centre_depth = np.where(bump > field, depth, centre_depth)
        field = np.maximum(field, bump)
    field = np.where(np.isfinite(field), field, 0.0)
    return field + 0.5 * BORDER_NOISE * smooth_noise(rng, canvas.n_slices) * field, centre_depth
