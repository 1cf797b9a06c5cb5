"""`claim aha`: geometry for every patient of a folder -> segment maps, bull's-eyes and summary.json."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from claim.aha.cohort import CohortCheck, flag_cohort_outliers
from claim.aha.config import AhaConfig, geometry_for, sector_balance
from claim.aha.geometry import PatientGeometry, mid_ventricular_slice
from claim.aha.orientation import Orientation
from claim.aha.orientation_file import write_orientation_file
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.data.write import check_output_location, write_label_maps
from claim.labels import Label
from claim.output import check_new_file, staged_output
from claim.report.figures import save_bullseye
from claim.report.orientation import OrientationTile, save_orientation_sheet

__all__ = ["run_aha", "orientation_tile", "flag_outlier_entries", "orientation_overview"]

OrientationEntry = tuple[str, Orientation, OrientationTile | None]


def orientation_tile(patient: Patient, geometry: PatientGeometry) -> OrientationTile | None:
    """The orientation-sheet tile of one patient: its mid-ventricular slice and the origin its geometry uses."""
    s = mid_ventricular_slice(patient.label_maps)
    if s is None or not np.isfinite(geometry.centres_rc[s]).all():
        return None
    label_map = patient.label_maps[s]
    heart = np.isin(label_map, (Label.CAVITY, Label.MYOCARDIUM, Label.INFARCT, Label.MVO))
    return OrientationTile(
        patient.patient_id,
        patient.images[s],
        heart,
        (float(geometry.centres_rc[s][0]), float(geometry.centres_rc[s][1])),
        geometry.orientation,
        low_confidence=geometry.orientation.low_confidence,
    )


def flag_outlier_entries(entries: Sequence[OrientationEntry]) -> tuple[list[OrientationEntry], CohortCheck | None]:
    """``(patient_id, orientation, tile)`` entries of one folder with its cohort outliers flagged low confidence
    (``claim.aha.cohort``), tiles included, and the check; angles are unchanged."""
    flagged, check = flag_cohort_outliers([(pid, orientation) for pid, orientation, _ in entries])
    out = []
    for (pid, orientation), (_, _, tile) in zip(flagged, entries, strict=True):
        if tile is not None:
            tile = dataclasses.replace(tile, orientation=orientation, low_confidence=orientation.low_confidence)
        out.append((pid, orientation, tile))
    return out, check


def orientation_overview(
    entries: Sequence[OrientationEntry], sheet_path: Path, *, title: str, cohort: CohortCheck | None = None
) -> dict:
    """Write the orientation sheet of ``(patient_id, orientation, tile)`` entries (as ``flag_outlier_entries``
    returns them, with its ``cohort`` check); return what a summary says.

    Tiles, not geometries, are kept per patient (one slice each), so a large folder does not hold every
    patient's geometry in memory. The keys (``orientation_methods``, ``orientation_low_confidence``,
    ``orientation_cohort``, ``orientation_per_patient``) are those of ``claim aha``'s ``summary.json``, which
    ``claim.report.sections.add_orientation_section`` reads.
    """
    save_orientation_sheet([tile for _, _, tile in entries if tile is not None], Path(sheet_path), title=title)
    methods = [orientation.method.value for _, orientation, _ in entries]
    return {
        "orientation_methods": {method: methods.count(method) for method in sorted(set(methods))},
        "orientation_low_confidence": [pid for pid, orientation, _ in entries if orientation.low_confidence],
        "orientation_cohort": cohort.to_json() if cohort is not None else None,
        "orientation_per_patient": {pid: orientation.to_json() for pid, orientation, _ in entries},
    }


def _config_record(config: AhaConfig) -> dict:
    return {"orientation": config.orientation, "handedness": config.handedness.value,
            "label_mapping": config.label_mapping, "bullseye": config.bullseye}


def run_aha(
    data_dir: Path,
    out_dir: Path,
    config: AhaConfig = AhaConfig(),
    *,
    write_orientation: Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Compute AHA geometry for every patient in ``data_dir`` and write outputs mirroring its layout.

    Writes segment maps (PNG: ``OUT/segments/<name>.png``; EMIDEC: ``OUT/<Case>/Segments/<Case>.nii.gz``;
    nnU-Net: ``OUT/segmentsTr/<case>.nii.gz``), ``OUT/bullseye/<patient>.png``, ``OUT/orientation.png`` (one
    tile per patient showing the angle origin used) and ``OUT/summary.json``; with ``write_orientation``
    also the origins used as an orientation file (edit it, then pass it back with ``--orientation file:PATH``).

    Returns:
        The summary written to ``summary.json``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_output_location(out_dir, data_dir)
    if write_orientation is not None:
        check_new_file(write_orientation, overwrite=overwrite, flag="--write-orientation")
    with staged_output(out_dir, "aha", overwrite=overwrite, config=_config_record(config),
                       inputs=[data_dir]) as out_dir:
        patients = read_dataset(data_dir, label_mapping=config.label_mapping, progress=progress)
        records, computed = [], []
        for patient in tqdm(patients, desc="AHA geometry", unit="patient", disable=not progress):
            geometry = geometry_for(patient, config)
            computed.append((patient.patient_id, geometry.orientation, orientation_tile(patient, geometry)))
            written = write_label_maps(patient, out_dir, geometry.segment_maps, role="segment")
            record = geometry.summary(patient.label_maps)
            record["sector_cv"] = sector_balance(geometry)
            record["segment_files"] = [str(p.relative_to(out_dir)) for p in written]
            if config.bullseye:
                myo = record["myocardium_pixels"]
                scar_fraction = {k: (record["scar_pixels"][k] / myo[k]) if myo[k] else np.nan for k in myo}
                path = out_dir / "bullseye" / f"{patient.patient_id}.png"
                save_bullseye(
                    [
                        ("myocardium (pixels)", myo, {"cmap": "Blues"}),
                        (
                            "scar fraction",
                            scar_fraction,
                            {"cmap": "magma", "vmin": 0.0, "vmax": 1.0, "value_format": "{:.2f}"},
                        ),
                    ],
                    path,
                    suptitle=f"{patient.patient_id}  (orientation: {geometry.orientation.method.value})",
                )
                record["bullseye"] = str(path.relative_to(out_dir))
            records.append(record)
        cvs = [cv for r in records for cv in r["sector_cv"].values()]
        sheet = out_dir / "orientation.png"
        computed, cohort = flag_outlier_entries(computed)
        for record, (_, orientation, _) in zip(records, computed, strict=True):
            record["orientation"] = orientation.to_json()
        overview = orientation_overview(computed, sheet, title=f"AHA angle origin: {data_dir.name}", cohort=cohort)
        used = [(pid, orientation) for pid, orientation, _ in computed]
        summary = {
            "data": str(data_dir),
            "layout": patients[0].layout.value,
            "orientation": config.orientation,
            "handedness": config.handedness.value,
            "orientation_methods": overview["orientation_methods"],
            "orientation_low_confidence": overview["orientation_low_confidence"],
            "orientation_cohort": overview["orientation_cohort"],
            "orientation_sheet": str(sheet.relative_to(out_dir)),
            "median_sector_cv": float(np.median(cvs)) if cvs else None,
            "patients": records,
        }
        if write_orientation is not None:
            summary["orientation_file_written"] = str(write_orientation_file(write_orientation, used))
        write_json(out_dir / "summary.json", summary)
        return summary
