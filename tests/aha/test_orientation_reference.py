"""The image orientation estimate against RV insertion angles annotated by eye on real EMIDEC slices.

See tests/aha/data/README.md for how the reference was made and how far it can be trusted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import EMIDEC_SLICES

from claim.aha.orientation import OrientationMethod, circular_mean_deg, estimate_orientation
from claim.aha.segments import Handedness
from claim.data.layouts import read_dataset

REFERENCE = Path(__file__).parent / "data" / "emidec_rv_insertion.csv"


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _septum(row: dict, suffix: str) -> float:
    start, end = float(row[f"arc_start_deg{suffix}"]), float(row[f"arc_end_deg{suffix}"])
    return (start + ((end - start) % 360.0) / 2.0) % 360.0


def reference_scores() -> list[dict]:
    """Per annotated patient: insertion error, septum-direction error, confidence and flag of the estimate."""
    rows = list(csv.DictReader(REFERENCE.open()))
    wanted = {r["patient_id"] for r in rows}
    patients = {p.patient_id: p for p in read_dataset(EMIDEC_SLICES, progress=False) if p.patient_id in wanted}
    scores = []
    for row in rows:
        patient = patients[row["patient_id"]]
        orientation = estimate_orientation(patient.images, patient.label_maps)
        assert orientation.method == OrientationMethod.IMAGE
        start, end = float(row["arc_start_deg"]), float(row["arc_end_deg"])
        septum = _septum(row, "")
        mirrored = estimate_orientation(patient.images, patient.label_maps, handedness=Handedness.CW)
        scores.append(
            {
                "patient_id": row["patient_id"],
                "certainty": row["certainty"],
                # The anterior insertion is the arc start when numbering runs counterclockwise, its end if clockwise.
                "insertion_error": _angle_error(orientation.insertion_screen_deg, start),
                "insertion_error_cw": _angle_error(mirrored.insertion_screen_deg, end),
                "septum_error": _angle_error(orientation.insertion_screen_deg + 60.0, septum),
                "confidence": orientation.confidence,
                "low_confidence": orientation.low_confidence,
            }
        )
    return scores


def test_reference_file_is_well_formed():
    rows = list(csv.DictReader(REFERENCE.open()))
    assert len(rows) >= 30 and len({r["patient_id"] for r in rows}) == len(rows)
    assert {r["certainty"] for r in rows} <= {"sure", "fair", "unsure"}
    assert any(r["patient_id"].startswith("Case_N") for r in rows)
    for row in rows:
        assert 0 <= float(row["arc_start_deg"]) < 360 and 0 <= float(row["arc_end_deg"]) < 360
        assert 60 <= (float(row["arc_end_deg"]) - float(row["arc_start_deg"])) % 360 <= 180


@pytest.mark.realdata
def test_image_estimate_against_annotated_emidec_patients():
    scores = reference_scores()
    septum = np.array([s["septum_error"] for s in scores])
    insertion = np.array([s["insertion_error"] for s in scores])
    # Measured: septum side right for 42 of 48 (5 of the 6 misses are annotations marked unsure, and on 3 of them
    # reader 1 and the blind readers 3 and 4 disagree by 69-84 degrees; `claim aha` flags 5, 3 by their own
    # confidence), median insertion error 15 deg (ccw) and 10 deg (cw). Guards against regressions.
    assert np.mean(septum <= 45.0) >= 0.85
    assert np.median(insertion) <= 15.0
    assert np.median([s["insertion_error_cw"] for s in scores]) <= 15.0
    confident = [s for s in scores if s["certainty"] != "unsure"]
    assert np.mean([s["septum_error"] <= 45.0 for s in confident]) >= 34 / 35
    gross = [s for s in scores if s["septum_error"] > 45.0]
    # By their own confidence 3 of the 6 (Case_N012, N032 and P073 lie at 0.41-0.42, just above the threshold);
    # the cohort check of `claim aha` flags N012 and P073 too (tests/aha/test_cohort.py).
    assert not gross or np.mean([s["low_confidence"] for s in gross]) >= 0.5


def test_second_reader_columns_are_well_formed():
    rows = list(csv.DictReader(REFERENCE.open()))
    second = [r for r in rows if r["arc_start_deg_r2"]]
    # Every patient reader 1 was unsure of, and at least 10 others, were read a second time.
    assert {r["patient_id"] for r in rows if r["certainty"] == "unsure"} <= {r["patient_id"] for r in second}
    assert sum(r["certainty"] != "unsure" for r in second) >= 10
    for row in second:
        start, end = float(row["arc_start_deg_r2"]), float(row["arc_end_deg_r2"])
        assert 0 <= start < 360 and 0 <= end < 360 and 60 <= (end - start) % 360 <= 180
        assert row["certainty_r2"] in {"sure", "fair", "unsure"}
    assert all(not r["arc_end_deg_r2"] and not r["certainty_r2"] for r in rows if not r["arc_start_deg_r2"])


BLIND_REFERENCE = Path(__file__).parent / "data" / "emidec_rv_insertion_blind.csv"
BLIND_READERS = ("_r3", "_r4")


def test_blind_reference_is_well_formed():
    rows = list(csv.DictReader(BLIND_REFERENCE.open()))
    ids = [r["patient_id"] for r in rows]
    assert len(rows) == 75 and len(set(ids)) == 75 and ids == sorted(ids)
    first = {r["patient_id"]: r for r in csv.DictReader(REFERENCE.open())}
    # Every patient reader 1 annotated is in it, on the same slice.
    assert set(first) <= set(ids)
    assert all(r["slice"] == first[r["patient_id"]]["slice"] for r in rows if r["patient_id"] in first)
    for row in rows:
        for suffix in BLIND_READERS:
            start, end = float(row[f"arc_start_deg{suffix}"]), float(row[f"arc_end_deg{suffix}"])
            assert 0 <= start < 360 and 0 <= end < 360 and 60 <= (end - start) % 360 <= 180
            assert row[f"certainty{suffix}"] in {"sure", "fair", "unsure"} and row[f"note{suffix}"]
    # The two blind readers put the septum on the same side (within 45 degrees) for every patient.
    assert max(_angle_error(_septum(r, "_r3"), _septum(r, "_r4")) for r in rows) <= 45.0


@pytest.mark.realdata
def test_image_estimate_against_the_blind_readers():
    rows = list(csv.DictReader(BLIND_REFERENCE.open()))
    patients = {p.patient_id: p for p in read_dataset(EMIDEC_SLICES, progress=False)}
    assert {r["patient_id"] for r in rows} == set(patients)
    within, insertion = {s: [] for s in BLIND_READERS}, {s: [] for s in BLIND_READERS}
    for row in rows:
        patient = patients[row["patient_id"]]
        orientation = estimate_orientation(patient.images, patient.label_maps)
        for suffix in BLIND_READERS:
            within[suffix].append(_angle_error(orientation.insertion_screen_deg + 60.0, _septum(row, suffix)) <= 45.0)
            start = float(row[f"arc_start_deg{suffix}"])
            insertion[suffix].append(_angle_error(orientation.insertion_screen_deg, start))
    # Measured: septum within 45 degrees for 72 (reader 3) and 73 (reader 4) of 75; median insertion error
    # 20 and 15 degrees (ccw). Guards against regressions.
    assert np.mean(within["_r3"]) >= 0.95 and np.mean(within["_r4"]) >= 0.96
    assert np.median(insertion["_r3"]) <= 20.0 and np.median(insertion["_r4"]) <= 15.0


@pytest.mark.realdata
def test_image_estimate_meets_the_bars_against_the_blind_readers_mean():
    # Issue bars on the consensus of the two blind readers (all 75 patients): septum side within 45 degrees for
    # >= 95 %, median anterior-insertion error <= 20 degrees, >= 80 % of the gross errors flagged. Measured:
    # 73 of 75, 17.5 degrees (ccw), both gross errors (Case_N033, N048) flagged by their own confidence.
    rows = list(csv.DictReader(BLIND_REFERENCE.open()))
    patients = {p.patient_id: p for p in read_dataset(EMIDEC_SLICES, progress=False)}
    septum_errors, insertion_errors, flagged = [], [], []
    for row in rows:
        patient = patients[row["patient_id"]]
        orientation = estimate_orientation(patient.images, patient.label_maps)
        septum = circular_mean_deg(np.array([_septum(row, suffix) for suffix in BLIND_READERS]))[0]
        start = circular_mean_deg(np.array([float(row[f"arc_start_deg{suffix}"]) for suffix in BLIND_READERS]))[0]
        septum_errors.append(_angle_error(orientation.insertion_screen_deg + 60.0, septum))
        insertion_errors.append(_angle_error(orientation.insertion_screen_deg, start))
        flagged.append(orientation.low_confidence)
    gross = np.array(septum_errors) > 45.0
    assert np.mean(~gross) >= 0.95
    assert np.median(insertion_errors) <= 20.0
    assert gross.sum() == 0 or np.mean(np.array(flagged)[gross]) >= 0.8
