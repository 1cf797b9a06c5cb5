"""The image orientation estimate against the RV insertion angles annotated on real EMIDEC slices.

Reference: tests/aha/data/emidec_rv_insertion.csv (how it was made: tests/aha/data/README.md). Reports the share
of patients whose septum direction lies within 45 degrees of the annotated one, the median anterior-insertion
error under either handedness, and how many of the gross (> 45 degree) errors are flagged low confidence.

Usage: python benchmarks/aha_orientation_reference.py [--data ../shared/data/emidec-slices] [--out outputs/benchmarks]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from claim.aha.orientation import estimate_orientation
from claim.aha.segments import Handedness
from claim.data.io import write_json
from claim.data.layouts import read_dataset

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "aha" / "data" / "emidec_rv_insertion.csv"


def _error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    args = parser.parse_args()
    rows = list(csv.DictReader(REFERENCE.open()))
    patients = {p.patient_id: p for p in read_dataset(args.data, progress=False)}
    records = []
    for row in rows:
        patient = patients[row["patient_id"]]
        ccw = estimate_orientation(patient.images, patient.label_maps)
        cw = estimate_orientation(patient.images, patient.label_maps, handedness=Handedness.CW)
        start, end = float(row["arc_start_deg"]), float(row["arc_end_deg"])
        septum = (start + ((end - start) % 360.0) / 2.0) % 360.0
        records.append(
            {
                "patient_id": row["patient_id"],
                "certainty": row["certainty"],
                "septum_error": _error(ccw.insertion_screen_deg + 60.0, septum),
                "insertion_error_ccw": _error(ccw.insertion_screen_deg, start),
                "insertion_error_cw": _error(cw.insertion_screen_deg, end),
                "confidence": ccw.confidence,
                # getattr: older versions, scored for comparison, had no flag
                "low_confidence": bool(getattr(ccw, "low_confidence", False)),
            }
        )
    septum = np.array([r["septum_error"] for r in records])
    low = np.array([r["low_confidence"] for r in records])
    results: dict = {"patients": len(records), "septum_within_45": float(np.mean(septum <= 45.0))}
    for key in ("insertion_error_ccw", "insertion_error_cw"):
        errors = np.array([r[key] for r in records])
        results[f"median_{key}"] = float(np.median(errors))
        results[f"gross_{key}"] = int((errors > 45.0).sum())
        results[f"gross_{key}_flagged"] = int(((errors > 45.0) & low).sum())
    results["gross_septum"] = int((septum > 45.0).sum())
    results["gross_septum_flagged"] = int(((septum > 45.0) & low).sum())
    results["flagged"] = int(low.sum())
    sure = np.array([r["certainty"] != "unsure" for r in records])
    results["septum_within_45_sure_or_fair"] = float(np.mean(septum[sure] <= 45.0))
    for key, value in results.items():
        print(f"{key:36s} {value}")
    write_json(args.out / "aha_orientation_reference.json", results | {"per_patient": records})


if __name__ == "__main__":
    main()
