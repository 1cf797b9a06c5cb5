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
from claim.segmentation.train import SegmenterTrainer, member_dir, train_segmenter
from claim.segmentation.trainer import validation_metrics
from tests.segmentation.conftest import TEST_CONFIG

# A weight EMA, so the snapshots must hold the averaged weights that validation and segmenter.pt use.
SNAPPED = replace(TEST_CONFIG, steps=4, val_every=2, snapshot_every=2, ema_decay=0.5)


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
    for key in ("model", "ema"):
        _same_weights(read_checkpoint(tmp_path / "snap" / "last.pt")[key],
                      read_checkpoint(tmp_path / "plain" / "last.pt")[key])
    # Each snapshot scores on the validation patients exactly what the log recorded at its step.
    val_ids = set(read_checkpoint(tmp_path / "snap" / "segmenter.pt")["val_patients"])
    val = [p for p in read_dataset(seg_data_dir) if p.patient_id in val_ids]
    log = {e["step"]: e["val"] for e in map(json.loads, (tmp_path / "snap" / "train_log.jsonl").read_text()
                                                      .splitlines()) if "val" in e}
    for step, path in snaps.items():
        model, config = load_segmenter(path)
        assert read_checkpoint(path)["step"] == step and config == SNAPPED
        assert validation_metrics(model, config, val) == pytest.approx(log[step], nan_ok=True)


def test_without_validation_the_last_step_is_always_kept_and_is_the_final_model(seg_data_dir, tmp_path):
    config = replace(SNAPPED, val_fraction=0.0, steps=5)
    train_segmenter([seg_data_dir], tmp_path / "refit", config, seed=3, progress=False)
    snaps = list_snapshots(tmp_path / "refit")
    assert list(snaps) == [2, 4, 5]  # every 2 steps, and the last one although 5 is no multiple of 2
    _same_weights(read_checkpoint(snaps[5])["model"], read_checkpoint(tmp_path / "refit" / "segmenter.pt")["model"])


def _kill_after_saving(monkeypatch, name: str, step: int) -> None:
    """Kill the run right after it has written ``name`` at ``step`` (once)."""
    real_save = SegmenterTrainer.save
    fired = {"done": False}

    def save(self, path, **kwargs):
        real_save(self, path, **kwargs)
        if not fired["done"] and path.name == name and self.steps_done == step:
            fired["done"] = True
            raise KeyboardInterrupt

    monkeypatch.setattr(SegmenterTrainer, "save", save)


def test_a_kill_after_the_resume_point_never_loses_the_snapshot_of_that_step(seg_data_dir, tmp_path, monkeypatch):
    config = replace(SNAPPED, val_fraction=0.0)
    _kill_after_saving(monkeypatch, "last.pt", 2)  # the step's last write: the resume point
    with pytest.raises(KeyboardInterrupt):
        train_segmenter([seg_data_dir], tmp_path / "run", config, seed=3, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "run", config, seed=3, progress=False, resume=True)
    train_segmenter([seg_data_dir], tmp_path / "whole", config, seed=3, progress=False)
    assert list(list_snapshots(tmp_path / "run")) == [2, 4]
    for step, path in list_snapshots(tmp_path / "whole").items():
        _same_weights(read_checkpoint(list_snapshots(tmp_path / "run")[step])["model"], read_checkpoint(path)["model"])


def test_a_resume_drops_the_snapshots_of_the_lost_steps(seg_data_dir, tmp_path, monkeypatch):
    config = replace(SNAPPED, val_fraction=0.0, steps=6, snapshot_every=1)
    _kill_after_saving(monkeypatch, "step_000003.pt", 3)  # snapshots 1-3 written, the resume point is step 2
    with pytest.raises(KeyboardInterrupt):
        train_segmenter([seg_data_dir], tmp_path / "run", config, seed=3, progress=False)
    assert list(list_snapshots(tmp_path / "run")) == [1, 2, 3]
    # Resumed to a longer run with another cadence: the poly schedule now decays over 8 steps, so the old step 3
    # is not this run's step 3, and the new cadence does not write step 3 again.
    train_segmenter([seg_data_dir], tmp_path / "run", replace(config, steps=8, snapshot_every=4), seed=3,
                    progress=False, resume=True)
    snaps = list_snapshots(tmp_path / "run")
    assert list(snaps) == [1, 2, 4, 8]
    _same_weights(read_checkpoint(snaps[8])["model"], read_checkpoint(tmp_path / "run" / "segmenter.pt")["model"])


def test_an_ensemble_combines_its_members_snapshots_and_a_resume_adds_the_new_ones(seg_data_dir, tmp_path, caplog):
    pair = replace(SNAPPED, members=2, steps=2)
    out = tmp_path / "pair"
    train_segmenter([seg_data_dir], out, pair, seed=4, progress=False, member_workers=1)
    assert list(list_snapshots(out)) == [2]
    # snapshot_every may change on a resume: it changes no step.
    train_segmenter([seg_data_dir], out, replace(pair, steps=3, snapshot_every=1), seed=4, progress=False,
                    resume=True, member_workers=1)
    snaps = list_snapshots(out)
    assert list(snaps) == [2, 3]
    for step, path in snaps.items():
        members = [read_checkpoint(list_snapshots(member_dir(out, k))[step])["model"] for k in range(2)]
        _same_weights(read_checkpoint(path)["model"], {**{f"members.0.{k}": v for k, v in members[0].items()},
                                                       **{f"members.1.{k}": v for k, v in members[1].items()}})
        model, config = load_segmenter(path)
        assert isinstance(model, SegmenterEnsemble) and config.members == 2
        assert read_checkpoint(path)["member_steps"] == [step, step]
    # The final ensemble is the last snapshot's.
    _same_weights(read_checkpoint(snaps[3])["model"], read_checkpoint(out / "segmenter.pt")["model"])
    # A step only one member kept is named, and the ensemble keeps no snapshot of it.
    list_snapshots(member_dir(out, 1))[2].unlink()
    with caplog.at_level("WARNING"):
        train_segmenter([seg_data_dir], out, replace(pair, steps=3), seed=4, progress=False, resume=True,
                        member_workers=1)
    assert "snapshots of steps [2] were kept by some members only" in caplog.text
    assert list(list_snapshots(out)) == [3]


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
    # A resume that does not repeat --snapshot-every keeps the run's cadence (it fell back to the preset's 0 before).
    assert main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--steps", "6", "--val-fraction", "0", "--resume"]) == 0
    assert list(list_snapshots(tmp_path / "run")) == [2, 4, 6]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["snapshot_every"] == 2
    # Nor does it fall back to the preset's steps (tiny's 20): a plain resume of a finished run stays at step 6.
    assert main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--val-fraction", "0", "--resume"]) == 0
    assert list(list_snapshots(tmp_path / "run")) == [2, 4, 6]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["steps"] == 6
