"""Weight snapshots (``snapshot_every``): copies of the weights a run predicts with, kept along its course so a
run without validation patients can be scored afterwards; they change nothing in training."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.segmentation.checkpoint import load_segmenter, read_checkpoint
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.net import SegmenterEnsemble
from claim.segmentation.run_files import list_snapshots, snapshot_path
from claim.segmentation.train import member_dir, train_segmenter
from claim.segmentation.trainer import validation_metrics
from tests.segmentation.conftest import TEST_CONFIG

SNAPPED = replace(TEST_CONFIG, steps=4, val_every=2, snapshot_every=2)


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_snapshots_hold_the_weights_validated_at_their_step_and_change_nothing(seg_data_dir, tmp_path):
    train_segmenter([seg_data_dir], tmp_path / "snap", SNAPPED, seed=3, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "plain", replace(SNAPPED, snapshot_every=0), seed=3, progress=False)
    snaps = list_snapshots(tmp_path / "snap")
    assert list(snaps) == [2, 4] and snaps[2] == snapshot_path(tmp_path / "snap", 2)
    assert not list_snapshots(tmp_path / "plain")
    _same_weights(read_checkpoint(tmp_path / "snap" / "last.pt")["model"],
                  read_checkpoint(tmp_path / "plain" / "last.pt")["model"])
    # Each snapshot scores on the validation patients exactly what the log recorded at its step.
    val_ids = set(read_checkpoint(tmp_path / "snap" / "segmenter.pt")["val_patients"])
    val = [p for p in read_dataset(seg_data_dir) if p.patient_id in val_ids]
    log = {e["step"]: e["val"] for e in map(json.loads, (tmp_path / "snap" / "train_log.jsonl").read_text()
                                                      .splitlines()) if "val" in e}
    for step, path in snaps.items():
        model, config = load_segmenter(path)
        assert read_checkpoint(path)["step"] == step and config == SNAPPED
        assert validation_metrics(model, config, val) == pytest.approx(log[step], nan_ok=True)


def test_without_validation_the_last_snapshot_is_the_final_model(seg_data_dir, tmp_path):
    config = replace(SNAPPED, val_fraction=0.0)
    train_segmenter([seg_data_dir], tmp_path / "refit", config, seed=3, progress=False)
    last = list_snapshots(tmp_path / "refit")[4]
    _same_weights(read_checkpoint(last)["model"], read_checkpoint(tmp_path / "refit" / "segmenter.pt")["model"])


def test_an_ensemble_combines_its_members_snapshots_and_a_resume_adds_the_new_ones(seg_data_dir, tmp_path):
    pair = replace(SNAPPED, members=2, steps=2)
    out = tmp_path / "pair"
    train_segmenter([seg_data_dir], out, pair, seed=4, progress=False, member_workers=1)
    assert list(list_snapshots(out)) == [2]
    first = list_snapshots(out)[2].stat().st_mtime_ns
    # snapshot_every may change on a resume: it changes no step.
    train_segmenter([seg_data_dir], out, replace(pair, steps=3, snapshot_every=1), seed=4, progress=False,
                    resume=True, member_workers=1)
    snaps = list_snapshots(out)
    assert list(snaps) == [2, 3] and snaps[2].stat().st_mtime_ns == first
    for step, path in snaps.items():
        members = [read_checkpoint(list_snapshots(member_dir(out, k))[step])["model"] for k in range(2)]
        _same_weights(read_checkpoint(path)["model"], {**{f"members.0.{k}": v for k, v in members[0].items()},
                                                       **{f"members.1.{k}": v for k, v in members[1].items()}})
        model, config = load_segmenter(path)
        assert isinstance(model, SegmenterEnsemble) and config.members == 2
        assert read_checkpoint(path)["member_steps"] == [step, step]
    # The final ensemble is the last snapshot's.
    _same_weights(read_checkpoint(snaps[3])["model"], read_checkpoint(out / "segmenter.pt")["model"])


def test_snapshot_every_is_a_flag_recorded_in_the_config_and_checked(seg_data_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="snapshot_every"):
        SegmenterConfig(snapshot_every=-1)
    with pytest.raises(SystemExit) as exited:
        main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "bad"), "--snapshot-every",
              "-5"])
    assert exited.value.code == 2 and not (tmp_path / "bad").exists()
    assert "--snapshot-every" in capsys.readouterr().err
    assert main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--steps", "4", "--snapshot-every", "2", "--val-fraction", "0"]) == 0
    assert f"2 weight snapshot(s), steps 2-4 -> {tmp_path / 'run' / 'snapshots'}" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["snapshot_every"] == 2 and list(list_snapshots(tmp_path / "run")) == [2, 4]
    assert main(["train-segmenter", "-c", str(tmp_path / "run" / "config.json"), "--out", str(tmp_path / "again")]) == 0
    assert list(list_snapshots(tmp_path / "again")) == [2, 4]
