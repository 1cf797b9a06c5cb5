"""The septum direction estimated from LGE intensities when no RV label exists (EMIDEC).

Two cues around the LV epicardium, read per 5-degree sector on every slice with cavity and myocardium:

* RV blood: the RV cavity lies directly against the septum over about a third of the circumference and is as
  bright as the LV blood pool. Only a thin band next to the epicardium is read, because a wider one reaches
  liver and fat, which are often as bright as blood in LGE and lie further out.
* Lung: air-filled lung is darker than the nulled myocardium and wraps the lateral wall, opposite the septum.

Each cue is a fraction per sector; the septum is the centre of the 120-degree window with the most RV blood
plus lung on the opposite side. Confidence is the product of how far that window stands out from a typical
window and how well the slices agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.aha.segments import screen_angle_deg
from claim.labels import Label

__all__ = ["ImageEstimate", "estimate_septum_from_image", "LOW_CONFIDENCE_THRESHOLD"]

_N_BINS = 72
_BIN_DEG = 360.0 / _N_BINS
_BAND_RADII = 0.35  # band width, in LV radii, outside the epicardium
_BLOOD_TOLERANCE = 0.35  # |I - blood| below this share of the blood-muscle contrast counts as blood
_AIR_MARGIN = 0.5  # darker than muscle by this share of the contrast counts as air
_LUNG_WEIGHT = 2.0  # the lung cue is sparser than the blood cue (fat often lies between lung and heart)
_WINDOW_DEG = 120.0  # the septum spans AHA 60..180

# Image estimates with a confidence below this are flagged ``low_confidence``: the lower quartile of the
# confidences on the annotated EMIDEC reference (tests/aha/data, 0.37), rounded down; see the README section
# on orientation.
LOW_CONFIDENCE_THRESHOLD = 0.35


@dataclass(frozen=True)
class ImageEstimate:
    septum_screen_deg: float
    confidence: float
    slices_used: int


def _sector_fractions(image: np.ndarray, label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-sector share of blood-like and air-like pixels in the band beside the epicardium of one slice."""
    cavity = label_map == Label.CAVITY
    myo = np.isin(label_map, (Label.MYOCARDIUM, Label.INFARCT, Label.MVO))
    if cavity.sum() < 10 or myo.sum() < 10:
        return None
    heart = ndimage.binary_fill_holes(cavity | myo)
    radius = np.sqrt(heart.sum() / np.pi)
    distance = ndimage.distance_transform_edt(~heart)
    band = (distance > 0) & (distance <= _BAND_RADII * radius)
    healthy = label_map == Label.MYOCARDIUM
    if not band.any() or not healthy.any():
        return None
    blood = float(np.median(image[cavity]))
    muscle = float(np.median(image[healthy]))
    contrast = blood - muscle
    if contrast <= 0:
        return None
    centre = ndimage.center_of_mass(cavity)
    rows, cols = np.nonzero(band)
    values = image[rows, cols]
    bins = (screen_angle_deg(rows, cols, centre) / _BIN_DEG).astype(int) % _N_BINS
    counts = np.maximum(np.bincount(bins, minlength=_N_BINS), 1)
    present = np.bincount(bins, minlength=_N_BINS) > 0

    def share(mask: np.ndarray) -> np.ndarray:
        return np.where(present, np.bincount(bins, weights=mask.astype(float), minlength=_N_BINS) / counts, 0.0)

    return share(np.abs(values - blood) < _BLOOD_TOLERANCE * contrast), share(values < muscle - _AIR_MARGIN * contrast)


def _window_sums(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circular box sums over the septal window and the screen angle of each window's centre."""
    width = int(round(_WINDOW_DEG / _BIN_DEG))
    wrapped = np.concatenate([profile, profile[: width - 1]])
    sums = np.convolve(wrapped, np.ones(width), mode="valid")[:_N_BINS]
    return sums, ((np.arange(_N_BINS) + width / 2.0) * _BIN_DEG) % 360.0


def _score(blood: np.ndarray, air: np.ndarray) -> np.ndarray:
    # Lung opposite a sector supports it as septum: shift the air profile by half a turn.
    return blood + _LUNG_WEIGHT * np.roll(air, _N_BINS // 2)


def estimate_septum_from_image(images: np.ndarray, label_maps: np.ndarray) -> ImageEstimate | None:
    """Screen angle of the septum centre and a confidence in [0, 1]; None when no slice can be read."""
    blood_total, air_total = np.zeros(_N_BINS), np.zeros(_N_BINS)
    per_slice = []
    for image, label_map in zip(images, label_maps, strict=True):
        fractions = _sector_fractions(np.asarray(image, dtype=np.float64), label_map)
        if fractions is None:
            continue
        blood_total += fractions[0]
        air_total += fractions[1]
        sums, centres = _window_sums(_score(*fractions))
        per_slice.append(centres[int(np.argmax(sums))])
    if not per_slice:
        return None
    sums, centres = _window_sums(_score(blood_total, air_total))
    best = int(np.argmax(sums))
    prominence = float((sums[best] - np.median(sums)) / (sums[best] + 1e-9)) if sums[best] > 0 else 0.0
    radians = np.radians(per_slice)
    agreement = float(np.hypot(np.cos(radians).sum(), np.sin(radians).sum()) / len(per_slice))
    confidence = max(prominence, 0.0) * agreement
    return ImageEstimate(float(centres[best]), round(float(np.clip(confidence, 0.0, 1.0)), 4), len(per_slice))
