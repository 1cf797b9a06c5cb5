"""Procedural short-axis LGE cardiac MRI phantom with exact labels and ground-truth AHA segments.

A patient is drawn as parameters first (LV ellipses, wall thickness, RV, surroundings, optional scar), then
rendered: a tissue map is painted slice by slice, the EMIDEC label map is read off it, and intensities are drawn
from it (LGE contrast, texture, partial-volume blur, coil bias, Rician noise). The labels are therefore exact,
and the phantom knows the LV centre, the transmural depth and the AHA origin analytically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage

from claim.aha.segments import Handedness, Level, aha_angle_deg, screen_angle_deg, segment_from_angle
from claim.data.patient import Layout, Patient
from claim.labels import INFARCT_LABELS, Label

__all__ = ["PhantomConfig", "PhantomTruth", "PhantomCase", "make_phantom", "make_phantom_cohort"]

# The septum centre sits at AHA 120 deg (segments 2-3 / 8-9, apical septal sector centred on 120), so the RV
# insertion points fall at AHA 60 and 180 when the RV spans ~120 deg of the LV circumference.
_SEPTUM_AHA_DEG = 120.0


@dataclass(frozen=True)
class PhantomConfig:
    """Options of the phantom; lengths in mm, angles in degrees, intensities relative to the blood pool.

    Attributes:
        shape: ``(rows, cols)`` of each slice.
        spacing_mm: in-plane pixel size.
        slice_thickness_mm: distance between slices.
        min_slices / max_slices: slices per patient (inclusive range), apex to base.
        pathological_fraction: share of pathological patients (probability in ``make_phantom``, interleaving
            in ``make_phantom_cohort``).
        rv_label: give the RV blood pool ``Label.RV`` (5); otherwise it stays background like in EMIDEC.
        noise_sigma: Rician noise sigma relative to the blood-pool intensity.
        handedness: direction on screen in which the AHA numbering runs (``"ccw"`` is the standard display).
        septum_screen_deg: screen angle of the septum centre; ``None`` draws it uniformly per patient.
        apex_cap_probability: chance that the most apical slice is an apical cap (myocardium without cavity).
        basal_cavity_radius_mm / apical_cavity_radius_mm: ranges of the cavity radius at both ends.
        wall_thickness_mm: the wall thickness stays inside this range at every angle.
        centre_jitter_px: largest offset of the LV centre from the image centre.
        scar_slices / scar_width_deg / scar_transmurality: ranges of the scar's contiguous slice count, angular
            width and peak transmural extent.
        mvo_probability: chance of an MVO core in a scar with peak transmural extent >= 0.6.
        bias_strength: largest relative deviation of the coil bias field from 1.
        blur_sigma_px: Gaussian partial-volume blur.
        intensity_scale: relative intensities are multiplied by this (and a per-patient gain in 0.8..1.2).
    """

    shape: tuple[int, int] = (160, 160)
    spacing_mm: float = 1.4
    slice_thickness_mm: float = 10.0
    min_slices: int = 6
    max_slices: int = 10
    pathological_fraction: float = 0.5
    rv_label: bool = False
    noise_sigma: float = 0.03
    handedness: str = "ccw"
    septum_screen_deg: float | None = None
    apex_cap_probability: float = 0.5
    basal_cavity_radius_mm: tuple[float, float] = (18.0, 25.0)
    apical_cavity_radius_mm: tuple[float, float] = (6.0, 10.0)
    wall_thickness_mm: tuple[float, float] = (6.0, 12.0)
    centre_jitter_px: float = 4.0
    scar_slices: tuple[int, int] = (2, 5)
    scar_width_deg: tuple[float, float] = (40.0, 150.0)
    scar_transmurality: tuple[float, float] = (0.3, 1.0)
    mvo_probability: float = 0.4
    bias_strength: float = 0.3
    blur_sigma_px: float = 0.5
    intensity_scale: float = 1000.0

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 32:
            raise ValueError(f"shape {self.shape} must be (rows, cols) with both >= 32")
        if self.spacing_mm <= 0 or self.slice_thickness_mm <= 0:
            raise ValueError(
                f"spacing_mm {self.spacing_mm} and slice_thickness_mm {self.slice_thickness_mm} must be > 0"
            )
        if not 3 <= self.min_slices <= self.max_slices:
            # Three non-cap slices are the fewest that give each of apical, mid and basal one slice.
            raise ValueError(f"need 3 <= min_slices <= max_slices, got {self.min_slices}..{self.max_slices}")
        for name in ("pathological_fraction", "apex_cap_probability", "mvo_probability", "bias_strength"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)} must be in [0, 1]")
        if self.noise_sigma < 0 or self.blur_sigma_px < 0 or self.intensity_scale <= 0:
            raise ValueError("noise_sigma and blur_sigma_px must be >= 0 and intensity_scale > 0")
        if self.handedness not in tuple(Handedness):
            raise ValueError(f"handedness {self.handedness!r} must be one of {[h.value for h in Handedness]}")
        for name in (
            "basal_cavity_radius_mm",
            "apical_cavity_radius_mm",
            "wall_thickness_mm",
            "scar_slices",
            "scar_width_deg",
            "scar_transmurality",
        ):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} {(lo, hi)} must be a range 0 < low <= high")
        if self.scar_transmurality[1] > 1.0 or self.scar_width_deg[1] > 360.0:
            raise ValueError("scar_transmurality must stay <= 1 and scar_width_deg <= 360")


@dataclass(frozen=True)
class PhantomTruth:
    """What the phantom knows about a patient, in the order of the patient's arrays.

    Attributes:
        segment_maps: ``(S, H, W)`` uint8 AHA segment, 0 outside the myocardium {2, 3, 4}, 1-17 inside.
        level_per_slice: ``Level`` per slice (``"basal"``, ``"mid"``, ``"apical"``, ``"apex"``).
        origin_screen_deg: screen angle of AHA angle 0 (``septum - 120`` for ccw, ``septum + 120`` for cw). With
            the segment table (segment 1 = [0, 60)), the anterior RV insertion point lies at AHA 60, the 1|2 boundary.
        handedness: ``Handedness`` of the display.
        centres_rc: ``(S, 2)`` float LV centre (row, col) per slice.
        apex_first: True when slice 0 is the apex end.
        pathological: True when the patient has a scar (labels 3/4).
    """

    segment_maps: np.ndarray
    level_per_slice: tuple[str, ...]
    origin_screen_deg: float
    handedness: str
    centres_rc: np.ndarray
    apex_first: bool
    pathological: bool


@dataclass(frozen=True)
class PhantomCase:
    """A phantom patient (``Layout.EMIDEC``, float32 raw-range images) and its ground truth."""

    patient: Patient
    truth: PhantomTruth


class _Tissue(IntEnum):
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


_TISSUE_LABEL = np.zeros(len(_Tissue), dtype=np.uint8)
_TISSUE_LABEL[[_Tissue.CAVITY, _Tissue.MYO, _Tissue.SCAR, _Tissue.MVO]] = [
    Label.CAVITY,
    Label.MYOCARDIUM,
    Label.INFARCT,
    Label.MVO,
]
# Relative texture amplitude per tissue: lungs are mottled, blood is smooth, nulled myocardium is noisy-dark.
_TEXTURE = np.array([0.0, 0.08, 0.06, 0.05, 0.3, 0.08, 0.15, 0.04, 0.15, 0.07, 0.15, 0.04])


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


def _slice_levels(n_slices: int, has_cap: bool) -> tuple[Level, ...]:
    """Levels apex to base: cap -> apex; the rest in thirds (round(n/3) apical, up to round(2n/3) mid)."""
    n = n_slices - int(has_cap)
    n_apical, n_apical_mid = round(n / 3), round(2 * n / 3)
    rest = [Level.APICAL if k < n_apical else Level.MID if k < n_apical_mid else Level.BASAL for k in range(n)]
    return (Level.APEX,) * int(has_cap) + tuple(rest)


def _sample_lv(rng: np.random.Generator, config: PhantomConfig, n_slices: int, has_cap: bool) -> dict:
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


def _sample_surroundings(rng: np.random.Generator, septum_deg: float, to_screen) -> dict:
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


def _sample_scar(rng: np.random.Generator, config: PhantomConfig, cap_offset: int, n_noncap: int) -> dict:
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


def _render_scar(scar: dict, k: int, aha_deg: np.ndarray, depth: np.ndarray, myo_mask: np.ndarray):
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


def _lv_geometry(lv: dict, k: int, rows: np.ndarray, cols: np.ndarray, sp: float, has_cap: bool) -> dict:
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


def _paint_slice(
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
    tissue = np.full(config.shape, _Tissue.AIR, dtype=np.uint8)
    body_centre, body_axes, body_rot, body_wobble = env["body"]
    body_rho = _blob_radius(x, y, body_centre, body_axes, body_rot, body_wobble)
    tissue[body_rho < 1] = _Tissue.FAT
    tissue[body_rho < 1 - env["fat_mm"] / body_axes[1]] = _Tissue.MUSCLE
    interior = body_rho < 1 - (env["fat_mm"] + env["muscle_mm"]) / body_axes[1]
    tissue[interior] = _Tissue.SOFT
    # The liver dominates near the apex (diaphragm), the lungs near the base.
    for name, scale, kind in (
        ("liver", 1.25 - 0.5 * t, _Tissue.LIVER),
        ("lung_lat", 0.8 + 0.3 * t, _Tissue.LUNG),
        ("lung_sep", 0.8 + 0.3 * t, _Tissue.LUNG),
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
    tissue[radius < heart_outer + fat_width + 3.0] = _Tissue.SOFT  # pericardium and mediastinum hug the heart
    tissue[radius < heart_outer + fat_width] = _Tissue.FAT  # epicardial fat, bright in LGE like scar
    tissue[rv_zone & (radius < heart_outer)] = _Tissue.RV_WALL
    tissue[rv_blood] = _Tissue.RV_BLOOD
    tissue[geom["myo"]] = _Tissue.MYO
    tissue[scar_mask] = _Tissue.SCAR
    tissue[mvo_mask] = _Tissue.MVO
    tissue[geom["cavity"]] = _Tissue.CAVITY
    return tissue


def _draw_intensities(rng: np.random.Generator, config: PhantomConfig, tissue: np.ndarray) -> np.ndarray:
    """LGE intensities from a ``(S, H, W)`` tissue map: contrast, texture, blur, coil bias, Rician noise."""
    blood, myo = rng.uniform(0.55, 0.65), rng.uniform(0.06, 0.11)
    level = np.zeros(len(_Tissue))
    # Inversion time nulls healthy myocardium; gadolinium lingers in scar, which ends up brighter than blood.
    level[[_Tissue.SOFT, _Tissue.MUSCLE, _Tissue.FAT, _Tissue.LUNG, _Tissue.LIVER]] = [
        rng.uniform(0.18, 0.25),
        rng.uniform(0.25, 0.35),
        rng.uniform(0.65, 0.75),
        rng.uniform(0.03, 0.06),
        rng.uniform(0.25, 0.35),
    ]
    level[[_Tissue.RV_WALL, _Tissue.RV_BLOOD, _Tissue.MYO, _Tissue.SCAR, _Tissue.MVO, _Tissue.CAVITY]] = [
        myo * rng.uniform(1.0, 1.5),
        blood * rng.uniform(0.95, 1.05),
        myo,
        rng.uniform(0.85, 0.97),
        rng.uniform(0.07, 0.13),
        blood,
    ]
    texture = ndimage.gaussian_filter(rng.standard_normal(tissue.shape), sigma=(0, 2, 2))
    image = np.clip(level[tissue] * (1 + _TEXTURE[tissue] * texture / texture.std()), 0, None)
    if config.blur_sigma_px > 0:
        image = ndimage.gaussian_filter(image, sigma=(0, config.blur_sigma_px, config.blur_sigma_px))
    yy, xx = np.meshgrid(np.linspace(-1, 1, config.shape[0]), np.linspace(-1, 1, config.shape[1]), indexing="ij")
    poly = np.tensordot(rng.normal(size=5), np.stack([xx, yy, xx * yy, xx**2 - 1 / 3, yy**2 - 1 / 3]), axes=1)
    image = image * (1 + config.bias_strength * rng.uniform(0.5, 1.0) * poly / np.abs(poly).max())
    if config.noise_sigma > 0:
        n1, n2 = rng.normal(0.0, config.noise_sigma * blood, (2, *image.shape))
        image = np.sqrt((image + n1) ** 2 + n2**2)
    return (image * config.intensity_scale * rng.uniform(0.8, 1.2)).astype(np.float32)


_DEFAULT_CONFIG = PhantomConfig()


def make_phantom(
    rng: np.random.Generator,
    config: PhantomConfig = _DEFAULT_CONFIG,
    *,
    patient_id: str = "Phantom_001",
    pathological: bool | None = None,
    apex_first: bool = True,
) -> PhantomCase:
    """Draw one phantom patient.

    Args:
        rng: the only source of randomness.
        config: phantom options.
        patient_id: id of the returned patient.
        pathological: scar or not; ``None`` draws it with ``config.pathological_fraction``.
        apex_first: slice 0 is the apex; ``False`` gives the same patient with every per-slice item reversed.

    Returns:
        The patient (``(S, H, W)`` float32 images in a raw scanner-like range, uint8 label maps) and its truth.
    """
    if pathological is None:
        pathological = bool(rng.random() < config.pathological_fraction)
    n_slices = int(rng.integers(config.min_slices, config.max_slices + 1))
    has_cap = bool(n_slices >= 4 and rng.random() < config.apex_cap_probability)
    handedness = Handedness(config.handedness)
    septum_deg = float(rng.uniform(0, 360) if config.septum_screen_deg is None else config.septum_screen_deg) % 360
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    origin_deg = (septum_deg - sign * _SEPTUM_AHA_DEG) % 360.0

    lv = _sample_lv(rng, config, n_slices, has_cap)
    env = _sample_surroundings(rng, septum_deg, lambda aha: (origin_deg + sign * aha) % 360.0)
    levels = _slice_levels(n_slices, has_cap)
    rows, cols = np.indices(config.shape, dtype=np.float64)
    geoms = [_lv_geometry(lv, k, rows, cols, config.spacing_mm, has_cap) for k in range(n_slices)]
    aha = [aha_angle_deg(g["screen_deg"], origin_deg, handedness) for g in geoms]
    empty = np.zeros(config.shape, dtype=bool)
    lesions = {k: (empty, empty) for k in range(n_slices)}
    for _ in range(20 if pathological else 0):  # redraw the rare scar too small to cover 20 pixel centres
        scar = _sample_scar(rng, config, int(has_cap), n_slices - int(has_cap))
        drawn = {k: _render_scar(scar, k, aha[k], geoms[k]["depth"], geoms[k]["myo"]) for k in scar["slices"]}
        lesions.update(drawn)
        if sum(int(s.sum() + m.sum()) for s, m in drawn.values()) >= 20:
            break

    mean_centre = lv["centres"].mean(axis=0)
    xy_mm = ((cols - mean_centre[1]) * config.spacing_mm, -(rows - mean_centre[0]) * config.spacing_mm)
    tissue = np.stack(
        [_paint_slice(config, lv, env, geoms[k], k, septum_deg, xy_mm, *lesions[k]) for k in range(n_slices)]
    )
    label_maps = _TISSUE_LABEL[tissue]
    if config.rv_label:
        label_maps[tissue == _Tissue.RV_BLOOD] = Label.RV
    segment_maps = np.zeros(tissue.shape, dtype=np.uint8)
    for k in range(n_slices):
        myo_mask = np.isin(tissue[k], (_Tissue.MYO, _Tissue.SCAR, _Tissue.MVO))
        segment_maps[k][myo_mask] = segment_from_angle(aha[k][myo_mask], levels[k])
    images = _draw_intensities(rng, config, tissue)

    order = slice(None) if apex_first else slice(None, None, -1)
    patient = Patient(
        patient_id=patient_id,
        images=np.ascontiguousarray(images[order]),
        label_maps=np.ascontiguousarray(label_maps[order]),
        layout=Layout.EMIDEC,
        spacing_mm=(config.spacing_mm, config.spacing_mm),
        slice_thickness_mm=config.slice_thickness_mm,
    )
    truth = PhantomTruth(
        segment_maps=np.ascontiguousarray(segment_maps[order]),
        level_per_slice=levels[order],
        origin_screen_deg=float(origin_deg),
        handedness=handedness,
        centres_rc=np.ascontiguousarray(lv["centres"][order]),
        apex_first=apex_first,
        pathological=bool(np.isin(label_maps, INFARCT_LABELS).any()),
    )
    return PhantomCase(patient=patient, truth=truth)


def make_phantom_cohort(n_patients: int, seed: int, config: PhantomConfig = _DEFAULT_CONFIG) -> list[PhantomCase]:
    """Draw ``n_patients`` phantoms; patient ``k`` depends only on ``seed`` and ``k``, not on ``n_patients``.

    Patients are interleaved so that the first ``k`` hold ``floor(k * pathological_fraction)`` pathological ones;
    ids follow EMIDEC: ``Phantom_N001`` (normal), ``Phantom_P002`` (pathological), numbered from 1.

    Args:
        n_patients: how many patients.
        seed: cohort seed; each patient gets its own child of ``np.random.SeedSequence(seed)``.
        config: phantom options.
    """
    if n_patients < 0:
        raise ValueError(f"n_patients {n_patients} must be >= 0")
    cases = []
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_patients)):
        frac = config.pathological_fraction
        pathological = int((k + 1) * frac) > int(k * frac)
        patient_id = f"Phantom_{'P' if pathological else 'N'}{k + 1:03d}"
        cases.append(
            make_phantom(np.random.default_rng(child), config, patient_id=patient_id, pathological=pathological)
        )
    return cases
