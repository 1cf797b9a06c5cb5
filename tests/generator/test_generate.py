"""Generation end to end on the phantom: layout, labels carried over, untouched background, determinism, nnU-Net."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from claim.cli import main
from claim.data.io import read_nifti
from claim.data.layouts import read_dataset
from claim.data.patient import Layout
from claim.data.write import write_patient
from claim.errors import ClaimError
from claim.generator.train import train_generator
from claim.labels import infarct_mask
from claim.stages.generate import generate_scars, read_mask_labels
from tests.generator.conftest import TINY, make_masks_dir

KEYS = {"image", "label", "source_image", "mask_id", "sampler", "nfe", "seconds", "hist_cluster", "hist_condition"}


def _check_outputs(out, masks_dir, normal, layout_patients):
    entries = json.loads((out / "generation.json").read_text())
    assert entries and all(set(e) >= KEYS for e in entries)
    for e in entries:
        assert (out / e["image"]).is_file() and (out / e["label"]).is_file()
    masks = {m["id"]: m for m in json.loads((masks_dir / "masks.json").read_text())}
    changed = 0
    for patient in layout_patients:
        expected = read_mask_labels(masks_dir, masks[patient.patient_id], normal)
        np.testing.assert_array_equal(patient.label_maps, expected)  # labels = the mask's label maps
        assert patient.patient_id in masks
        assert patient.images.shape == normal.images.shape
        for k in range(patient.n_slices):
            far = ndimage.distance_transform_edt(~infarct_mask(expected[k])) > 3
            np.testing.assert_array_equal(patient.images[k][far], normal.images[k][far])
            changed += int(np.sum(patient.images[k] != normal.images[k]))
    assert changed > 0
    assert list((out / "previews").glob("*.png"))
    return entries


def test_generate_emidec_layout_and_determinism(phantom_dir, tiny_checkpoint, tmp_path):
    masks_dir, normal = make_masks_dir(phantom_dir, tmp_path / "masks")
    for name in ("a", "b"):
        generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / name, sampler="ddim:4", seed=9)
    entries = _check_outputs(tmp_path / "a", masks_dir, normal, read_dataset(tmp_path / "a"))
    assert {e["nfe"] for e in entries} == {4} and {e["sampler"] for e in entries} == {"ddim:4"}
    for e in entries:
        np.testing.assert_array_equal(read_nifti(tmp_path / "a" / e["image"]).data,
                                      read_nifti(tmp_path / "b" / e["image"]).data)


def test_generate_repaint_and_nnunet_with_real(phantom_dir, tiny_checkpoint, tmp_path):
    masks_dir, normal = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=1)
    out = tmp_path / "nn"
    result = generate_scars(tiny_checkpoint, phantom_dir, masks_dir, out, sampler="repaint:2x2", hist_cluster=1,
                            output_format="nnunet", include_real=phantom_dir)
    assert result.entries[0]["nfe"] == 38 and result.entries[0]["hist_cluster"] == 1  # T=20: 20 + 9 * 2
    asked = np.asarray(result.entries[0]["hist_condition"])  # the perturbed centre G was conditioned on
    assert asked.ndim == 1 and asked.size >= 2 and abs(asked.sum() - 1.0) < 0.1 and (asked >= 0).all()  # jittered
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 1 + 4
    assert len(list((out / "imagesTr").glob("*_0000.nii.gz"))) == 5
    synthetic = [p for p in read_dataset(out) if p.patient_id == result.entries[0]["mask_id"]]
    _check_outputs(out, masks_dir, normal, synthetic)


def test_generate_png_layout(phantom_dir, tmp_path):
    # The real data (emidec-slices) are PNG pairs: 8-bit images whose untouched pixels must survive exactly.
    png = tmp_path / "png"
    for p in read_dataset(phantom_dir):
        scaled = np.round(255 * (p.images - p.images.min()) / (np.ptp(p.images) + 1e-6)).astype(np.float32)
        write_patient(replace(p, layout=Layout.PNG, images=scaled, spacing_mm=None, affine=None), png)
    run = train_generator(png, tmp_path / "run", TINY.replace(steps=2), seed=1, progress=False)
    masks_dir, normal = make_masks_dir(png, tmp_path / "masks", n_masks=1)
    out = tmp_path / "out"
    result = generate_scars(run.checkpoint, png, masks_dir, out, sampler="ddim:3", limit=1)
    assert all(e["image"].startswith("images/") and e["label"].startswith("labels/") for e in result.entries)
    _check_outputs(out, masks_dir, normal, read_dataset(out))


def test_generate_errors(phantom_dir, tiny_checkpoint, tmp_path):
    masks_dir, _ = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=1)
    with pytest.raises(ClaimError, match="hist-cluster"):
        generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "o1", hist_cluster=7)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClaimError, match="masks.json"):
        generate_scars(tiny_checkpoint, phantom_dir, tmp_path / "empty", tmp_path / "o2")
    with pytest.raises(ClaimError, match="inside the input"):
        generate_scars(tiny_checkpoint, phantom_dir, masks_dir, masks_dir / "out")


def test_cli_train_then_generate(phantom_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-generator", "--data", str(phantom_dir), "--out", str(run), "--preset", "tiny",
                 "--steps", "2", "--batch-size", "2", "--sample-every", "2"]) == 0
    assert (run / "generator.pt").is_file() and (run / "samples" / "step_000002.png").is_file()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 2
    masks_dir, _ = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=1)
    assert main(["generate", "--model", str(run / "generator.pt"), "--data", str(phantom_dir), "--masks",
                 str(masks_dir), "--out", str(tmp_path / "gen"), "--sampler", "ddim:2", "--limit", "1"]) == 0
    assert (tmp_path / "gen" / "generation.json").is_file()
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert main(["generate", "--model", str(bad), "--data", str(phantom_dir), "--masks", str(masks_dir),
                 "--out", str(tmp_path / "gen2")]) == 2
    assert "bad.pt" in capsys.readouterr().err
