"""The septum direction estimated from LGE intensities when no RV label exists (EMIDEC).

Two cues around the LV epicardium, read per 5-degree sector on every slice with cavity and myocardium:

* RV blood: the RV cavity lies directly against the septum over about a third of the circumference and is as
  bright as the LV blood pool. Only a thin band next to the epicardium is read, because a wider one reaches
  liver and fat, which are often as bright as blood in LGE and lie further out.
* Lung: air-filled lung is darker than the nulled myocardium and wraps the lateral wall, opposite the septum.

Each cue is a fraction per sector; the septum is the centre of the 120-degree window with the most RV blood
plus lung on the opposite side. Confidence is the weaker of two supports: the blood-muscle contrast-to-noise
ratio of the scan (0 at CNR 1, 1 at CNR 3: on the annotated EMIDEC reference the septum errors over 45 degrees
all came from low-contrast scans in which the reader could not see the RV clearly either) and the agreement of
the slices' own estimates (resultant length of their directions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.aha.segments import screen_angle_deg
from claim.labels import Label

__all__ = ["ImageCues", "ImageEstimate", "estimate_septum_from_image", "LOW_CONFIDENCE_THRESHOLD"]

_N_BINS = 72
_BIN_DEG = 360.0 / _N_BINS
_CNR_NONE, _CNR_FULL = 1.0, 3.0  # blood-muscle contrast-to-noise giving confidence 0 and 1


@dataclass(frozen=True)
class ImageCues:
    """How the two cues are read. The defaults are the estimator's; other values exist for the benchmark that
    screens them against the annotated reference (benchmarks/aha_orientation_reference.py --variants).

    Attributes:
        band_radii: band width, in LV radii, outside the epicardium.
        blood_tolerance: ``|I - blood|`` below this share of the blood-muscle contrast counts as blood.
        air_margin: darker than muscle by this share of the contrast counts as air.
        lung_weight: weight of the lung cue against the blood cue. The dark region beside the free wall is not
            centred opposite the septum (likely because the lung wraps the anterolateral wall more than the
            inferolateral one, where liver and diaphragm lie), so a heavy lung cue pulls the estimate off. 0.5
            was picked on the annotated reference (tests/aha/data; benchmarks/aha_orientation_reference.py
            --select-lung-weight scores every weight): every weight from 0.25 to 1.5 puts 72-73 of 75 septa
            within 45 degrees of the blind readers' mean and 73-74 of every reader's, against 70 and 71 with the
            earlier 2.0; within that plateau 0.5 meets the orientation bars against both and scores best against
            the second reader. That command's cross-validated numbers say what such a choice generalises to.
        window_deg: width of the septal window (the septum spans AHA 60..180).
        contrast_weighted: weight each slice's cues by its blood-muscle contrast-to-noise (confidence 0..1 scale,
            floored at 0.05) instead of equally. Off: on the annotated reference it lost patients against both
            readers (benchmarks/aha_orientation_reference.py --variants).
    """

    band_radii: float = 0.35
    blood_tolerance: float = 0.35
    air_margin: float = 0.5
    lung_weight: float = 0.5
    window_deg: float = 120.0
    contrast_weighted: bool = False

    def __post_init__(self) -> None:
        if self.band_radii <= 0 or self.blood_tolerance <= 0 or self.air_margin < 0 or self.lung_weight < 0:
            raise ValueError(f"{self}: band_radii and blood_tolerance must be > 0, air_margin and lung_weight >= 0")
        if not _BIN_DEG <= self.window_deg < 360.0:
            raise ValueError(f"{self}: window_deg must be in [{_BIN_DEG}, 360)")


# Image estimates with a confidence below this are flagged ``low_confidence`` (CNR below 1.8, or slices spread
# widely). Chosen on the annotated EMIDEC reference (tests/aha/data) with the earlier lung weight: it flagged 20
# of reader 1's 48 patients and 3 of the 4 septum errors over 45 degrees; 0.45 would have flagged all 4 but 29
# of 48. With the current cues it flags 32 of the 75 patients by their own confidence (39 with the cohort check
# of `claim aha`), among them both septum errors over 45 degrees against the blind readers' mean. See the README
# section on orientation.
LOW_CONFIDENCE_THRESHOLD = 0.4


@dataclass(frozen=True)
class ImageEstimate:
    septum_screen_deg: float
    confidence: float
    slices_used: int


def _sector_fractions(
    image: np.ndarray, label_map: np.ndarray, cues: ImageCues
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Per-sector share of blood-like and air-like pixels beside the epicardium of one slice, and its CNR."""
    cavity = label_map == Label.CAVITY
    myo = np.isin(label_map, (Label.MYOCARDIUM, Label.INFARCT, Label.MVO))
    if cavity.sum() < 10 or myo.sum() < 10:
        return None
    heart = ndimage.binary_fill_holes(cavity | myo)
    radius = np.sqrt(heart.sum() / np.pi)
    distance = ndimage.distance_transform_edt(~heart)
    band = (distance > 0) & (distance <= cues.band_radii * radius)
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

    # Contrast-to-noise of blood against muscle: half the summed interquartile ranges is a robust noise scale.
    spread = 0.5 * (
        np.subtract(*np.percentile(image[cavity], [75, 25])) + np.subtract(*np.percentile(image[healthy], [75, 25]))
    )
    cnr = contrast / max(float(spread), 1e-6)
    return (
        share(np.abs(values - blood) < cues.blood_tolerance * contrast),
        share(values < muscle - cues.air_margin * contrast),
        cnr,
    )


def _contrast_support(cnr: float) -> float:
    """0 at CNR 1, 1 at CNR 3, linear between."""
    return float(np.clip((cnr - _CNR_NONE) / (_CNR_FULL - _CNR_NONE), 0.0, 1.0))


def _window_sums(profile: np.ndarray, window_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Circular box sums over the septal window and the screen angle of each window's centre."""
    width = int(round(window_deg / _BIN_DEG))
    wrapped = np.concatenate([profile, profile[: width - 1]])
    sums = np.convolve(wrapped, np.ones(width), mode="valid")[:_N_BINS]
    return sums, ((np.arange(_N_BINS) + width / 2.0) * _BIN_DEG) % 360.0


def _score(blood: np.ndarray, air: np.ndarray, lung_weight: float) -> np.ndarray:
    # Lung opposite a sector supports it as septum: shift the air profile by half a turn.
    return blood + lung_weight * np.roll(air, _N_BINS // 2)


def estimate_septum_from_image(
    images: np.ndarray, label_maps: np.ndarray, cues: ImageCues = ImageCues()
) -> ImageEstimate | None:
    """Screen angle of the septum centre and a confidence in [0, 1]; None when no slice can be read."""
    blood_total, air_total = np.zeros(_N_BINS), np.zeros(_N_BINS)
    per_slice, cnrs = [], []
    for image, label_map in zip(images, label_maps, strict=True):
        fractions = _sector_fractions(np.asarray(image, dtype=np.float64), label_map, cues)
        if fractions is None:
            continue
        blood, air, cnr = fractions
        weight = max(_contrast_support(cnr), 0.05) if cues.contrast_weighted else 1.0
        blood_total += weight * blood
        air_total += weight * air
        cnrs.append(cnr)
        sums, centres = _window_sums(_score(blood, air, cues.lung_weight), cues.window_deg)
        per_slice.append(centres[int(np.argmax(sums))])
    if not per_slice:
        return None
    sums, centres = _window_sums(_score(blood_total, air_total, cues.lung_weight), cues.window_deg)
    best = int(np.argmax(sums))
    radians = np.radians(per_slice)
    agreement = float(np.hypot(np.cos(radians).sum(), np.sin(radians).sum()) / len(per_slice))
    contrast = _contrast_support(float(np.median(cnrs)))
    # An estimate is as trustworthy as its weaker support: blood told apart from muscle, and slices agreeing.
    confidence = min(contrast, agreement)
    return ImageEstimate(float(centres[best]), round(float(np.clip(confidence, 0.0, 1.0)), 4), len(per_slice))
