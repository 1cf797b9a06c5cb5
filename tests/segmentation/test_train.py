"""Segmenter training end to end on the phantom: files, resume, extra batches, synthetic data, segment CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.patient import Layout
from claim.data.write import patient_files, write_patient
from claim.errors import ClaimError
from claim.segmentation.checkpoint import load_segmenter, read_checkpoint
from claim.segmentation.data import training_slices
from claim.segmentation.patients import split_patients
from claim.segmentation.train import SegmenterTrainer, train_segmenter
from tests.segmentation.conftest import TEST_CONFIG, train_killed_at_step


@pytest.fixture(scope="module")
def tiny_run(seg_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_run")
    return train_segmenter([seg_data_dir], out, TEST_CONFIG, seed=0, progress=False), out


def test_training_writes_checkpoint_log_and_curves(tiny_run):
    result, out = tiny_run
    assert result.checkpoint == out / "segmenter.pt" and result.step == 3
    written = {p.name for p in out.iterdir()}
    assert {"segmenter.pt", "last.pt", "train_log.jsonl", "curves.png", "config.json"} <= written
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert [r["step"] for r in records if "val" in r] == [2, 3]  # every val_every and at the end
    payload = read_checkpoint(result.checkpoint)
    assert payload["best"]["step"] == result.best_step and set(payload["val_patients"]).isdisjoint(
        payload["train_patients"])
    model, config = load_segmenter(result.checkpoint)
    assert config == TEST_CONFIG and not model.training


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "segmenter.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ClaimError, match="segmenter.pt"):
        load_segmenter(bad)
    with pytest.raises(ClaimError, match="not found"):
        load_segmenter(tmp_path / "missing.pt")


def test_segment_cli_mirrors_layout_and_evaluates(tiny_run, seg_data_dir, tmp_path):
    result, _ = tiny_run
    out = tmp_path / "pred"
    assert main(["segment", "--model", str(result.checkpoint), "--data", str(seg_data_dir), "--out", str(out)]) == 0
    for patient in read_dataset(seg_data_dir):
        (path,) = patient_files(patient, out, "label")
        assert path.is_file()
    assert main(["evaluate", "--pred", str(out), "--gt", str(seg_data_dir), "--json"]) == 0
    png = tmp_path / "png"
    p = read_dataset(seg_data_dir)[0]
    write_patient(replace(p, layout=Layout.PNG, images=np.clip(p.images / p.images.max() * 255, 0, 255),
                          spacing_mm=None, affine=None, slice_thickness_mm=None), png)
    assert main(["segment", "--model", str(result.checkpoint), "--data", str(png), "--out", str(tmp_path / "o")]) == 0
    assert sorted(f.name for f in (tmp_path / "o" / "labels").iterdir()) == sorted(
        f.name for f in (png / "images").iterdir())


def _assert_same_run(a_dir, b_dir) -> None:
    a, b = read_checkpoint(a_dir / "last.pt"), read_checkpoint(b_dir / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    log_a = [json.loads(x) for x in (a_dir / "train_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (b_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r.get("loss") for r in log_a] == [r.get("loss") for r in log_b]


def test_killed_run_resumes_exactly(seg_data_dir, tmp_path, monkeypatch):
    # The poly schedule is a function of (step, steps): a run killed after its step-2 checkpoint and resumed
    # follows the uninterrupted run's learning-rate curve and batches to the last bit.
    config = replace(TEST_CONFIG, steps=4)
    assert config.lr_schedule == "poly"
    train_segmenter([seg_data_dir], tmp_path / "a", config, seed=1, progress=False)
    train_killed_at_step(seg_data_dir, tmp_path / "b", config, monkeypatch, step=3, seed=1)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["step"] == 2
    with pytest.raises(ClaimError, match="--resume"):
        train_segmenter([seg_data_dir], tmp_path / "b", config, seed=1, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "b", config, seed=1, progress=False, resume=True)
    _assert_same_run(tmp_path / "a", tmp_path / "b")


def test_extended_run_equals_uninterrupted_run_with_constant_lr(seg_data_dir, tmp_path):
    # Raising ``steps`` on resume extends a run; with a constant learning rate nothing else changes.
    config = replace(TEST_CONFIG, steps=4, lr_schedule="constant")
    train_segmenter([seg_data_dir], tmp_path / "a", config, seed=1, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "b", replace(config, steps=2), seed=1, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "b", config, seed=1, progress=False, resume=True)
    _assert_same_run(tmp_path / "a", tmp_path / "b")


def test_extra_synthetic_batch_changes_parameters_and_passes_gradient(seg_data_dir):
    patients = read_dataset(seg_data_dir)
    train = training_slices(patients[1:], TEST_CONFIG)
    plain = SegmenterTrainer(TEST_CONFIG, train, patients[:1], seed=2)
    mixed = SegmenterTrainer(TEST_CONFIG, train, patients[:1], seed=2)
    extra_images = torch.from_numpy(train.images[:2]).clone().requires_grad_(True)
    extra_labels = torch.from_numpy(train.labels[:2])
    plain.step(0)
    mixed.step(0, extra_images, extra_labels)
    changed = [not torch.equal(p, q) for p, q in zip(plain.network.parameters(), mixed.network.parameters(),
                                                       strict=True)]
    assert any(changed)
    assert extra_images.grad is not None and extra_images.grad.abs().sum() > 0
    metrics = mixed.validate()
    assert set(metrics) >= {"infarct_dice", "myocardium_dice", "mvo_dice"}


def test_synthetic_folder_joins_training_only(seg_data_dir, tmp_path):
    synthetic = tmp_path / "synthetic"
    for p in read_dataset(seg_data_dir)[:2]:
        write_patient(p.with_arrays(patient_id=f"{p.patient_id}_mask00"), synthetic)
    config = replace(TEST_CONFIG, steps=1, synthetic_fraction=0.5)
    train_segmenter([seg_data_dir], tmp_path / "run", config, synthetic_dirs=[synthetic], seed=0, progress=False)
    described = json.loads((tmp_path / "run" / "config.json").read_text())
    assert described["n_synthetic_slices"] > 0
    assert not any(v.endswith("_mask00") for v in described["val_patients"])


def test_split_is_by_patient_and_stratified(phantom_cohort):
    patients = [case.patient for case in phantom_cohort]
    train, val = split_patients(patients, 0.5, seed=0)
    assert {p.patient_id for p in train}.isdisjoint({p.patient_id for p in val})
    assert len(train) + len(val) == len(patients)
    assert sum(p.has_infarct for p in val) == 1 and sum(not p.has_infarct for p in val) == 1


def test_train_segmenter_cli(seg_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-segmenter", "--data", str(seg_data_dir), "--out", str(out), "--preset", "tiny", "--steps", "1",
            "--seed", "3"]
    assert main(args) == 0
    assert (out / "segmenter.pt").is_file() and "infarct Dice" in capsys.readouterr().out
    assert main(args) == 2  # exists already: a one-line error, not a traceback
    assert main([*args, "--resume"]) == 0


def test_segment_records_roi_and_postprocessing_and_can_skip_it(tiny_run, seg_data_dir, tmp_path):
    result, _ = tiny_run
    on, off = tmp_path / "on", tmp_path / "off"
    assert main(["segment", "--model", str(result.checkpoint), "--data", str(seg_data_dir), "--out", str(on)]) == 0
    assert main(["segment", "--model", str(result.checkpoint), "--data", str(seg_data_dir), "--out", str(off),
                 "--no-postprocess"]) == 0
    record_on = json.loads((on / ".claim-output.json").read_text())["config"]
    record_off = json.loads((off / ".claim-output.json").read_text())["config"]
    assert record_on["postprocess"] is True and record_off["postprocess"] is False
    ids = {p.patient_id for p in read_dataset(seg_data_dir)}
    assert set(record_on["patients"]) == ids
    for entry in record_on["patients"].values():
        assert len(entry["roi_centre"]) == 2 and set(entry["postprocess"]) == {
            "myocardium_removed", "mvo_relabelled", "cavity_removed"}
    assert all("postprocess" not in entry for entry in record_off["patients"].values())


def test_no_validation_trains_on_every_patient_and_keeps_the_last_weights(seg_data_dir, tmp_path):
    out = tmp_path / "all"
    main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(out), "--preset", "tiny", "--steps", "3",
          "--val-every", "2", "--val-fraction", "0", "--seed", "0"])
    payload = read_checkpoint(out / "segmenter.pt")
    n_patients = len(read_dataset(seg_data_dir))
    assert payload["val_patients"] == [] and len(payload["train_patients"]) == n_patients
    assert payload["step"] == 3 and payload["best"]["step"] == 3  # the last step's weights, not the first saved
    last = read_checkpoint(out / "last.pt")
    for name, tensor in payload["model"].items():
        assert torch.equal(tensor, last["model"][name])
    assert json.loads((out / "config.json").read_text())["config"]["val_fraction"] == 0.0
    assert split_patients(read_dataset(seg_data_dir), 0.0, seed=0)[1] == []
