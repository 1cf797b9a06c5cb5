"""`claim aha`: geometry for every patient of a folder -> segment maps, bull's-eyes and summary.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from claim.aha.config import AhaConfig, geometry_for, sector_balance
from claim.data.io import write_json
from claim.data.layouts import check_output_location, read_dataset, write_label_maps
from claim.report.figures import save_bullseye

__all__ = ["run_aha"]


def run_aha(data_dir: Path, out_dir: Path, config: AhaConfig = AhaConfig(), *, progress: bool = True) -> dict:
    """Compute AHA geometry for every patient in ``data_dir`` and write outputs mirroring its layout.

    Writes segment maps (PNG: ``OUT/segments/<name>.png``; EMIDEC: ``OUT/<Case>/Segments/<Case>.nii.gz``;
    nnU-Net: ``OUT/segmentsTr/<case>.nii.gz``), ``OUT/bullseye/<patient>.png`` and ``OUT/summary.json``.

    Returns:
        The summary written to ``summary.json``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_output_location(out_dir, data_dir)
    patients = read_dataset(data_dir, label_mapping=config.label_mapping, progress=progress)
    records = []
    for patient in tqdm(patients, desc="AHA geometry", unit="patient", disable=not progress):
        geometry = geometry_for(patient, config)
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
    summary = {
        "data": str(data_dir),
        "layout": patients[0].layout.value,
        "orientation": config.orientation,
        "handedness": config.handedness.value,
        "median_sector_cv": float(np.median(cvs)) if cvs else None,
        "patients": records,
    }
    write_json(out_dir / "summary.json", summary)
    return summary
