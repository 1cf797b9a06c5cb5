"""Reading and writing the three layouts, mirroring outputs, and clear errors for bad input."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from claim.cli import main
from claim.data.layouts import detect_layout, read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import (
    check_output_location,
    patient_files,
    write_label_maps,
    write_nnunet_dataset_json,
    write_patient,
)
from claim.errors import InputError


def _as_layout(patient: Patient, layout: Layout) -> Patient:
    images = patient.images
    if layout == Layout.PNG:
        images = np.round(255 * (images - images.min()) / (images.max() - images.min())).astype(np.float32)
    return replace(patient, images=images, layout=layout, slice_stems=(), affine=None)


def write_dataset(root: Path, patients: list[Patient], layout: Layout) -> Path:
    for patient in patients:
        write_patient(_as_layout(patient, layout), root)
    if layout == Layout.NNUNET:
        write_nnunet_dataset_json(root, len(patients))
    return root


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("layout", list(Layout))
def test_round_trip_every_layout(tmp_path, phantom_cohort, layout):
    patients = [case.patient for case in phantom_cohort[:2]]
    root = write_dataset(tmp_path / "data", patients, layout)
    assert detect_layout(root) == layout
    loaded = read_dataset(root)
    assert [p.patient_id for p in loaded] == sorted(p.patient_id for p in patients)
    for original in patients:
        back = next(p for p in loaded if p.patient_id == original.patient_id)
        expected = _as_layout(original, layout)
        np.testing.assert_array_equal(back.label_maps, original.label_maps)
        np.testing.assert_allclose(back.images, expected.images, rtol=1e-6, atol=1e-3)
        assert back.layout == layout
        if layout == Layout.PNG:
            assert back.spacing_mm is None
            assert back.slice_positions == tuple(range(original.n_slices))
        else:
            assert back.spacing_mm == pytest.approx(original.spacing_mm)
            assert back.slice_thickness_mm == pytest.approx(original.slice_thickness_mm)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (Layout.EMIDEC, ["Case_P900/Segments/Case_P900.nii.gz"]),
        (Layout.NNUNET, ["segmentsTr/Case_P900.nii.gz"]),
        (Layout.PNG, ["segments/Case_P900_slice000.png", "segments/Case_P900_slice001.png"]),
    ],
)
def test_outputs_mirror_the_input_layout(tmp_path, pathological_case, layout, expected):
    patient = _as_layout(pathological_case.patient, layout)
    paths = patient_files(patient, tmp_path, "segment")
    assert [str(p.relative_to(tmp_path)) for p in paths][: len(expected)] == expected
    written = write_label_maps(patient, tmp_path, pathological_case.truth.segment_maps, role="segment")
    assert all(p.exists() for p in written)
    assert not list(tmp_path.rglob(".tmp-*")), "atomic writes leave no temporary files"


def test_png_output_keeps_source_names(tmp_path, phantom_cohort):
    root = write_dataset(tmp_path / "data", [_first(phantom_cohort)], Layout.PNG)
    (root / "images" / "Phantom_N001_slice000.png").rename(root / "images" / "Phantom_N001_slice010.png")
    (root / "labels" / "Phantom_N001_slice000.png").rename(root / "labels" / "Phantom_N001_slice010.png")
    patient = read_dataset(root)[0]
    assert patient.slice_positions[-1] == 10
    names = [p.name for p in patient_files(patient, tmp_path / "out", "segment")]
    assert names[-1] == "Phantom_N001_slice010.png"


def test_label_mapping_keeps_rv(tmp_path, phantom_cohort):
    patient = phantom_cohort[0].patient
    remapped = patient.label_maps.copy()
    remapped[patient.label_maps == 1] = 7  # a dataset that codes the cavity as 7
    root = write_dataset(tmp_path / "data", [patient.with_arrays(label_maps=remapped)], Layout.EMIDEC)
    with pytest.raises(InputError, match=r"label values \[7\] outside the declared set"):
        read_dataset(root)
    loaded = read_dataset(root, label_mapping={7: 1})
    np.testing.assert_array_equal(loaded[0].label_maps, patient.label_maps)


def test_reading_never_modifies_inputs(tmp_path, phantom_cohort):
    root = write_dataset(tmp_path / "data", [c.patient for c in phantom_cohort[:2]], Layout.EMIDEC)
    before = _tree_digest(root)
    main(["aha", "--data", str(root), "--out", str(tmp_path / "out"), "--no-bullseye"])
    assert _tree_digest(root) == before


# ------------------------------------------------------------------ bad input: one clear message each


def _first(cohort) -> Patient:
    return cohort[0].patient.with_arrays(patient_id="Phantom_N001")


@pytest.fixture
def emidec_root(tmp_path, phantom_cohort):
    return write_dataset(tmp_path / "data", [_first(phantom_cohort)], Layout.EMIDEC)


@pytest.fixture
def png_root(tmp_path, phantom_cohort):
    return write_dataset(tmp_path / "pngdata", [_first(phantom_cohort)], Layout.PNG)


def test_corrupt_nifti(emidec_root):
    path = emidec_root / "Phantom_N001" / "Images" / "Phantom_N001.nii.gz"
    path.write_bytes(b"this is not a nifti file")
    with pytest.raises(InputError, match=r"Phantom_N001\.nii\.gz: unreadable NIfTI"):
        read_dataset(emidec_root)


def test_corrupt_png(png_root):
    path = png_root / "labels" / "Phantom_N001_slice002.png"
    path.write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=r"Phantom_N001_slice002\.png: unreadable PNG"):
        read_dataset(png_root)


def test_shape_mismatch_nifti(emidec_root):
    path = emidec_root / "Phantom_N001" / "Contours" / "Phantom_N001.nii.gz"
    img = nib.load(path)
    data = np.asarray(img.dataobj)[:-3]
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError, match=r"Contours/Phantom_N001\.nii\.gz: label shape .* does not match image shape"):
        read_dataset(emidec_root)


def test_shape_mismatch_png(png_root):
    path = png_root / "labels" / "Phantom_N001_slice001.png"
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match=r"slice001\.png: label shape \(10, 12\) does not match image shape"):
        read_dataset(png_root)


def test_label_values_outside_declared_set(png_root):
    path = png_root / "labels" / "Phantom_N001_slice003.png"
    labels = np.asarray(Image.open(path)).copy()
    labels[0, 0] = 9
    Image.fromarray(labels).save(path)
    expected = r"slice003\.png: label values \[9\] outside the declared set \[0, 1, 2, 3, 4\]"
    with pytest.raises(InputError, match=expected):
        read_dataset(png_root)


def test_stack_without_myocardium(emidec_root):
    path = emidec_root / "Phantom_N001" / "Contours" / "Phantom_N001.nii.gz"
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[np.isin(data, (2, 3, 4))] = 0
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError, match=r"patient Phantom_N001 has no myocardium \(labels 2/3/4\)"):
        read_dataset(emidec_root)


def test_nan_intensities(emidec_root):
    path = emidec_root / "Phantom_N001" / "Images" / "Phantom_N001.nii.gz"
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[5, 5, 0] = np.nan
    data[6, 6, 1] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError, match=r"Images/Phantom_N001\.nii\.gz: 2 NaN/inf intensity values"):
        read_dataset(emidec_root)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: empty folder"):
        read_dataset(tmp_path / "empty")


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"nowhere: folder not found"):
        read_dataset(tmp_path / "nowhere")


def test_unknown_layout(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"stuff: no known layout"):
        read_dataset(tmp_path / "stuff")


def test_mixed_layouts(emidec_root, phantom_cohort):
    write_dataset(emidec_root, [phantom_cohort[1].patient], Layout.PNG)
    with pytest.raises(InputError, match=r"mixed layouts \(png: images/\*\.png; emidec: case folders"):
        read_dataset(emidec_root)


def test_nnunet_without_dataset_json(tmp_path, phantom_cohort):
    root = write_dataset(tmp_path / "nn", [_first(phantom_cohort)], Layout.NNUNET)
    (root / "dataset.json").unlink()
    with pytest.raises(InputError, match=r"nn: nnU-Net raw layout \(imagesTr/\) but no dataset.json"):
        read_dataset(root)


def test_missing_label_file(png_root):
    (png_root / "labels" / "Phantom_N001_slice000.png").unlink()
    with pytest.raises(InputError, match=r"slice000\.png: no label file"):
        read_dataset(png_root)


def test_output_inside_input(emidec_root):
    with pytest.raises(InputError, match=r"output folder is inside the input folder"):
        check_output_location(emidec_root / "results", emidec_root)
    check_output_location(emidec_root.parent / "results", emidec_root)  # beside it is fine


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["info", "--data", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "empty folder" in err and "Traceback" not in err
    code = main(["aha", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "empty" / "o")])
    assert code == 2
