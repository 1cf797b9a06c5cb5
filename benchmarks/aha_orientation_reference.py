"""The image orientation estimate against the RV insertion angles annotated on real EMIDEC slices.

Reference: tests/aha/data/emidec_rv_insertion.csv (readers 1 and 2) and emidec_rv_insertion_blind.csv (readers 3
and 4, blind, all 75 patients); how they were made: tests/aha/data/README.md. Reports the share of patients whose
septum direction lies within 45 degrees of the annotated one, the median anterior-insertion error under either
handedness, and how many of the gross (> 45 degree) errors are flagged low confidence. Scored against each reader,
against the mean of readers 1 and 2 where they agree within 45 degrees (``both_readers_agree``) and of readers 3 and
4 (``blind_readers_agree``); with the readers' agreement with each other beside.
``loo_`` numbers choose the low-confidence threshold by leave-one-out: for each patient, the smallest
threshold that flags >= 80 % of the other patients' gross errors, applied to the patient left out.
A patient is flagged as ``claim aha`` flags it: its own confidence below the threshold, or its estimate far from
the other patients' of ``--data`` (``claim.aha.cohort``, computed over every patient there, annotated or not);
``gross_septum_flagged_by_confidence`` counts the first reason alone.

``--variants`` screens other settings of the estimate's cues (``claim.aha.orientation_image.ImageCues``) one at a
time, each scored against every reader and by the territory test (``benchmarks/aha_territory.py``: the
scar-in-one-territory share under the estimate minus its rotation average, with a patient-bootstrap sd, over every
pathological patient): a change has to help beyond the reference it was looked at on. Saves
``aha_orientation_variants.json``.

Usage: python benchmarks/aha_orientation_reference.py [--data ../shared/data/emidec-slices] [--out outputs/benchmarks]
       [--variants]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from claim.aha.cohort import check_cohort
from claim.aha.geometry import compute_geometry
from claim.aha.orientation import estimate_orientation
from claim.aha.orientation_image import ImageCues
from claim.aha.segments import Handedness
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.labels import INFARCT_LABELS

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "aha" / "data" / "emidec_rv_insertion.csv"
BLIND_REFERENCE = REPO / "tests" / "aha" / "data" / "emidec_rv_insertion_blind.csv"
# Column suffix of each reader (tests/aha/data/README.md): readers 1 and 2 in REFERENCE, 3 and 4 in BLIND_REFERENCE.
READERS = {"reader1": "", "reader2": "_r2", "reader3": "_r3", "reader4": "_r4"}
# Consensus references: the mean of two readers' directions where they agree within 45 degrees.
PAIRS = {"agreed": ("reader1", "reader2"), "blind_agreed": ("reader3", "reader4")}
# One change from the defaults each, in both directions where it has two.
VARIANTS = {"default": {}, "band 0.25": {"band_radii": 0.25}, "band 0.5": {"band_radii": 0.5},
            "blood tolerance 0.25": {"blood_tolerance": 0.25}, "blood tolerance 0.5": {"blood_tolerance": 0.5},
            "air margin 0.3": {"air_margin": 0.3}, "lung weight 1": {"lung_weight": 1.0},
            "lung weight 3": {"lung_weight": 3.0}, "window 90": {"window_deg": 90.0},
            "contrast-weighted slices": {"contrast_weighted": True}}


def _error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _septum(start: float, end: float) -> float:
    return (start + ((end - start) % 360.0) / 2.0) % 360.0


def _circular_mean(angles_deg: list[float]) -> float:
    return float(np.degrees(np.angle(np.exp(1j * np.radians(angles_deg)).sum())) % 360.0)


def _scores(records: list[dict], reader: str) -> dict:
    """Bars of issue #15 for the patients ``reader`` annotated (in-sample flag and leave-one-out threshold)."""
    rows = [r for r in records if reader in r["readers"]]
    if not rows:
        return {"patients": 0}
    septum = np.array([r["readers"][reader]["septum_error"] for r in rows])
    low = np.array([r["low_confidence"] for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    gross = septum > 45.0
    result: dict = {"patients": len(rows), "septum_within_45": float(np.mean(~gross))}
    for key in ("insertion_error_ccw", "insertion_error_cw"):
        errors = np.array([r["readers"][reader][key] for r in rows])
        result[f"median_{key}"] = float(np.median(errors))
    own = np.array([r["low_confidence_by_confidence"] for r in rows])
    result |= {"gross_septum": int(gross.sum()), "gross_septum_flagged": int((gross & low).sum()),
               "gross_septum_flagged_by_confidence": int((gross & own).sum()), "flagged": int(low.sum()),
               "flagged_by_confidence": int(own.sum())}
    loo = []
    for i in range(len(rows)):
        others = np.delete(np.arange(len(rows)), i)
        bad = np.sort(confidence[others][gross[others]])
        # The smallest threshold flagging >= 80 % of the others' gross errors (flag: confidence < threshold);
        # cohort outliers stay flagged (that rule has no threshold fitted to the reference).
        need = int(np.ceil(0.8 * len(bad)))
        threshold = np.nextafter(bad[need - 1], np.inf) if need else 0.0
        loo.append(confidence[i] < threshold or rows[i]["cohort_outlier"])
    loo = np.array(loo)
    result |= {"loo_gross_septum_flagged": int((gross & loo).sum()), "loo_flagged": int(loo.sum())}
    return result


def read_reference() -> dict[str, dict]:
    """Both annotation files merged per patient: reader 1 and 2's columns where they read it, 3 and 4's for all."""
    rows: dict[str, dict] = {}
    for path in (REFERENCE, BLIND_REFERENCE):
        for row in csv.DictReader(path.open()):
            rows.setdefault(row["patient_id"], {}).update(row)
    return rows


def reference_records(rows: dict[str, dict], patients: dict, cues: ImageCues = ImageCues()) -> list[dict]:
    """Per annotated patient: each reader's septum and insertion errors of the estimate, and its confidence.

    Every patient of ``patients`` is estimated once: all of them form the cohort whose outliers ``claim aha``
    would flag (``claim.aha.cohort``), the annotated ones are also scored."""
    records = []
    estimates = {pid: estimate_orientation(p.images, p.label_maps, cues=cues) for pid, p in patients.items()}
    check = check_cohort(list(estimates.items()))
    outliers = set(check.outliers) if check is not None else set()
    for pid, row in rows.items():
        patient = patients[pid]
        ccw = estimates[pid]
        cw = estimate_orientation(patient.images, patient.label_maps, handedness=Handedness.CW, cues=cues)
        readers = {}
        for reader, suffix in READERS.items():
            if not row.get(f"arc_start_deg{suffix}"):
                continue
            start, end = float(row[f"arc_start_deg{suffix}"]), float(row[f"arc_end_deg{suffix}"])
            readers[reader] = {
                "septum_deg": _septum(start, end),
                "start": start,
                "end": end,
                "septum_error": _error(ccw.insertion_screen_deg + 60.0, _septum(start, end)),
                "insertion_error_ccw": _error(ccw.insertion_screen_deg, start),
                "insertion_error_cw": _error(cw.insertion_screen_deg, end),
                "certainty": row[f"certainty{suffix}"],
            }
        for pair, (first, second) in PAIRS.items():
            if first not in readers or second not in readers:
                continue
            a, b = readers[first], readers[second]
            if _error(a["septum_deg"], b["septum_deg"]) <= 45.0:
                # Where two readers agree, their mean direction is the consensus reference.
                mean = _circular_mean([a["septum_deg"], b["septum_deg"]])
                start, end = (_circular_mean([a[key], b[key]]) for key in ("start", "end"))
                readers[pair] = {"septum_error": _error(ccw.insertion_screen_deg + 60.0, mean),
                                 "insertion_error_ccw": _error(ccw.insertion_screen_deg, start),
                                 "insertion_error_cw": _error(cw.insertion_screen_deg, end),
                                 "certainty": "unsure" if "unsure" in (a["certainty"], b["certainty"]) else "fair"}
        records.append(
            {
                "patient_id": pid,
                "readers": readers,
                "estimate_septum_deg": (ccw.insertion_screen_deg + 60.0) % 360.0,
                "confidence": ccw.confidence,
                # getattr: older versions, scored for comparison, had no flag
                "low_confidence_by_confidence": bool(getattr(ccw, "low_confidence", False)),
                "cohort_outlier": pid in outliers,
                "low_confidence": bool(getattr(ccw, "low_confidence", False)) or pid in outliers,
            }
        )
    return records


def _between(records: list[dict], first: str, second: str) -> dict:
    """Two readers' agreement on the patients both read: share of septum directions within 45 degrees."""
    pairs = [r["readers"] for r in records if first in r["readers"] and second in r["readers"]]
    between = np.array([_error(p[first]["septum_deg"], p[second]["septum_deg"]) for p in pairs])
    return {"patients": len(pairs), "septum_within_45": float(np.mean(between <= 45.0)),
            "median_septum_difference": float(np.median(between))}


def _not_unsure(records: list[dict], reader: str) -> list[dict]:
    return [r for r in records if reader in r["readers"] and r["readers"][reader]["certainty"] != "unsure"]


def territory_gain(patients: list, cues: ImageCues) -> dict:
    """The territory test of benchmarks/aha_territory.py (30 degree steps, 2000 resamples) over the patients
    with scar, under the estimate read with ``cues``."""
    # A sibling script (benchmarks/ is on the path when this one runs).
    from aha_territory import best_territory_shares, gain_over_rotations, patient_resamples

    rotations = np.arange(0.0, 360.0, 30.0)
    table = np.array([best_territory_shares(
        compute_geometry(p, orientation=estimate_orientation(p.images, p.label_maps, cues=cues)),
        p.label_maps, rotations) for p in patients if np.isin(p.label_maps, INFARCT_LABELS).any()])
    gain = gain_over_rotations(table)
    boot = gain[patient_resamples(len(gain), 2000)].mean(axis=1)
    return {"share_under_estimate": float(table[:, 0].mean()), "gain_over_rotation_average": float(gain.mean()),
            "gain_bootstrap_sd": float(boot.std()), "patients": len(gain)}


def screen_variants(rows: dict[str, dict], patients: dict) -> dict:
    """Every entry of VARIANTS scored against every reader and by the territory test."""
    everyone = list(patients.values())
    results = {}
    for name, change in VARIANTS.items():
        cues = ImageCues(**change)
        records = reference_records(rows, patients, cues)
        gross = [r["patient_id"] + ("*" if r["low_confidence"] else "") for r in records
                 if r["readers"].get("blind_agreed", {}).get("septum_error", 0.0) > 45.0]
        results[name] = {"cues": change, "territory": territory_gain(everyone, cues),
                         "blind_agreed_gross_errors": gross}
        results[name] |= {reader: _scores(records, reader) for reader in (*READERS, *PAIRS)}
        scored, t = results[name], results[name]["territory"]
        print(f"{name:22s} within 45: " + " ".join(f"{reader} {scored[reader]['septum_within_45']:.3f}"
                                                 for reader in (*READERS, "blind_agreed"))
              + f" | blind_agreed median {scored['blind_agreed']['median_insertion_error_ccw']:.1f}, gross "
              f"{scored['blind_agreed']['gross_septum']} ({scored['blind_agreed']['gross_septum_flagged']} flagged)"
              f" | territory gain {t['gain_over_rotation_average']:+.3f} (sd {t['gain_bootstrap_sd']:.3f})"
              f" | {' '.join(gross)}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    parser.add_argument("--variants", action="store_true", help="screen other settings of the estimate's cues")
    args = parser.parse_args()
    rows = read_reference()
    patients = {p.patient_id: p for p in read_dataset(args.data, progress=False)}
    if args.variants:
        write_json(args.out / "aha_orientation_variants.json", screen_variants(rows, patients))
        return
    records = reference_records(rows, patients)
    results: dict = {reader: _scores(records, reader) for reader in READERS}
    results |= {"reader1_on_reader2_patients": _scores([r for r in records if "reader2" in r["readers"]], "reader1"),
                "both_readers_agree": _scores(records, "agreed"),
                "blind_readers_agree": _scores(records, "blind_agreed"),
                "inter_reader": _between(records, "reader1", "reader2"),
                "inter_reader_blind": _between(records, "reader3", "reader4"),
                "reader1_vs_reader3": _between(records, "reader1", "reader3"),
                "reader1_vs_reader4": _between(records, "reader1", "reader4"),
                "reader1_sure_or_fair": _scores(_not_unsure(records, "reader1"), "reader1"),
                "blind_agreed_sure_or_fair": _scores(_not_unsure(records, "blind_agreed"), "blind_agreed"),
                "blind_agreed_on_reader1_patients": _scores(
                    [r for r in records if "reader1" in r["readers"]], "blind_agreed"),
                "blind_agreed_on_new_patients": _scores(
                    [r for r in records if "reader1" not in r["readers"]], "blind_agreed")}
    for name, block in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in block.items()))
    write_json(args.out / "aha_orientation_reference.json", results | {"per_patient": records})


if __name__ == "__main__":
    main()
