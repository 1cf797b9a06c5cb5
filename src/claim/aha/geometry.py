"""Per-pixel AHA geometry of a patient: segment (1-17), circumferential angle, transmural depth.

Base and apex come from anatomy (the cavity grows towards the base), never from file order; the stack is
split into basal/mid/apical thirds from the apex, and apical slices with myocardium but no cavity form the
apical cap (segment 17).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.aha.orientation import Orientation, estimate_orientation, lv_centre
from claim.aha.segments import Handedness, Level, aha_angle_deg, screen_angle_deg, segment_from_angle
from claim.data.patient import Patient
from claim.labels import Label, infarct_mask, myocardium_mask

__all__ = [
    "PatientGeometry",
    "compute_geometry",
    "infer_apex_first",
    "assign_levels",
    "transmural_depth",
    "mid_ventricular_slice",
]


@dataclass(frozen=True, eq=False)
class PatientGeometry:
    """AHA geometry of one patient, arrays ``(S, H, W)`` in the patient's grid and slice order.

    Attributes:
        segment_maps: uint8, 0 outside the myocardium, 1-17 inside.
        angle_deg: float32 AHA angle in [0, 360) (0 = start of segment 1), NaN outside the myocardium.
        depth: float32 transmural depth in [0, 1] (0 endocardium, 1 epicardium), NaN outside.
        levels: per slice, its ``Level`` or None for a slice without myocardium.
        centres_rc: ``(S, 2)`` LV centre per slice (NaN where none).
        apex_first: True when slice 0 lies at the apex end of the stack.
        orientation: the angle origin and how it was found.
    """

    patient_id: str
    segment_maps: np.ndarray
    angle_deg: np.ndarray
    depth: np.ndarray
    levels: tuple[Level | None, ...]
    centres_rc: np.ndarray
    apex_first: bool
    orientation: Orientation

    @property
    def myocardium_mask(self) -> np.ndarray:
        return self.segment_maps > 0

    def segment_pixel_counts(self, region_mask: np.ndarray | None = None) -> dict[int, int]:
        """Pixels per segment 1-17 (of the myocardium, or of ``region_mask`` within it)."""
        selected = self.segment_maps if region_mask is None else np.where(region_mask, self.segment_maps, 0)
        counts = np.bincount(selected.ravel(), minlength=18)
        return {segment: int(counts[segment]) for segment in range(1, 18)}

    def summary(self, label_maps: np.ndarray) -> dict:
        """JSON-ready record: orientation, apex side, levels and per-segment myocardium/scar pixel counts."""
        scar = infarct_mask(label_maps)
        return {
            "patient_id": self.patient_id,
            "orientation": self.orientation.to_json(),
            "apex_side": "first" if self.apex_first else "last",
            "levels": [level.value if level else None for level in self.levels],
            "myocardium_pixels": self.segment_pixel_counts(),
            "scar_pixels": self.segment_pixel_counts(scar),
        }


def _cavity_areas(label_maps: np.ndarray) -> np.ndarray:
    return (label_maps == Label.CAVITY).reshape(len(label_maps), -1).sum(axis=1).astype(float)


def infer_apex_first(label_maps: np.ndarray) -> bool:
    """True when the apex is at slice 0: the LV cavity (else the whole LV) grows towards the base.

    Uses the least-squares slope of cavity area against slice index over slices that hold myocardium, which is
    robust to the basal outflow tract shrinking the top slice or two.
    """
    has_myo = myocardium_mask(label_maps).reshape(len(label_maps), -1).any(axis=1)
    index = np.flatnonzero(has_myo)
    if len(index) < 2:
        return True
    areas = _cavity_areas(label_maps)[index]
    if not areas.any():
        areas = (np.isin(label_maps, (1, 2, 3, 4))).reshape(len(label_maps), -1).sum(axis=1)[index].astype(float)
    slope = np.polyfit(index.astype(float), areas, 1)[0]
    return bool(slope >= 0)


def assign_levels(label_maps: np.ndarray, apex_first: bool) -> tuple[Level | None, ...]:
    """Level per slice: the apical run without cavity is the cap; the rest split in thirds from the apex."""
    n = len(label_maps)
    order = list(range(n)) if apex_first else list(range(n - 1, -1, -1))
    myo_any = myocardium_mask(label_maps).reshape(n, -1).any(axis=1)
    cavity_any = (label_maps == Label.CAVITY).reshape(n, -1).any(axis=1)
    ordered = [s for s in order if myo_any[s]]
    levels: list[Level | None] = [None] * n
    cap = 0
    while cap < len(ordered) and not cavity_any[ordered[cap]]:
        cap += 1
    if cap == len(ordered):  # no cavity anywhere: nothing but cap would be odd; treat the stack as ordinary
        cap = 0
    for s in ordered[:cap]:
        levels[s] = Level.APEX
    rest = ordered[cap:]
    first_mid, first_basal = round(len(rest) / 3), round(2 * len(rest) / 3)
    for position, s in enumerate(rest):
        levels[s] = Level.APICAL if position < first_mid else Level.MID if position < first_basal else Level.BASAL
    return tuple(levels)


def mid_ventricular_slice(label_maps: np.ndarray) -> int | None:
    """Index of the middle slice of the mid ring (where the RV lies beside the septum); None without myocardium.

    Falls back to the middle slice holding cavity when the stack is too short to have a mid third.
    """
    levels = assign_levels(label_maps, infer_apex_first(label_maps))
    mids = [s for s, level in enumerate(levels) if level == Level.MID]
    if not mids:
        mids = [s for s in range(len(label_maps)) if (label_maps[s] == Label.CAVITY).any()]
    if not mids:
        mids = [s for s, level in enumerate(levels) if level is not None]
    return mids[len(mids) // 2] if mids else None


def transmural_depth(label_map: np.ndarray) -> np.ndarray:
    """Depth in [0, 1] inside the myocardium of one slice (0 at the cavity, 1 at the epicardium), NaN outside.

    ``d_endo / (d_endo + d_epi)`` from two Euclidean distance transforms. In a slice without cavity (apical cap)
    depth runs from the myocardium's innermost point (0) to its outer border (1).
    """
    myo = myocardium_mask(label_map)
    depth = np.full(label_map.shape, np.nan, dtype=np.float32)
    if not myo.any():
        return depth
    cavity = label_map == Label.CAVITY
    heart = myo | cavity
    d_epi = ndimage.distance_transform_edt(heart)  # distance to the nearest pixel outside the heart
    if cavity.any():
        d_endo = ndimage.distance_transform_edt(~cavity)
        ratio = d_endo / np.maximum(d_endo + d_epi, 1e-6)
    else:
        ratio = 1.0 - d_epi / max(float(d_epi[myo].max()), 1e-6)
    # Distances are measured to pixel centres, so the rim rows sit at half a pixel: stretch to reach 0 and 1.
    values = ratio[myo]
    lo, hi = float(values.min()), float(values.max())
    depth[myo] = np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else 0.0
    return depth


def compute_geometry(
    patient: Patient,
    *,
    orientation: Orientation | None = None,
    orientation_kind: str = "auto",
    angle_deg: float | None = None,
    handedness: Handedness = Handedness.CCW,
) -> PatientGeometry:
    """AHA geometry of ``patient``.

    Args:
        patient: the patient (its label maps define myocardium and cavity).
        orientation: a ready orientation; if None it is found with ``orientation_kind``/``angle_deg``.
        orientation_kind: ``auto``, ``rv``, ``image`` or ``angle`` (see ``estimate_orientation``).
        angle_deg: screen angle of the anterior RV insertion point for ``orientation_kind="angle"``.
        handedness: direction of segment numbering on screen.
    """
    label_maps = patient.label_maps
    if orientation is None:
        orientation = estimate_orientation(
            patient.images, label_maps, kind=orientation_kind, angle_deg=angle_deg, handedness=handedness
        )
    apex_first = infer_apex_first(label_maps)
    levels = assign_levels(label_maps, apex_first)
    shape = label_maps.shape
    segment_maps = np.zeros(shape, dtype=np.uint8)
    angles = np.full(shape, np.nan, dtype=np.float32)
    depth = np.full(shape, np.nan, dtype=np.float32)
    centres = np.full((shape[0], 2), np.nan)
    for s, level in enumerate(levels):
        if level is None:
            continue
        centre = lv_centre(label_maps[s])
        centres[s] = centre
        myo = myocardium_mask(label_maps[s])
        rows, cols = np.nonzero(myo)
        angle = aha_angle_deg(
            screen_angle_deg(rows, cols, centre), orientation.origin_screen_deg, orientation.handedness
        )
        angles[s][rows, cols] = angle
        segment_maps[s][rows, cols] = segment_from_angle(angle, level)
        depth[s] = transmural_depth(label_maps[s])
    return PatientGeometry(
        patient_id=patient.patient_id,
        segment_maps=segment_maps,
        angle_deg=angles,
        depth=depth,
        levels=levels,
        centres_rc=centres,
        apex_first=apex_first,
        orientation=orientation,
    )
