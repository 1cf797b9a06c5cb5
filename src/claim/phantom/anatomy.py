"""Phantom anatomy: LV, RV, surroundings and scar drawn as parameters, then painted as a tissue map per slice.

Every tissue class maps to one EMIDEC label, and the LV is painted last, so the labels read off the tissue map are
exact; the geometry (LV centre, transmural depth, AHA angle) is known analytically.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from claim.aha.segments import Level, screen_angle_deg
from claim.labels import Label
from claim.phantom.config import PhantomConfig

__all__ = ["Tissue", "TISSUE_LABEL", "SEPTUM_AHA_DEG", "slice_levels", "sample_lv", "sample_surroundings",
           "sample_scar", "render_scar", "lv_geometry", "paint_slice"]

# The septum centre sits at AHA 120 deg (segments 2-3 / 8-9, apical septal sector centred on 120), so the RV
# insertion points fall at AHA 60 and 180 when the RV spans ~120 deg of the LV circumference.
SEPTUM_AHA_DEG = 120.0


class Tissue(IntEnum):
    """Tissue classes painted by the phantom; ``TISSUE_LABEL`` maps each to its EMIDEC label."""

    AIR = 0
    SOFT = 1
    MUSCLE = 2
    FAT = 3
    LUNG = 4
    LIVER = 5
    RV_WALL = 6
    RV_BLOOD = 7
    MYO = 8
    SCAR = 9
    MVO = 10
    CAVITY = 11


TISSUE_LABEL = np.zeros(len(Tissue), dtype=np.uint8)
TISSUE_LABEL[[Tissue.CAVITY, Tissue.MYO, Tissue.SCAR, Tissue.MVO]] = [
    Label.CAVITY,
    Label.MYOCARDIUM,
    Label.INFARCT,
    Label.MVO,
]


def _wrap_deg(angle_deg: np.ndarray | float) -> np.ndarray:
    return (np.asarray(angle_deg) + 180.0) % 360.0 - 180.0


def _unit(angle_deg: float) -> np.ndarray:
    """Screen direction (x right, y up) of a screen angle."""
    return np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])


def _ellipse_radius(theta: np.ndarray, axes: np.ndarray, rot: float) -> np.ndarray:
    """Polar radius of an ellipse (semi-axes ``axes`` rotated by ``rot`` rad) seen from its centre."""
    return 1.0 / np.hypot(np.cos(theta - rot) / axes[0], np.sin(theta - rot) / axes[1])


def _harmonics(theta: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Smooth angular profile: sum of ``amp * cos(k * theta - phase)`` over rows ``(k, amp, phase)``."""
    return sum(amp * np.cos(k * theta - phase) for k, amp, phase in terms)


def _blob_radius(
    x: np.ndarray, y: np.ndarray, centre: np.ndarray, axes: np.ndarray, rot: float, wobble: np.ndarray
) -> np.ndarray:
    """Normalised radius (< 1 inside) of an ellipse with a wobbly boundary, for organ-like blobs."""
    u = (x - centre[0]) * np.cos(rot) + (y - centre[1]) * np.sin(rot)
    v = -(x - centre[0]) * np.sin(rot) + (y - centre[1]) * np.cos(rot)
    return np.hypot(u / axes[0], v / axes[1]) * (1.0 + _harmonics(np.arctan2(v, u), wobble))


def slice_levels(n_slices: int, has_cap: bool) -> tuple[Level, ...]:
    """Levels apex to base: cap -> apex; the rest in thirds (round(n/3) apical, up to round(2n/3) mid)."""
    n = n_slices - int(has_cap)
    n_apical, n_apical_mid = round(n / 3), round(2 * n / 3)
    rest = [Level.APICAL if k < n_apical else Level.MID if k < n_apical_mid else Level.BASAL for k in range(n)]
    return (Level.APEX,) * int(has_cap) + tuple(rest)


def sample_lv(rng: np.random.Generator, config: PhantomConfig, n_slices: int, has_cap: bool) -> dict:
    """LV, RV and placement parameters per slice, apex first."""
    t = np.linspace(0.0, 1.0, n_slices)
    # A bullet-shaped LV: the radius grows fast above the apex and flattens toward the base.
    r_apex, r_base = rng.uniform(*config.apical_cavity_radius_mm), rng.uniform(*config.basal_cavity_radius_mm)
    # The radius range spans the slices with a cavity; a cap sits one slice beyond the apical radius.
    t_cavity = np.clip((np.arange(n_slices) - int(has_cap)) / max(n_slices - 1 - int(has_cap), 1), 0, 1)
    radius = r_apex + (r_base - r_apex) * t_cavity ** rng.uniform(0.5, 0.8)
    ratio = rng.uniform(0.8, 1.0)
    axes = np.stack([radius, radius * ratio], axis=1)
    rot = rng.uniform(0, np.pi) + np.cumsum(rng.normal(0, 0.05, n_slices))
    lo, hi = config.wall_thickness_mm
    wall_mean = rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)) * (1 + rng.normal(0, 0.02, n_slices))
    wall_terms = np.array(
        [
            [1, rng.uniform(0.05, 0.25) * (hi - lo), rng.uniform(0, 2 * np.pi)],
            [2, rng.uniform(0, 0.15) * (hi - lo), rng.uniform(0, 2 * np.pi)],
        ]
    )
    offset = rng.uniform(-1, 1, 2) * config.centre_jitter_px
    drift = np.cumsum(rng.normal(0, 0.3, (n_slices, 2)), axis=0)
    centres = (np.array(config.shape, dtype=np.float64) - 1) / 2 + offset + drift - drift.mean(axis=0)
    cap_axes = axes[0] + wall_mean[0]
    if has_cap:
        cap_axes = cap_axes * rng.uniform(0.5, 0.75)
        axes[0] = 0.0
    # The RV vanishes toward the apex: zero width below a random fraction of the stack.
    rv_start = rng.uniform(0.0, 0.25)
    rv_width = rng.uniform(14, 22) * np.clip((t - rv_start) / (1 - rv_start), 0, 1) ** 0.7
    fat_terms = np.array(
        [
            [0, rng.uniform(0, 1.5), 0],
            [1, rng.uniform(1, 3), rng.uniform(0, 2 * np.pi)],
            [3, rng.uniform(0.5, 2), rng.uniform(0, 2 * np.pi)],
        ]
    )
    return dict(
        t=t,
        axes=axes,
        rot=rot,
        wall_mean=np.clip(wall_mean, lo, hi),
        wall_terms=wall_terms,
        centres=centres,
        cap_axes=cap_axes,
        rv_width=rv_width,
        rv_half_span=rng.uniform(55, 65),
        rv_wall=rng.uniform(2.0, 3.5),
        fat_terms=fat_terms,
        wall_range=(lo, hi),
    )


def sample_surroundings(rng: np.random.Generator, septum_deg: float, to_screen) -> dict:
    """Body, chest wall, lungs and liver around the heart (mm, relative to the mean LV centre)."""
    anterior, inferior, lateral = to_screen(30.0), to_screen(210.0), to_screen(300.0)
    posterior = _unit(anterior + 180.0)

    def wobble(scale: float) -> np.ndarray:
        return np.array(
            [
                [2, rng.uniform(0, scale), rng.uniform(0, 2 * np.pi)],
                [3, rng.uniform(0, scale), rng.uniform(0, 2 * np.pi)],
            ]
        )

    lung_lat_dir = _unit(lateral) + 0.4 * posterior
    lung_sep_dir = _unit(septum_deg) + 0.5 * posterior
    return dict(
        body=(
            posterior * rng.uniform(15, 35),
            np.array([rng.uniform(140, 180), rng.uniform(100, 125)]),
            np.radians(anterior + 90.0),
            wobble(0.03),
        ),
        fat_mm=rng.uniform(6, 18),
        muscle_mm=rng.uniform(8, 15),
        lung_lat=(
            lung_lat_dir / np.linalg.norm(lung_lat_dir) * rng.uniform(60, 75),
            np.array([rng.uniform(30, 45), rng.uniform(45, 65)]),
            np.radians(lateral),
            wobble(0.08),
        ),
        lung_sep=(
            lung_sep_dir / np.linalg.norm(lung_sep_dir) * rng.uniform(80, 95),
            np.array([rng.uniform(25, 40), rng.uniform(40, 60)]),
            np.radians(septum_deg),
            wobble(0.08),
        ),
        liver=(
            _unit(inferior) * rng.uniform(65, 85),
            np.array([rng.uniform(45, 65), rng.uniform(30, 45)]),
            np.radians(inferior + 90.0),
            wobble(0.06),
        ),
    )


def sample_scar(rng: np.random.Generator, config: PhantomConfig, cap_offset: int, n_noncap: int) -> dict:
    """Subendocardial scar: contiguous slices, AHA centre angle, width and peak transmural extent per slice."""
    n = min(int(rng.integers(config.scar_slices[0], config.scar_slices[1] + 1)), n_noncap)
    start = cap_offset + int(rng.integers(0, n_noncap - n + 1))
    u = np.linspace(-1, 1, n) if n > 1 else np.zeros(1)
    lo, hi = config.scar_transmurality
    peak = lo + (hi - lo) * np.sqrt(rng.random())  # skewed toward transmural, as ischemic infarcts in EMIDEC
    # Infarcts taper toward their first and last slice, and drift a little in angle along the stack.
    return dict(
        slices=tuple(range(start, start + n)),
        centre_deg=rng.uniform(0, 360) + rng.uniform(-15, 15) * u,
        half_width_deg=rng.uniform(*config.scar_width_deg) / 2 * (1 - rng.uniform(0, 0.3) * u**2),
        peak=peak * (1 - rng.uniform(0, 0.35) * u**2),
        ripple=(rng.uniform(0, 0.15), rng.uniform(0, 2 * np.pi), rng.uniform(1, 3)),
        mvo=bool(peak >= 0.6 and rng.random() < config.mvo_probability),
    )


def render_scar(scar: dict, k: int, aha_deg: np.ndarray, depth: np.ndarray, myo_mask: np.ndarray):
    """Scar and MVO masks of slice ``k`` (one of ``scar['slices']``)."""
    i = scar["slices"].index(k)
    half_width, peak = scar["half_width_deg"][i], scar["peak"][i]
    offset = _wrap_deg(aha_deg - scar["centre_deg"][i])
    inside = np.abs(offset) < half_width
    amp, phase, freq = scar["ripple"]
    profile = np.sqrt(1 - np.clip(np.abs(offset) / half_width, 0, 1) ** 3)  # flat top, steep lateral borders
    extent = np.clip(peak * profile * (1 + amp * np.sin(freq * np.radians(offset) * 4 + phase)), 0, 1)
    scar_mask = myo_mask & inside & (depth <= extent)
    # MVO: the no-reflow core lies in the middle of large infarcts, on the endocardial side.
    with_mvo = bool(scar["mvo"]) and peak >= 0.5
    mvo_mask = scar_mask & (np.abs(offset) < 0.5 * half_width) & (depth <= 0.4 * extent) & with_mvo
    return scar_mask & ~mvo_mask, mvo_mask


def lv_geometry(lv: dict, k: int, rows: np.ndarray, cols: np.ndarray, sp: float, has_cap: bool) -> dict:
    """Analytic LV geometry of slice ``k``: screen angle, radius, cavity/myocardium masks and depth."""
    centre = lv["centres"][k]
    screen_deg = screen_angle_deg(rows, cols, (centre[0], centre[1]))
    theta = np.radians(screen_deg)
    radius = np.hypot(rows - centre[0], cols - centre[1]) * sp
    if has_cap and k == 0:
        cap_edge = _ellipse_radius(theta, lv["cap_axes"], lv["rot"][0])
        return dict(
            screen_deg=screen_deg,
            theta=theta,
            radius=radius,
            cavity=np.zeros_like(radius, dtype=bool),
            myo=radius < cap_edge,
            depth=np.zeros_like(radius),
            outer=cap_edge,
        )
    endo = _ellipse_radius(theta, lv["axes"][k], lv["rot"][k])
    wall = np.clip(lv["wall_mean"][k] + _harmonics(theta, lv["wall_terms"]), *lv["wall_range"])
    depth = (radius - endo) / wall
    return dict(
        screen_deg=screen_deg,
        theta=theta,
        radius=radius,
        cavity=depth < 0,
        myo=(depth >= 0) & (depth < 1),
        depth=depth,
        outer=endo + wall,
    )


def paint_slice(
    config: PhantomConfig,
    lv: dict,
    env: dict,
    geom: dict,
    k: int,
    septum_deg: float,
    xy_mm: tuple[np.ndarray, np.ndarray],
    scar_mask: np.ndarray,
    mvo_mask: np.ndarray,
) -> np.ndarray:
    """Tissue map of slice ``k``; later strokes win, and the LV is painted last so its labels are exact."""
    x, y = xy_mm
    t = lv["t"][k]
    tissue = np.full(config.shape, Tissue.AIR, dtype=np.uint8)
    body_centre, body_axes, body_rot, body_wobble = env["body"]
    body_rho = _blob_radius(x, y, body_centre, body_axes, body_rot, body_wobble)
    tissue[body_rho < 1] = Tissue.FAT
    tissue[body_rho < 1 - env["fat_mm"] / body_axes[1]] = Tissue.MUSCLE
    interior = body_rho < 1 - (env["fat_mm"] + env["muscle_mm"]) / body_axes[1]
    tissue[interior] = Tissue.SOFT
    # The liver dominates near the apex (diaphragm), the lungs near the base.
    for name, scale, kind in (
        ("liver", 1.25 - 0.5 * t, Tissue.LIVER),
        ("lung_lat", 0.8 + 0.3 * t, Tissue.LUNG),
        ("lung_sep", 0.8 + 0.3 * t, Tissue.LUNG),
    ):
        centre, axes, rot, wobble = env[name]
        tissue[interior & (_blob_radius(x, y, centre, axes * scale, rot, wobble) < 1)] = kind

    radius, epi = geom["radius"], geom["outer"]
    off_septum = np.abs(_wrap_deg(geom["screen_deg"] - septum_deg))
    span, rv_width = lv["rv_half_span"], lv["rv_width"][k]
    # Crescent: widest opposite the septum centre, tapering to the insertion points at +-span.
    rv_depth = rv_width * np.clip(1 - (off_septum / span) ** 2, 0, 1) ** 0.6
    rv_blood = (off_septum < span) & (radius >= epi) & (radius < epi + rv_depth) & (rv_width > 0)
    rv_zone = (off_septum < span + 8.0) & (rv_width > 0)
    heart_outer = epi + np.where(rv_zone, rv_depth + lv["rv_wall"], 0.0)
    fat_width = np.maximum(_harmonics(geom["theta"], lv["fat_terms"]), 0.0)
    tissue[radius < heart_outer + fat_width + 3.0] = Tissue.SOFT  # pericardium and mediastinum hug the heart
    tissue[radius < heart_outer + fat_width] = Tissue.FAT  # epicardial fat, bright in LGE like scar
    tissue[rv_zone & (radius < heart_outer)] = Tissue.RV_WALL
    tissue[rv_blood] = Tissue.RV_BLOOD
    tissue[geom["myo"]] = Tissue.MYO
    tissue[scar_mask] = Tissue.SCAR
    tissue[mvo_mask] = Tissue.MVO
    tissue[geom["cavity"]] = Tissue.CAVITY
    return tissue
