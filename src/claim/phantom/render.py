"""Procedural short-axis LGE cardiac MRI phantom with exact labels and ground-truth AHA segments.

A patient is drawn as parameters first (LV ellipses, wall thickness, RV, surroundings, optional scar), then
rendered: a tissue map is painted slice by slice (``claim.phantom.anatomy``), the EMIDEC label map is read off it,
and intensities are drawn from it (LGE contrast, texture, partial-volume blur, coil bias, Rician noise). The labels
are therefore exact, and the phantom knows the LV centre, the transmural depth and the AHA origin analytically.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from claim.aha.segments import Handedness, aha_angle_deg, segment_from_angle
from claim.data.patient import Layout, Patient
from claim.labels import Label
from claim.phantom.anatomy import (
    SEPTUM_AHA_DEG,
    TISSUE_LABEL,
    Tissue,
    lv_geometry,
    paint_slice,
    render_scar,
    sample_lv,
    sample_scar,
    sample_surroundings,
    slice_levels,
)
from claim.phantom.config import PhantomCase, PhantomConfig, PhantomTruth

__all__ = ["make_phantom", "make_phantom_cohort"]

# Relative texture amplitude per tissue: lungs are mottled, blood is smooth, nulled myocardium is noisy-dark.
_TEXTURE = np.array([0.0, 0.08, 0.06, 0.05, 0.3, 0.08, 0.15, 0.04, 0.15, 0.07, 0.15, 0.04])


def _draw_intensities(rng: np.random.Generator, config: PhantomConfig, tissue: np.ndarray) -> np.ndarray:
    """LGE intensities from a ``(S, H, W)`` tissue map: contrast, texture, blur, coil bias, Rician noise."""
    blood, myo = rng.uniform(0.55, 0.65), rng.uniform(0.06, 0.11)
    level = np.zeros(len(Tissue))
    # Inversion time nulls healthy myocardium; gadolinium lingers in scar, which ends up brighter than blood.
    level[[Tissue.SOFT, Tissue.MUSCLE, Tissue.FAT, Tissue.LUNG, Tissue.LIVER]] = [
        rng.uniform(0.18, 0.25),
        rng.uniform(0.25, 0.35),
        rng.uniform(0.65, 0.75),
        rng.uniform(0.03, 0.06),
        rng.uniform(0.25, 0.35),
    ]
    level[[Tissue.RV_WALL, Tissue.RV_BLOOD, Tissue.MYO, Tissue.SCAR, Tissue.MVO, Tissue.CAVITY]] = [
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
    origin_deg = (septum_deg - sign * SEPTUM_AHA_DEG) % 360.0

    lv = sample_lv(rng, config, n_slices, has_cap)
    env = sample_surroundings(rng, septum_deg, lambda aha: (origin_deg + sign * aha) % 360.0)
    levels = slice_levels(n_slices, has_cap)
    rows, cols = np.indices(config.shape, dtype=np.float64)
    geoms = [lv_geometry(lv, k, rows, cols, config.spacing_mm, has_cap) for k in range(n_slices)]
    aha = [aha_angle_deg(g["screen_deg"], origin_deg, handedness) for g in geoms]
    empty = np.zeros(config.shape, dtype=bool)
    lesions = {k: (empty, empty) for k in range(n_slices)}
    for _ in range(20 if pathological else 0):  # redraw the rare scar too small to cover 20 pixel centres
        scar = sample_scar(rng, config, int(has_cap), n_slices - int(has_cap))
        drawn = {k: render_scar(scar, k, aha[k], geoms[k]["depth"], geoms[k]["myo"]) for k in scar["slices"]}
        lesions.update(drawn)
        if sum(int(s.sum() + m.sum()) for s, m in drawn.values()) >= 20:
            break

    mean_centre = lv["centres"].mean(axis=0)
    xy_mm = ((cols - mean_centre[1]) * config.spacing_mm, -(rows - mean_centre[0]) * config.spacing_mm)
    tissue = np.stack(
        [paint_slice(config, lv, env, geoms[k], k, septum_deg, xy_mm, *lesions[k]) for k in range(n_slices)]
    )
    label_maps = TISSUE_LABEL[tissue]
    if config.rv_label:
        label_maps[tissue == Tissue.RV_BLOOD] = Label.RV
    segment_maps = np.zeros(tissue.shape, dtype=np.uint8)
    for k in range(n_slices):
        myo_mask = np.isin(tissue[k], (Tissue.MYO, Tissue.SCAR, Tissue.MVO))
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
        pathological=patient.has_infarct,
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
