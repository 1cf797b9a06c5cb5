"""Where AHA angle 0 lies in the image: from an RV label, a given angle, or an estimate from the image.

EMIDEC has no RV label, so the angle origin must come from elsewhere; whichever source is used is returned
as ``Orientation.method`` and reported by every command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage

from claim.aha.orientation_image import LOW_CONFIDENCE_THRESHOLD, ImageCues, estimate_septum_from_image
from claim.aha.segments import (
    ANTERIOR_INSERTION_DEG,
    SEPTUM_CENTRE_DEG,
    Handedness,
    origin_from_screen,
    screen_angle_deg,
)
from claim.errors import ClaimError
from claim.labels import Label

__all__ = ["OrientationMethod", "Orientation", "parse_orientation", "estimate_orientation", "lv_centre",
           "circular_mean_deg"]


class OrientationMethod(StrEnum):
    RV_LABEL = "rv-label"  # anterior RV insertion point from an RV label map
    ANGLE = "angle"  # a user- or dataset-given angle
    IMAGE = "image"  # the bright RV blood pool beside the septum, estimated from intensities
    FILE = "file"  # a per-patient angle read from an orientation file (--orientation file:PATH)


@dataclass(frozen=True)
class Orientation:
    """Angle origin of one patient.

    Attributes:
        method: how it was found.
        origin_screen_deg: screen angle of AHA angle 0 (start of segment 1).
        handedness: direction of segment numbering on screen.
        insertion_screen_deg: screen angle of the anterior RV insertion point (the 1|2 boundary).
        confidence: method-specific quality in [0, 1] (1 for a given angle).
        low_confidence: True when an estimate is too uncertain to trust without a look (see orientation.png): its
            own confidence is below ``LOW_CONFIDENCE_THRESHOLD``, or it lies far from the other patients of its
            folder (``cohort_outlier``).
        cohort_outlier: True when ``claim.aha.cohort`` found this image estimate far from its folder's consensus.
    """

    method: OrientationMethod
    origin_screen_deg: float
    handedness: Handedness
    insertion_screen_deg: float
    confidence: float = 1.0
    low_confidence: bool = False
    cohort_outlier: bool = False

    def screen_deg(self, aha_deg: float) -> float:
        """Screen angle of AHA angle ``aha_deg`` under this origin (e.g. ``SEPTUM_CENTRE_DEG``)."""
        sign = 1.0 if self.handedness == Handedness.CCW else -1.0
        return float((self.origin_screen_deg + sign * aha_deg) % 360.0)

    def to_json(self) -> dict:
        record = asdict(self)
        record["method"] = self.method.value
        record["handedness"] = self.handedness.value
        return record


def parse_orientation(text: str) -> tuple[str, float | None]:
    """Parse ``--orientation``: ``auto`` | ``rv`` | ``image`` | ``angle:DEG`` | ``file:PATH``; returns (kind, degrees).

    For ``file:PATH`` the file is read and checked here, so a bad file fails before any data is read; its
    angles come from ``claim.aha.orientation_file.orientation_file_of``.
    """
    raw = text.strip()
    text = raw.lower()
    if text in ("auto", "rv", "image"):
        return text, None
    if text.startswith("file:"):
        from claim.aha.orientation_file import read_orientation_file  # the file module builds on this one

        read_orientation_file(raw.split(":", 1)[1])
        return "file", None
    if text.startswith("angle:"):
        try:
            return "angle", float(text.split(":", 1)[1]) % 360.0
        except ValueError as exc:
            raise ClaimError(f"--orientation {text!r}: DEG must be a number, e.g. angle:135") from exc
    raise ClaimError(f"--orientation {text!r}: expected auto, rv, image, angle:DEG or file:PATH")


def lv_centre(label_map: np.ndarray) -> tuple[float, float] | None:
    """LV centre of one slice: cavity centroid, else centroid of the filled myocardium; None if neither."""
    cavity = label_map == Label.CAVITY
    if cavity.any():
        return tuple(float(c) for c in ndimage.center_of_mass(cavity))  # type: ignore[return-value]
    myo = np.isin(label_map, (Label.MYOCARDIUM, Label.INFARCT, Label.MVO))
    if myo.any():
        return tuple(float(c) for c in ndimage.center_of_mass(ndimage.binary_fill_holes(myo)))  # type: ignore[return-value]
    return None


def circular_mean_deg(angles_deg: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Mean direction in [0, 360) and resultant length (0 = spread, 1 = all equal) of angles in degrees."""
    radians = np.radians(angles_deg)
    w = np.ones_like(radians) if weights is None else weights
    c, s = float(np.sum(w * np.cos(radians))), float(np.sum(w * np.sin(radians)))
    total = float(np.sum(w)) or 1.0
    return float(np.degrees(np.arctan2(s, c)) % 360.0), float(np.hypot(c, s) / total)


def estimate_orientation(
    images: np.ndarray,
    label_maps: np.ndarray,
    *,
    kind: str = "auto",
    angle_deg: float | None = None,
    handedness: Handedness = Handedness.CCW,
    cues: ImageCues = ImageCues(),
) -> Orientation:
    """Angle origin of a patient's stack.

    Args:
        images: ``(S, H, W)`` intensities (any scale).
        label_maps: ``(S, H, W)`` label ids; an RV label (5) enables the RV method.
        kind: ``auto`` (RV label if present, else image), ``rv``, ``image`` or ``angle``.
        angle_deg: with ``kind="angle"``, screen angle of the anterior RV insertion point.
        handedness: direction of segment numbering on screen.
        cues: how the image estimate reads its cues (the defaults unless screening them).
    """
    if kind == "angle":
        if angle_deg is None:
            raise ClaimError("orientation 'angle' needs a value: --orientation angle:DEG")
        return Orientation(
            OrientationMethod.ANGLE,
            origin_from_screen(angle_deg, ANTERIOR_INSERTION_DEG, handedness),
            handedness,
            float(angle_deg) % 360.0,
        )
    has_rv = bool(np.any(label_maps == Label.RV))
    if kind == "rv" and not has_rv:
        raise ClaimError("--orientation rv: the label maps have no RV label (5); map one with --label-mapping")
    if kind in ("rv", "auto") and has_rv:
        return _orientation_from_rv(label_maps, handedness)
    return _orientation_from_image(images, label_maps, handedness, cues)


def _orientation_from_rv(label_maps: np.ndarray, handedness: Handedness) -> Orientation:
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    insertions, weights = [], []
    for label_map in label_maps:
        rv = label_map == Label.RV
        centre = lv_centre(label_map)
        myo = np.isin(label_map, (Label.MYOCARDIUM, Label.INFARCT, Label.MVO))
        if centre is None or not rv.any() or not myo.any():
            continue
        contact = myo & ndimage.binary_dilation(rv, iterations=2)
        if contact.sum() < 3:
            continue
        rows, cols = np.nonzero(contact)
        angles = screen_angle_deg(rows, cols, centre)
        # The contact arc is the complement of the largest angular gap; its midpoint is the septum centre,
        # which is insensitive to how far the dilation widens both ends of the arc.
        ordered = np.sort(angles)
        gaps = np.diff(np.concatenate([ordered, ordered[:1] + 360.0]))
        largest = int(np.argmax(gaps))
        arc_start = ordered[(largest + 1) % len(ordered)]
        arc_width = 360.0 - float(gaps[largest])
        arc_mid = (arc_start + arc_width / 2.0) % 360.0
        # The anterior insertion is the arc end that comes first in numbering order.
        insertions.append((arc_mid - sign * arc_width / 2.0) % 360.0)
        weights.append(float(contact.sum()))
    if not insertions:
        raise ClaimError("the RV label never touches the myocardium; cannot place the RV insertion points")
    insertion, spread = circular_mean_deg(np.asarray(insertions), np.asarray(weights))
    origin = origin_from_screen(insertion, ANTERIOR_INSERTION_DEG, handedness)
    return Orientation(OrientationMethod.RV_LABEL, origin, handedness, insertion, round(spread, 4))


def _orientation_from_image(
    images: np.ndarray, label_maps: np.ndarray, handedness: Handedness, cues: ImageCues
) -> Orientation:
    estimate = estimate_septum_from_image(images, label_maps, cues)
    if estimate is None:
        raise ClaimError(
            "cannot estimate orientation from the image (no slice with cavity, myocardium and bright blood); "
            "give one with --orientation angle:DEG or file:PATH"
        )
    origin = origin_from_screen(estimate.septum_screen_deg, SEPTUM_CENTRE_DEG, handedness)
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    insertion = (origin + sign * ANTERIOR_INSERTION_DEG) % 360.0
    return Orientation(
        OrientationMethod.IMAGE,
        origin,
        handedness,
        insertion,
        estimate.confidence,
        low_confidence=estimate.confidence < LOW_CONFIDENCE_THRESHOLD,
    )
