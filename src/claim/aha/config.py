"""How a caller asks for AHA geometry: orientation source, handedness, label mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claim.aha.geometry import PatientGeometry, compute_geometry
from claim.aha.orientation import estimate_orientation, parse_orientation
from claim.aha.orientation_file import orientation_file_path, orientation_from_entry, read_orientation_file
from claim.aha.segments import Handedness
from claim.data.patient import Patient
from claim.errors import ClaimError

__all__ = ["AhaConfig", "geometry_for", "sector_balance"]


@dataclass(frozen=True)
class AhaConfig:
    orientation: str = "auto"  # auto | rv | image | angle:DEG | file:PATH
    handedness: Handedness = Handedness.CCW
    label_mapping: dict[int, int] | None = None
    bullseye: bool = True


def geometry_for(patient: Patient, config: AhaConfig) -> PatientGeometry:
    """Geometry of ``patient``; with ``file:PATH`` its angle comes from the file, else from the estimate (auto).

    A patient whose geometry cannot be found is named in the error (with its first file), so a user knows which
    of a folder's patients to fix or orient by hand.
    """
    try:
        return _geometry(patient, config)
    except ClaimError as exc:
        where = f" ({patient.image_paths[0]})" if patient.image_paths else ""
        raise ClaimError(f"patient {patient.patient_id}{where}: {exc}") from exc


def _geometry(patient: Patient, config: AhaConfig) -> PatientGeometry:
    kind, angle = parse_orientation(config.orientation)
    path = orientation_file_path(config.orientation)
    if path is not None:
        entry = read_orientation_file(path).get(patient.patient_id)
        orientation = (
            orientation_from_entry(entry, config.handedness)
            if entry is not None
            else estimate_orientation(patient.images, patient.label_maps, handedness=config.handedness)
        )
        return compute_geometry(patient, orientation=orientation)
    return compute_geometry(patient, orientation_kind=kind, angle_deg=angle, handedness=config.handedness)


def sector_balance(geometry: PatientGeometry) -> dict[str, float]:
    """Coefficient of variation of myocardial pixels over the six sectors of the basal and mid rings."""
    counts = geometry.segment_pixel_counts()
    result = {}
    for ring, first in (("basal", 1), ("mid", 7)):
        sectors = np.array([counts[first + k] for k in range(6)], dtype=float)
        if sectors.sum() > 0:
            result[ring] = float(sectors.std() / sectors.mean())
    return result
