"""`claim masks` end to end: EMIDEC and PNG layouts in tmp folders, masks.json, reproducibility, --fit-prior."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from claim.aha.segments import Territory
from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.patient import Layout
from claim.data.write import write_nnunet_dataset_json, write_patient
from claim.labels import infarct_mask, myocardium_mask
from claim.phantom import write_phantom_cohort
from claim.smile import load_prior, territory_segments
from tests.conftest import EMIDEC_SLICES, SMALL

KEYS = {
    "id",
    "source_id",
    "pattern",
    "territory",
    "segments",
    "target_burden",
    "achieved_burden",
    "transmurality",
    "mvo",
    "seed",
    "files",
    "source_files",
}


def _label_digests(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.nii.gz")}


def _check_outputs(data, out, per_patient: int) -> list[dict]:
    entries = json.loads((out / "masks.json").read_text())
    sources = {p.patient_id: p for p in read_dataset(data)}
    assert len(entries) == per_patient * len(sources)
    for entry in entries:
        assert set(entry) >= KEYS
        source = sources[entry["source_id"]]
        assert entry["id"].startswith(f"{entry['source_id']}_smile")
        assert len(entry["files"]) == len(entry["source_files"]) == len(source.label_paths)
        assert entry["source_files"] == [str(p.relative_to(data)) for p in source.label_paths]
        assert all((out / f).exists() for f in entry["files"])
        assert abs(entry["achieved_burden"] - entry["target_burden"]) <= 0.02
    assert (out / "bullseye_frequency.png").stat().st_size > 0
    return entries


def test_masks_on_an_emidec_phantom(tmp_path, capsys):
    data, out = tmp_path / "phantom", tmp_path / "masks"
    write_phantom_cohort(data, 3, seed=2, config=SMALL, progress=False)
    assert main(["masks", "--data", str(data), "--out", str(out), "--per-patient", "2", "--seed", "5"]) == 0
    assert "6 masks" in capsys.readouterr().out
    entries = _check_outputs(data, out, 2)
    first = entries[0]
    assert first["files"] == [f"{first['id']}/Contours/{first['id']}.nii.gz"]
    assert first["seed"] == [5, 0, 1]
    # Label maps differ from the source only inside the myocardium.
    sources = {p.patient_id: p for p in read_dataset(data)}
    for entry in entries:
        new = np.asarray(nib.load(out / entry["files"][0]).dataobj)
        old = np.moveaxis(sources[entry["source_id"]].label_maps, 0, 2)
        myo = myocardium_mask(old)
        np.testing.assert_array_equal(new[~myo], old[~myo])
        np.testing.assert_array_equal(myocardium_mask(new), myo)
        assert abs(infarct_mask(new).sum() / myo.sum() - entry["achieved_burden"]) < 1e-6
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 5 and config["smile"]["pattern"] == "ischemic"
    assert config["smile"]["strict_territory"] is False  # scars may grow beyond their territory by default
    strict = tmp_path / "strict"
    assert main(["masks", "--data", str(data), "--out", str(strict), "--per-patient", "2", "--seed", "5",
                 "--strict-territory"]) == 0
    assert json.loads((strict / "config.json").read_text())["smile"]["strict_territory"] is True
    for entry in json.loads((strict / "masks.json").read_text()):
        assert set(entry["segments"]) <= set(territory_segments(Territory(entry["territory"])))

    # Same seed, same files; another seed, other files.
    assert main(["masks", "--data", str(data), "--out", str(tmp_path / "again"), "--per-patient", "2", "-s", "5"]) == 0
    assert main(["masks", "--data", str(data), "--out", str(tmp_path / "other"), "--per-patient", "2", "-s", "6"]) == 0
    assert _label_digests(out) == _label_digests(tmp_path / "again")
    assert _label_digests(out) != _label_digests(tmp_path / "other")
    assert (out / "masks.json").read_text() == (tmp_path / "again" / "masks.json").read_text()


def test_masks_with_controls_and_errors(tmp_path, capsys):
    data = tmp_path / "phantom"
    write_phantom_cohort(data, 2, seed=3, config=SMALL, progress=False)
    out = tmp_path / "lad"
    args = [
        "masks",
        "--data",
        str(data),
        "--out",
        str(out),
        "--territory",
        "lad",
        "--burden",
        "5-10",
        "--transmurality",
        "50-100",
        "--mvo",
        "0",
    ]
    assert main(args) == 0
    for entry in json.loads((out / "masks.json").read_text()):
        assert entry["territory"] == "LAD" and not entry["mvo"]
        assert set(entry["segments"]) <= {1, 2, 7, 8, 13, 14, 17}
        assert 0.03 <= entry["achieved_burden"] <= 0.12 and 0.5 <= entry["transmurality"] <= 1.0
    capsys.readouterr()
    assert (
        main(["masks", "--data", str(data), "--out", str(tmp_path / "x"), "--territory", "RCA", "--burden", "70-80"])
        == 2
    )
    assert "can hold" in capsys.readouterr().err
    assert main(["masks", "--data", str(data), "--out", str(data / "inside")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["masks", "--data", str(data), "--out", str(out), "--burden", "30-10"])


def _png_copy(patients, root):
    for patient in patients:
        scaled = patient.images / max(float(patient.images.max()), 1.0) * 255.0  # PNG wants 0..255 intensities
        write_patient(replace(patient, images=scaled, layout=Layout.PNG, image_paths=(), label_paths=()), root)


def test_masks_on_a_png_phantom(tmp_path, phantom_cohort):
    data, out = tmp_path / "png", tmp_path / "masks"
    _png_copy([case.patient for case in phantom_cohort[:2]], data)
    assert main(["masks", "--data", str(data), "-o", str(out), "--pattern", "mixed", "-s", "1"]) == 0
    entries = _check_outputs(data, out, 1)
    for entry in entries:
        assert all(f.startswith(f"labels/{entry['id']}_slice") for f in entry["files"])
        assert all(f.startswith(f"labels/{entry['source_id']}_slice") for f in entry["source_files"])


def test_masks_on_an_nnunet_phantom(tmp_path, phantom_cohort):
    data, out = tmp_path / "nnunet", tmp_path / "masks"
    for case in phantom_cohort[:2]:
        write_patient(replace(case.patient, layout=Layout.NNUNET), data)
    write_nnunet_dataset_json(data, 2)
    assert main(["masks", "--data", str(data), "-o", str(out), "--pattern", "subepicardial"]) == 0
    entries = _check_outputs(data, out, 1)
    for entry in entries:
        assert entry["files"] == [f"labelsTr/{entry['id']}.nii.gz"]
        assert entry["source_files"] == [f"labelsTr/{entry['source_id']}.nii.gz"]
        assert entry["pattern"] == "subepicardial" and not entry["mvo"]


@pytest.mark.realdata
def test_masks_on_a_png_copy_of_real_slices(tmp_path):
    data, out = tmp_path / "slices", tmp_path / "masks"
    for folder in ("images", "labels"):
        (data / folder).mkdir(parents=True)
        for name in ("Case_P002", "Case_N012"):
            for path in (EMIDEC_SLICES / folder).glob(f"{name}_slice*.png"):
                shutil.copy(path, data / folder / path.name)
    assert main(["masks", "--data", str(data), "--out", str(out), "--per-patient", "2", "--pattern", "mixed"]) == 0
    entries = _check_outputs(data, out, 2)
    assert {e["source_id"] for e in entries} == {"Case_P002", "Case_N012"}
    labels = sorted((out / "labels").glob("*.png"))
    assert len(labels) == sum(len(e["files"]) for e in entries)


def test_fit_prior_and_use_it(tmp_path, capsys):
    data = tmp_path / "phantom"
    write_phantom_cohort(data, 8, seed=4, config=SMALL, progress=False)
    prior_file = tmp_path / "prior.json"
    assert main(["masks", "--fit-prior", str(data), "-o", str(prior_file)]) == 0
    assert "prior from 4 scars" in capsys.readouterr().out
    prior = load_prior(prior_file)
    assert prior.n_patients == 4 and "phantom" in prior.source
    out = tmp_path / "masks"
    assert main(["masks", "--data", str(data), "--out", str(out), "--prior", str(prior_file)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["prior"]["path"] == str(prior_file) and config["prior"]["n_patients"] == 4
    assert main(["masks", "--fit-prior", str(data), "-o", str(data / "prior.json")]) == 2
    assert main(["masks", "--data", str(data)]) == 2
