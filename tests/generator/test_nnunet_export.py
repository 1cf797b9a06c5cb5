"""`claim generate --format nnunet` output passes nnU-Net v2's own dataset integrity check.

nnunetv2 is installed into the test environment by the Makefile (requirements/nnunet-check.txt).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from claim.data.io import read_nifti, write_nifti
from claim.data.layouts import read_dataset
from claim.data.write import write_patient
from claim.stages.generate import generate_scars
from tests.conftest import EMIDEC_SLICES
from tests.generator.conftest import make_masks_dir

verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")


def _check(folder) -> None:
    verify.verify_dataset_integrity(str(folder), num_processes=1)


@pytest.mark.slow  # imports nnU-Net and runs its dataset check
def test_phantom_export_passes_and_a_broken_label_fails(phantom_dir, tiny_checkpoint, tmp_path):
    masks_dir, _ = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=2)
    out = tmp_path / "Dataset501_Synth"
    generate_scars(tiny_checkpoint, phantom_dir, masks_dir, out, sampler="ddim:3", output_format="nnunet",
                   include_real=phantom_dir)
    _check(out)

    # The check is not a formality: a label value that dataset.json does not declare must fail it.
    broken = tmp_path / "Dataset502_Broken"
    shutil.copytree(out, broken)
    label_file = sorted((broken / "labelsTr").glob("*.nii.gz"))[0]
    volume = read_nifti(label_file)
    data = np.asarray(volume.data).copy()
    data.flat[0] = 7
    write_nifti(label_file, data, volume.affine, volume.zooms)
    with pytest.raises(Exception, match="(?i)label|unexpected"):
        _check(broken)


@pytest.mark.slow
@pytest.mark.realdata
def test_emidec_slices_export_passes(tiny_checkpoint, tmp_path):
    # Two real PNG patients (one normal canvas, one pathological) as the real part of the dataset.
    source = tmp_path / "real"
    patients = read_dataset(EMIDEC_SLICES)
    chosen = [next(p for p in patients if "_N" in p.patient_id), next(p for p in patients if "_P" in p.patient_id)]
    for patient in chosen:
        write_patient(patient, source)
    masks_dir, _ = make_masks_dir(source, tmp_path / "masks", n_masks=1)
    out = tmp_path / "Dataset503_Emidec"
    result = generate_scars(tiny_checkpoint, source, masks_dir, out, sampler="ddim:3", output_format="nnunet",
                            include_real=source)
    assert len(result.entries) == 1
    assert len(list((out / "imagesTr").glob("*_0000.nii.gz"))) == 3
    _check(out)
