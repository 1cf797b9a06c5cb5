"""Cohort outliers: image estimates far from the other patients of a folder are flagged, their angles kept."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import EMIDEC_SLICES, SMALL

from claim.aha.cohort import MIN_PATIENTS, MIN_THRESHOLD_DEG, check_cohort, flag_cohort_outliers
from claim.aha.orientation import Orientation, OrientationMethod, estimate_orientation
from claim.aha.segments import SEPTUM_CENTRE_DEG, Handedness, origin_from_screen
from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.write import write_patient
from claim.phantom import make_phantom_cohort


def _orientation(septum_deg: float, method: OrientationMethod = OrientationMethod.IMAGE,
                 handedness: Handedness = Handedness.CCW, confidence: float = 0.9) -> Orientation:
    origin = origin_from_screen(septum_deg, SEPTUM_CENTRE_DEG, handedness)
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    return Orientation(method, origin, handedness, (origin + sign * 60.0) % 360.0, confidence)


def _cohort(septa: list[float], **kwargs) -> list[tuple[str, Orientation]]:
    return [(f"p{k}", _orientation(s, **kwargs)) for k, s in enumerate(septa)]


def test_far_estimate_is_flagged_and_keeps_its_angle():
    spread = [250, 240, 260, 245, 255, 235, 265, 250, 252, 248]
    pairs = _cohort(spread + [70.0])
    flagged, check = flag_cohort_outliers(pairs)
    # The circular median is not pulled by the outlier; the spread is 1.4826 x the median deviation.
    assert check.consensus_deg == 250.0 and check.patients == 11
    assert np.isclose(check.spread_deg, 1.4826 * 5.0, atol=0.01)
    assert check.threshold_deg == max(2 * check.spread_deg, MIN_THRESHOLD_DEG)
    assert check.outliers == ("p10",)
    assert check.deviations_deg["p10"] > 170.0
    outlier = dict(flagged)["p10"]
    assert outlier.low_confidence and outlier.cohort_outlier
    assert outlier.insertion_screen_deg == pairs[-1][1].insertion_screen_deg
    assert outlier.origin_screen_deg == pairs[-1][1].origin_screen_deg
    assert outlier.confidence == pairs[-1][1].confidence
    assert all(not o.low_confidence and not o.cohort_outlier for pid, o in flagged if pid != "p10")
    assert check.to_json()["outliers"] == ["p10"]


def test_given_angles_inform_the_consensus_but_are_never_flagged():
    pairs = _cohort([250.0] * 9) + [("given", _orientation(70.0, OrientationMethod.FILE)),
                                    ("estimated", _orientation(70.0))]
    check = check_cohort(pairs)
    assert check.outliers == ("estimated",)


def test_no_flag_closer_than_45_degrees_even_in_a_tight_cohort():
    # Every peer at 250 +- 1 degree: the spread is ~1 degree, yet 40 degrees away is within the floor.
    near = check_cohort(_cohort([249.0, 250.0, 251.0] * 3 + [290.0]))
    assert near.spread_deg < 2.0 and near.threshold_deg == MIN_THRESHOLD_DEG and near.outliers == ()
    far = check_cohort(_cohort([249.0, 250.0, 251.0] * 3 + [300.0]))
    assert far.outliers == ("p9",)


def test_wide_cohort_raises_the_threshold():
    # Peers spread evenly over 250 +- 60 degrees (median deviation 33 with the newcomer, spread 49, threshold 98):
    # 80 degrees away is within it here, though the same patient among peers at 250 +- 10 is an outlier.
    wide = check_cohort(_cohort(list(np.linspace(190.0, 310.0, 21)) + [330.0]))
    assert np.isclose(wide.spread_deg, 1.4826 * 33.0, atol=0.01) and wide.outliers == ()
    tight = check_cohort(_cohort(list(np.linspace(240.0, 260.0, 21)) + [330.0]))
    assert tight.outliers == ("p21",)


def test_too_few_patients_define_no_consensus():
    pairs = _cohort([250.0] * (MIN_PATIENTS - 2) + [70.0])
    flagged, check = flag_cohort_outliers(pairs)
    assert check is None and flagged == pairs


def test_septum_direction_not_insertion_is_compared_whatever_the_handedness():
    # The same septum directions with mirrored numbering put the insertion 120 degrees elsewhere: no outlier.
    pairs = _cohort([250.0] * 5) + [(f"cw{k}", _orientation(250.0, handedness=Handedness.CW)) for k in range(5)]
    check = check_cohort(pairs)
    assert check.outliers == () and max(check.deviations_deg.values()) < 1e-6


def test_claim_aha_flags_the_patient_whose_heart_is_turned(tmp_path, capsys):
    usual = make_phantom_cohort(8, seed=3, config=dataclasses.replace(SMALL, septum_screen_deg=250.0))
    turned = make_phantom_cohort(1, seed=4, config=dataclasses.replace(SMALL, septum_screen_deg=70.0))[0]
    turned_id = "Phantom_T001"
    data = tmp_path / "data"
    for patient in [c.patient for c in usual] + [dataclasses.replace(turned.patient, patient_id=turned_id)]:
        write_patient(patient, data)
    out, written = tmp_path / "aha", tmp_path / "estimates.csv"
    assert main(["aha", "--data", str(data), "-o", str(out), "--no-bullseye", "--write-orientation",
                 str(written)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    cohort = summary["orientation_cohort"]
    assert cohort["outliers"] == [turned_id] and cohort["patients"] == 9
    assert abs(cohort["consensus_deg"] - 250.0) < 30.0
    assert turned_id in summary["orientation_low_confidence"]
    record = next(p for p in summary["patients"] if p["patient_id"] == turned_id)["orientation"]
    assert record["cohort_outlier"] and record["low_confidence"]
    # The angle is the estimate's: the septum points where the phantom put it.
    septum = (record["origin_screen_deg"] + SEPTUM_CENTRE_DEG) % 360.0
    assert abs((septum - 70.0 + 180.0) % 360.0 - 180.0) < 30.0
    rows = {r["patient_id"]: r for r in csv.DictReader(line for line in written.open() if not line.startswith("#"))}
    assert rows[turned_id]["low_confidence"] == "yes"
    assert "1 far from the others" in capsys.readouterr().out


def test_orientation_section_names_the_outliers(tmp_path):
    from claim.report.html import Report
    from claim.report.sections import add_orientation_section

    summary = {"orientation_methods": {"image": 9}, "orientation_low_confidence": ["P9"],
               "orientation_cohort": {"consensus_deg": 250.0, "spread_deg": 20.0, "threshold_deg": 45.0,
                                      "outliers": ["P9"]}}
    report = Report("orientation")
    add_orientation_section(report, b"\x89PNG", summary)
    html = report.render()
    assert "far from the other patients" in html and "P9" in html and "beyond 45°" in html


@pytest.mark.realdata
def test_emidec_outliers_are_few_and_flag_reader1_misses():
    patients = read_dataset(EMIDEC_SLICES, progress=False)
    estimates = [(p.patient_id, estimate_orientation(p.images, p.label_maps)) for p in patients]
    flagged, check = flag_cohort_outliers(estimates)
    # Measured on the 75 patients: consensus 250 degrees, spread 22.2, threshold 45 (its floor); 15 outliers, among
    # them Case_P073, which reader 1 puts 70 degrees from the estimate (the blind readers agree with the estimate).
    assert check.patients == len(patients)
    assert 240.0 < check.consensus_deg < 260.0 and 18.0 < check.spread_deg < 27.0
    assert "Case_P073" in check.outliers and len(check.outliers) <= 0.2 * len(patients)
    # Reader 1's reference (tests/aha/data): 6 septum errors over 45 degrees, all on scans reader 1 marked unsure
    # but Case_P019; 5 are flagged (Case_N032, confidence 0.41, is not).
    low = {pid for pid, o in flagged if o.low_confidence}
    rows = list(csv.DictReader((Path(__file__).parent / "data" / "emidec_rv_insertion.csv").open()))
    by_id = dict(estimates)
    gross = []
    for row in rows:
        start, end = float(row["arc_start_deg"]), float(row["arc_end_deg"])
        septum = (start + ((end - start) % 360.0) / 2.0) % 360.0
        if abs((by_id[row["patient_id"]].screen_deg(SEPTUM_CENTRE_DEG) - septum + 180.0) % 360.0 - 180.0) > 45.0:
            gross.append(row["patient_id"])
    assert len(gross) <= 6 and len(set(gross) & low) >= len(gross) - 1
