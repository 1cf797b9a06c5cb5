"""Options of the procedural LGE phantom and what it knows about each patient it draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claim.aha.segments import Handedness
from claim.data.patient import Patient

__all__ = ["PhantomConfig", "PhantomTruth", "PhantomCase"]


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
