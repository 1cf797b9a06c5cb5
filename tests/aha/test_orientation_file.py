"""Orientation files: the CSV round trip, the fallback to the estimate, and what `claim aha` reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.conftest import SMALL

from claim.aha.config import AhaConfig, geometry_for
from claim.aha.orientation import Orientation, OrientationMethod, parse_orientation
from claim.aha.orientation_file import read_orientation_file, write_orientation_file
from claim.aha.segments import Handedness
from claim.cli import main
from claim.data.write import write_patient
from claim.errors import ClaimError, InputError
from claim.phantom import make_phantom_cohort


@pytest.fixture(scope="module")
def cases():
    return make_phantom_cohort(3, seed=21, config=SMALL)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, cases):
    root = tmp_path_factory.mktemp("data")
    for case in cases:
        write_patient(case.patient, root)
    return root


def test_csv_round_trip(tmp_path):
    written = [
        ("Case_P001", Orientation(OrientationMethod.IMAGE, 155.0, Handedness.CCW, 215.0, 0.2, low_confidence=True)),
        ("Case_N002", Orientation(OrientationMethod.ANGLE, 30.0, Handedness.CW, 330.0)),
    ]
    path = write_orientation_file(tmp_path / "orientation.csv", written)
    entries = read_orientation_file(path)
    assert set(entries) == {"Case_P001", "Case_N002"}
    assert entries["Case_P001"].insertion_deg == 215.0 and entries["Case_P001"].handedness == Handedness.CCW
    assert entries["Case_N002"].insertion_deg == 330.0 and entries["Case_N002"].handedness == Handedness.CW
    assert "low_confidence" in path.read_text()


def test_minimal_file_without_header_or_handedness(tmp_path):
    path = tmp_path / "angles.csv"
    path.write_text("# my angles\nCase_P001, 400\nCase_P002,-30,cw\n")
    entries = read_orientation_file(path)
    assert entries["Case_P001"].insertion_deg == 40.0 and entries["Case_P001"].handedness is None
    assert entries["Case_P002"].insertion_deg == 330.0 and entries["Case_P002"].handedness == Handedness.CW


@pytest.mark.parametrize(
    "text, problem",
    [
        ("patient_id,insertion_deg\nCase_P001,north\n", "line 2: insertion_deg 'north' is not a number"),
        ("patient_id,insertion_deg,handedness\nCase_P001,10,left\n", "line 2: handedness 'left' must be ccw or cw"),
        ("Case_P001,10\nCase_P001,20\n", "line 2: patient Case_P001 is listed twice"),
        ("# nothing\n", "has no patients"),
        ("Case_P001\n", "line 1: expected"),
    ],
)
def test_bad_files_raise_one_line_input_errors(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        parse_orientation(f"file:{path}")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_fails_at_parse(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        parse_orientation(f"file:{tmp_path / 'nope.csv'}")
    with pytest.raises(ClaimError, match="file:PATH"):
        parse_orientation("north")


def test_file_angles_used_and_missing_patients_fall_back(tmp_path, cases):
    listed, missing = cases[0].patient, cases[1].patient
    path = tmp_path / "angles.csv"
    path.write_text(f"patient_id,insertion_deg,handedness\n{listed.patient_id},100,cw\n")
    config = AhaConfig(orientation=f"file:{path}", bullseye=False)
    geometry = geometry_for(listed, config)
    assert geometry.orientation.method == OrientationMethod.FILE
    assert geometry.orientation.insertion_screen_deg == 100.0
    assert geometry.orientation.handedness == Handedness.CW
    assert geometry.orientation.origin_screen_deg == 160.0
    assert geometry_for(missing, config).orientation.method == OrientationMethod.IMAGE


def test_claim_aha_sheet_summary_and_write_back(tmp_path, data_dir, cases, capsys):
    out, written = tmp_path / "aha", tmp_path / "estimates.csv"
    assert (
        main(["aha", "--data", str(data_dir), "-o", str(out), "--no-bullseye", "--write-orientation", str(written)])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (out / summary["orientation_sheet"]).stat().st_size > 10_000
    assert summary["orientation_methods"] == {"image": len(cases)}
    flagged = {p["patient_id"] for p in summary["patients"] if p["orientation"]["low_confidence"]}
    assert set(summary["orientation_low_confidence"]) == flagged
    estimates = read_orientation_file(written)
    by_id = {p["patient_id"]: p for p in summary["patients"]}
    for patient_id, entry in estimates.items():
        assert abs(entry.insertion_deg - by_id[patient_id]["orientation"]["insertion_screen_deg"]) < 0.06

    # Correct one patient and feed the file back: that patient uses the file, the others keep the estimate.
    corrected = tmp_path / "corrected.csv"
    first = cases[0].patient.patient_id
    corrected.write_text(f"patient_id,insertion_deg\n{first},42\n")
    again = tmp_path / "aha2"
    assert (
        main(["aha", "--data", str(data_dir), "-o", str(again), "--no-bullseye", "--orientation", f"file:{corrected}"])
        == 0
    )
    summary = json.loads((again / "summary.json").read_text())
    methods = {p["patient_id"]: p["orientation"]["method"] for p in summary["patients"]}
    assert methods[first] == "file" and sorted(set(methods.values())) == ["file", "image"]
    assert np.isclose(
        next(p for p in summary["patients"] if p["patient_id"] == first)["orientation"]["insertion_screen_deg"], 42
    )
    assert "low confidence" in capsys.readouterr().out


def test_orientation_section_in_html_report(tmp_path, data_dir):
    from claim.report.html import Report
    from claim.report.sections import add_orientation_section
    from claim.stages.aha import run_aha

    summary = run_aha(data_dir, tmp_path / "aha", AhaConfig(bullseye=False), progress=False)
    report = Report("orientation")
    add_orientation_section(report, tmp_path / "aha" / summary["orientation_sheet"], summary)
    html = report.render()
    assert "AHA angle origin per patient" in html and "data:image/png;base64," in html
    assert f"image {len(summary['patients'])}" in html
