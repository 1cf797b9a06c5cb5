"""The image orientation estimate against the RV insertion angles annotated on real EMIDEC slices.

Reference: tests/aha/data/emidec_rv_insertion.csv (readers 1 and 2) and emidec_rv_insertion_blind.csv (readers 3
and 4, blind, all 75 patients); how they were made: tests/aha/data/README.md. Reports the share of patients whose
septum direction lies within 45 degrees of the annotated one, the median signed septum error (estimate minus
reference, counterclockwise positive: a bias in one screen direction), the median anterior-insertion error under
either handedness, and how many of the gross (> 45 degree) errors are flagged low confidence. Scored against each
reader, against the mean of readers 1 and 2 where they agree within 45 degrees (``both_readers_agree``), of
readers 3 and 4 (``blind_readers_agree``), and of every reader who read the patient (``all_readers_mean``, no
agreement asked); with the readers' agreement with each other beside.
``loo_`` numbers choose the low-confidence threshold by leave-one-out: for each patient, the smallest
threshold that flags >= 80 % of the other patients' gross errors, applied to the patient left out.
A patient is flagged as ``claim aha`` flags it: its own confidence below the threshold, or its estimate far from
the other patients' of ``--data`` (``claim.aha.cohort``, computed over every patient there, annotated or not);
``gross_septum_flagged_by_confidence`` counts the first reason alone.

``--variants`` screens other settings of the estimate's cues (``claim.aha.orientation_image.ImageCues``) one at a
time, each scored against every reader and by the territory test (``benchmarks/aha_territory.py``: the
scar-in-one-territory share under the estimate minus its rotation average, with a patient-bootstrap sd, over every
annotated pathological patient, and its paired difference from the defaults with a 95 % CI): a change has to help
beyond the reference it was looked at on. The blind readers' own angles take the territory test too, which says
how finely the test can tell origins apart. Saves ``aha_orientation_variants.json``.

``--select-lung-weight`` chooses the lung cue's weight by cross-validation against the blind readers' mean (and
against every reader's mean): 5 patient folds, repeated 20 times with seeded shuffles; on each fold's other
patients the weight of LUNG_WEIGHTS with the most septum directions within 45 degrees wins (ties: the smaller
median septum error, then the smaller weight), and the held-out patients are scored with it. Reports
the held-out share within 45 degrees, gross errors and how many are flagged, the median insertion error (ccw), and
how often each weight was chosen. Saves ``aha_lung_weight_selection.json``.

Usage: python benchmarks/aha_orientation_reference.py [--data ../shared/data/emidec-slices] [--out outputs/benchmarks]
       [--variants] [--select-lung-weight]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from claim.aha.cohort import check_cohort
from claim.aha.geometry import compute_geometry
from claim.aha.orientation import circular_mean_deg, estimate_orientation
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
# Every reader who read a patient, averaged without asking them to agree.
ALL_READERS = "all_readers"
# One change from the defaults each, in both directions where it has two.
VARIANTS = {"default": {}, "band 0.25": {"band_radii": 0.25}, "band 0.5": {"band_radii": 0.5},
            "blood tolerance 0.25": {"blood_tolerance": 0.25}, "blood tolerance 0.5": {"blood_tolerance": 0.5},
            "air margin 0.3": {"air_margin": 0.3}, "lung weight 0.25": {"lung_weight": 0.25},
            "lung weight 1": {"lung_weight": 1.0}, "lung weight 2 (before)": {"lung_weight": 2.0},
            "window 90": {"window_deg": 90.0}, "contrast-weighted slices": {"contrast_weighted": True}}
# The grid --select-lung-weight chooses from (0: the blood cue alone).
LUNG_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def _signed(a: float, b: float) -> float:
    """``a - b`` in (-180, 180]: positive when ``a`` lies counterclockwise of ``b`` on screen."""
    return -((b - a + 180.0) % 360.0 - 180.0)


def _error(a: float, b: float) -> float:
    return abs(_signed(a, b))


def _septum(start: float, end: float) -> float:
    return (start + ((end - start) % 360.0) / 2.0) % 360.0


def _circular_mean(angles_deg: list[float]) -> float:
    return circular_mean_deg(np.asarray(angles_deg))[0]


def _scores(records: list[dict], reader: str) -> dict:
    """Bars of issue #15 for the patients ``reader`` annotated (in-sample flag and leave-one-out threshold)."""
    rows = [r for r in records if reader in r["readers"]]
    if not rows:
        return {"patients": 0}
    septum = np.array([r["readers"][reader]["septum_error"] for r in rows])
    low = np.array([r["low_confidence"] for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    gross = septum > 45.0
    # A bias shows as a signed median far from 0: the estimate off the reference in one screen direction.
    signed = [r["readers"][reader]["septum_signed_error"] for r in rows]
    result: dict = {"patients": len(rows), "septum_within_45": float(np.mean(~gross)),
                    "median_signed_septum_error": float(np.median(signed))}
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
                "septum_signed_error": _signed(ccw.insertion_screen_deg + 60.0, _septum(start, end)),
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
                                 "septum_signed_error": _signed(ccw.insertion_screen_deg + 60.0, mean),
                                 "insertion_error_ccw": _error(ccw.insertion_screen_deg, start),
                                 "insertion_error_cw": _error(cw.insertion_screen_deg, end),
                                 "certainty": "unsure" if "unsure" in (a["certainty"], b["certainty"]) else "fair"}
        read_by = [readers[reader] for reader in READERS if reader in readers]
        mean = _circular_mean([r["septum_deg"] for r in read_by])
        start, end = (_circular_mean([r[key] for r in read_by]) for key in ("start", "end"))
        readers[ALL_READERS] = {"septum_error": _error(ccw.insertion_screen_deg + 60.0, mean),
                                "septum_signed_error": _signed(ccw.insertion_screen_deg + 60.0, mean),
                                "insertion_error_ccw": _error(ccw.insertion_screen_deg, start),
                                "insertion_error_cw": _error(cw.insertion_screen_deg, end),
                                "certainty": "unsure" if any(r["certainty"] == "unsure" for r in read_by)
                                else "fair"}
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


def _territory_gains(patients: list, orientation_of: Callable) -> np.ndarray:
    """Per patient with scar: the territory test's gain (benchmarks/aha_territory.py, 30 degree steps) under the
    origin ``orientation_of(patient)`` gives."""
    # A sibling script (benchmarks/ is on the path when this one runs).
    from aha_territory import best_territory_shares, gain_over_rotations

    rotations = np.arange(0.0, 360.0, 30.0)
    scarred = [p for p in patients if np.isin(p.label_maps, INFARCT_LABELS).any()]
    table = np.array([best_territory_shares(compute_geometry(p, orientation=orientation_of(p)), p.label_maps,
                                            rotations) for p in scarred])
    return gain_over_rotations(table)


def _territory_summary(gain: np.ndarray, baseline: np.ndarray) -> dict:
    """Mean gain with its patient-bootstrap sd, and the paired difference from ``baseline`` with a 95 % CI."""
    from aha_territory import patient_resamples

    resamples = patient_resamples(len(gain), 2000)
    paired = (gain - baseline)[resamples].mean(axis=1)
    return {"gain_over_rotation_average": float(gain.mean()),
            "gain_bootstrap_sd": float(gain[resamples].mean(axis=1).std()), "patients": len(gain),
            "minus_baseline": float((gain - baseline).mean()),
            "minus_baseline_95ci": [float(np.percentile(paired, 2.5)), float(np.percentile(paired, 97.5))]}


def _readers_origin(rows: dict[str, dict]) -> Callable:
    """The blind readers' mean septum as each patient's origin (the estimate's 120 degree arc placed on it)."""
    def orientation_of(patient):
        row = rows[patient.patient_id]
        septum = _circular_mean([_septum(float(row[f"arc_start_deg{s}"]), float(row[f"arc_end_deg{s}"]))
                                 for s in (READERS["reader3"], READERS["reader4"])])
        return estimate_orientation(patient.images, patient.label_maps, kind="angle", angle_deg=septum - 60.0)
    return orientation_of


def screen_variants(rows: dict[str, dict], patients: dict) -> dict:
    """Every entry of VARIANTS scored against every reader and by the territory test, paired with the defaults;
    the blind readers' own angles are put to the territory test too."""
    # The territory test runs over the annotated patients, the readers' angles included; each setting once.
    annotated = [p for p in patients.values() if p.patient_id in rows]
    territory: dict[ImageCues, np.ndarray] = {}

    def gains_under(cues: ImageCues) -> np.ndarray:
        if cues not in territory:
            territory[cues] = _territory_gains(
                annotated, lambda p: estimate_orientation(p.images, p.label_maps, cues=cues))
        return territory[cues]

    default = gains_under(ImageCues())
    results = {}
    for name, change in VARIANTS.items():
        cues = ImageCues(**change)
        records = reference_records(rows, patients, cues)
        gross = [r["patient_id"] + ("*" if r["low_confidence"] else "") for r in records
                 if r["readers"].get("blind_agreed", {}).get("septum_error", 0.0) > 45.0]
        results[name] = {"cues": change, "territory": _territory_summary(gains_under(cues), default),
                         "blind_agreed_gross_errors": gross}
        results[name] |= {reader: _scores(records, reader) for reader in (*READERS, *PAIRS, ALL_READERS)}
        scored, t = results[name], results[name]["territory"]
        print(f"{name:22s} within 45: " + " ".join(f"{reader} {scored[reader]['septum_within_45']:.3f}"
                                                 for reader in (*READERS, "blind_agreed", ALL_READERS))
              + f" | blind_agreed median {scored['blind_agreed']['median_insertion_error_ccw']:.1f}, gross "
              f"{scored['blind_agreed']['gross_septum']} ({scored['blind_agreed']['gross_septum_flagged']} flagged)"
              f" | territory gain {t['gain_over_rotation_average']:+.3f} (sd {t['gain_bootstrap_sd']:.3f}), minus "
              f"default {t['minus_baseline']:+.3f} [{t['minus_baseline_95ci'][0]:+.3f}, "
              f"{t['minus_baseline_95ci'][1]:+.3f}]"
              f" | {' '.join(gross)}")
    # The readers' angles against the current and the earlier estimate.
    by_readers = _territory_gains(annotated, _readers_origin(rows))
    against = {"default": ImageCues(), "lung weight 2 (before)": ImageCues(**VARIANTS["lung weight 2 (before)"])}
    results["blind readers' angles"] = {"territory": {name: _territory_summary(by_readers, gains_under(cues))
                                                      for name, cues in against.items()}}
    for name, t in results["blind readers' angles"]["territory"].items():
        print(f"blind readers' own angles: territory gain {t['gain_over_rotation_average']:+.3f} (sd "
              f"{t['gain_bootstrap_sd']:.3f}), minus the estimate with {name} {t['minus_baseline']:+.3f} "
              f"[{t['minus_baseline_95ci'][0]:+.3f}, {t['minus_baseline_95ci'][1]:+.3f}]")
    return results


def _held_out_selection(errors: dict, insertion: dict, flagged: dict, folds: int = 5, repeats: int = 20) -> dict:
    """Cross-validated choice of the lung weight: chosen on each fold's other patients, scored on the fold."""
    n = len(next(iter(errors.values())))
    rng = np.random.default_rng(0)
    within, gross, caught, medians, chosen = [], [], [], [], []
    for _ in range(repeats):
        held_error, held_insertion, held_flag = np.zeros(n), np.zeros(n), np.zeros(n, bool)
        for fold in np.array_split(rng.permutation(n), folds):
            train = np.setdiff1d(np.arange(n), fold)
            weight = max(LUNG_WEIGHTS, key=lambda w: (np.mean(errors[w][train] <= 45.0),
                                                      -np.median(errors[w][train]), -w))
            chosen.append(weight)
            held_error[fold], held_insertion[fold] = errors[weight][fold], insertion[weight][fold]
            held_flag[fold] = flagged[weight][fold]
        bad = held_error > 45.0
        within.append(float(np.mean(~bad)))
        gross.append(int(bad.sum()))
        caught.append(int((bad & held_flag).sum()))
        medians.append(float(np.median(held_insertion)))
    return {"folds": folds, "repeats": repeats, "held_out_septum_within_45_mean": float(np.mean(within)),
            "held_out_septum_within_45_min": float(np.min(within)), "held_out_gross_septum_mean": float(np.mean(gross)),
            "held_out_gross_septum_flagged_mean": float(np.mean(caught)),
            "held_out_median_insertion_error_ccw_mean": float(np.mean(medians)),
            "chosen": {str(w): chosen.count(w) for w in LUNG_WEIGHTS if w in chosen}}


def select_lung_weight(rows: dict[str, dict], patients: dict) -> dict:
    """Every weight of LUNG_WEIGHTS scored in-sample, and the cross-validated choice against two references."""
    per_weight = {w: sorted(reference_records(rows, patients, ImageCues(lung_weight=w)), key=lambda r: r["patient_id"])
                  for w in LUNG_WEIGHTS}
    results: dict = {"in_sample": {str(w): {ref: _scores(records, ref) for ref in ("blind_agreed", ALL_READERS,
                                                                                   "reader1", "reader2")}
                                   for w, records in per_weight.items()}}
    for ref in ("blind_agreed", ALL_READERS):
        # The patients holding the reference (the blind pair only where its readers agree); the same for every weight.
        held = {w: [r for r in recs if ref in r["readers"]] for w, recs in per_weight.items()}
        errors = {w: np.array([r["readers"][ref]["septum_error"] for r in recs]) for w, recs in held.items()}
        insertion = {w: np.array([r["readers"][ref]["insertion_error_ccw"] for r in recs]) for w, recs in held.items()}
        flagged = {w: np.array([r["low_confidence"] for r in recs]) for w, recs in held.items()}
        results[f"cross_validated_{ref}"] = _held_out_selection(errors, insertion, flagged)
    for w in LUNG_WEIGHTS:
        block = results["in_sample"][str(w)]
        print(f"lung weight {w:<5} " + " | ".join(
            f"{ref} {b['septum_within_45']:.3f}, median {b['median_insertion_error_ccw']:.1f}, signed "
            f"{b['median_signed_septum_error']:+.1f}, gross "
            f"{b['gross_septum']} ({b['gross_septum_flagged']} flagged)" for ref, b in block.items()))
    for ref in ("blind_agreed", ALL_READERS):
        held_out = results[f"cross_validated_{ref}"]
        print(f"cross-validated against {ref}: "
              + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in held_out.items()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    parser.add_argument("--variants", action="store_true", help="screen other settings of the estimate's cues")
    parser.add_argument("--select-lung-weight", action="store_true",
                        help="choose the lung cue's weight by cross-validation against the readers")
    args = parser.parse_args()
    rows = read_reference()
    patients = {p.patient_id: p for p in read_dataset(args.data, progress=False)}
    if args.variants:
        write_json(args.out / "aha_orientation_variants.json", screen_variants(rows, patients))
        return
    if args.select_lung_weight:
        write_json(args.out / "aha_lung_weight_selection.json", select_lung_weight(rows, patients))
        return
    records = reference_records(rows, patients)
    results: dict = {reader: _scores(records, reader) for reader in READERS}
    results |= {"reader1_on_reader2_patients": _scores([r for r in records if "reader2" in r["readers"]], "reader1"),
                "both_readers_agree": _scores(records, "agreed"),
                "blind_readers_agree": _scores(records, "blind_agreed"),
                "all_readers_mean": _scores(records, ALL_READERS),
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
