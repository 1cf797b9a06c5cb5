"""A folder's orientations checked against each other: image estimates far from their peers are flagged.

Scans acquired with one protocol show the heart at similar screen angles: on the 75 EMIDEC patients of
``../shared/data/emidec-slices`` the image estimates of the septum direction have a robust spread of 30 degrees
around their consensus. An estimate far outside that spread is more likely wrong than the patient is unusual, even
when its own cues (blood-muscle contrast, agreement of the slices) look sound: on the annotated EMIDEC reference
(tests/aha/data) one of the four septum errors over 45 degrees had confidence 0.42 but lay 100 degrees from its
peers. Such estimates are flagged low confidence, with the reason recorded, and their angle is left as it is:
whether the patient or the estimate is unusual is for a person to decide on the orientation sheet.

The consensus is the circular median of every patient's septum direction (given angles included: they are the best
evidence of where the protocol puts the heart); only image estimates are flagged. The spread is 1.4826 times the
median angular deviation from the consensus (the median absolute deviation scaled to a normal sd, so the outliers
themselves barely widen it), and an estimate is an outlier beyond twice that, never closer than
``MIN_THRESHOLD_DEG``. Fewer than ``MIN_PATIENTS`` patients are too few to define a consensus: nothing is flagged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from claim.aha.orientation import Orientation, OrientationMethod
from claim.aha.segments import SEPTUM_CENTRE_DEG

__all__ = ["CohortCheck", "check_cohort", "flag_cohort_outliers", "MIN_PATIENTS", "MIN_THRESHOLD_DEG"]

MIN_PATIENTS = 8
MIN_THRESHOLD_DEG = 45.0  # the septum-side error the estimate is judged by: closer than that is never an outlier
_SPREAD_FACTOR = 2.0
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class CohortCheck:
    """Attributes:
    consensus_deg: circular median septum screen angle of the folder's patients.
    spread_deg: robust sd of the septum directions around it.
    threshold_deg: deviation beyond which an image estimate is an outlier.
    patients: patients the consensus was computed over.
    deviations_deg: each patient's angular distance from the consensus.
    outliers: image-estimated patients beyond ``threshold_deg``, in input order.
    """

    consensus_deg: float
    spread_deg: float
    threshold_deg: float
    patients: int
    deviations_deg: dict[str, float]
    outliers: tuple[str, ...]

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        record["deviations_deg"] = {k: round(v, 1) for k, v in self.deviations_deg.items()}
        record["outliers"] = list(self.outliers)
        return record


def _angular_distance(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


def check_cohort(orientations: Sequence[tuple[str, Orientation]]) -> CohortCheck | None:
    """The consensus, spread and outliers of ``(patient_id, orientation)`` pairs; None below ``MIN_PATIENTS``."""
    if len(orientations) < MIN_PATIENTS:
        return None
    septa = np.array([o.screen_deg(SEPTUM_CENTRE_DEG) for _, o in orientations])
    # The circular median (the direction with the least summed angular distance, on a 0.5 degree grid): unlike the
    # circular mean, the outliers it is meant to find do not pull it towards them.
    grid = np.arange(0.0, 360.0, 0.5)
    consensus = float(grid[np.argmin(_angular_distance(septa[None, :], grid[:, None]).sum(axis=1))])
    deviations = _angular_distance(septa, consensus)
    spread = _MAD_TO_SD * float(np.median(deviations))
    threshold = max(_SPREAD_FACTOR * spread, MIN_THRESHOLD_DEG)
    outliers = tuple(pid for (pid, o), d in zip(orientations, deviations, strict=True)
                     if o.method == OrientationMethod.IMAGE and d > threshold)
    return CohortCheck(round(consensus, 2), round(spread, 2), round(threshold, 2), len(orientations),
                       {pid: float(d) for (pid, _), d in zip(orientations, deviations, strict=True)}, outliers)


def flag_cohort_outliers(
    orientations: Sequence[tuple[str, Orientation]],
) -> tuple[list[tuple[str, Orientation]], CohortCheck | None]:
    """The same pairs, each outlier marked ``low_confidence`` and ``cohort_outlier`` (angles unchanged), and the
    check that found them."""
    check = check_cohort(orientations)
    if check is None or not check.outliers:
        return list(orientations), check
    outliers = set(check.outliers)
    return [(pid, dataclasses.replace(o, low_confidence=True, cohort_outlier=True) if pid in outliers else o)
            for pid, o in orientations], check
