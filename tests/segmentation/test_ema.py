"""The segmenter's weight EMA: training unchanged, the average follows its rule, checkpoints and resume keep it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.segmentation.checkpoint import load_segmenter, read_checkpoint
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import training_slices
from claim.segmentation.train import SegmenterTrainer, train_segmenter
from claim.training import ema_horizon
from tests.segmentation.conftest import TEST_CONFIG, train_killed_at_step

DECAY = 0.5  # horizon 2: the EMA copies the weights after update 1 and averages from update 2 on


def _weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_ema_follows_its_rule_and_leaves_training_unchanged(seg_data_dir):
    patients = sorted(read_dataset(seg_data_dir), key=lambda p: not p.has_infarct)
    train = training_slices(patients[1:], TEST_CONFIG)
    plain = SegmenterTrainer(TEST_CONFIG, train, patients[:1], seed=3)
    averaged = SegmenterTrainer(replace(TEST_CONFIG, ema_decay=DECAY), train, patients[:1], seed=3)
    assert plain.ema is None and plain.evaluated_network is plain.network
    assert averaged.evaluated_network is averaged.ema
    assert ema_horizon(DECAY) == 2
    expected = None
    for step in range(4):
        plain.step(step)
        averaged.step(step)
        online = _weights(plain.network)
        for a, b in zip(online, _weights(averaged.network), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # the EMA never touches training
        if step + 1 < ema_horizon(DECAY):
            expected = online
        else:
            expected = [e + (1 - DECAY) * (w - e) for e, w in zip(expected, online, strict=True)]
        for e, got in zip(expected, _weights(averaged.ema), strict=True):
            torch.testing.assert_close(got, e)
    assert any(not torch.equal(e, w) for e, w in zip(_weights(averaged.ema), online, strict=True))
    assert not any(p.requires_grad for p in averaged.ema.parameters())
    online_val, ema_val = averaged.validate(averaged.network), averaged.validate()
    assert online_val["n_with_infarct"] == 1
    assert repr(online_val) == repr(plain.validate())  # scoring the online weights = scoring the plain trainer
    assert set(ema_val) == set(online_val)


def test_run_validates_both_and_keeps_the_average_in_its_checkpoint(seg_data_dir, tmp_path):
    # One validation, at the last step: the best checkpoint is the EMA of that step.
    config = replace(TEST_CONFIG, ema_decay=DECAY, steps=3, val_every=3)
    train_segmenter([seg_data_dir], tmp_path / "run", config, seed=0, progress=False)
    best, last = read_checkpoint(tmp_path / "run" / "segmenter.pt"), read_checkpoint(tmp_path / "run" / "last.pt")
    assert "ema" not in best and {"ema", "optimizer"} <= set(last)
    for key in best["model"]:
        torch.testing.assert_close(best["model"][key], last["ema"][key], rtol=0, atol=0)
    assert any(not torch.equal(last["model"][k], last["ema"][k]) for k in last["model"])
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    (val,) = [r for r in records if "val" in r]
    assert set(val["val_online"]) == set(val["val"])
    model, loaded = load_segmenter(tmp_path / "run" / "segmenter.pt")
    assert loaded.ema_decay == DECAY and not model.training


def test_killed_ema_run_resumes_exactly(seg_data_dir, tmp_path, monkeypatch):
    config = replace(TEST_CONFIG, ema_decay=DECAY, steps=4)
    train_segmenter([seg_data_dir], tmp_path / "a", config, seed=1, progress=False)
    train_killed_at_step(seg_data_dir, tmp_path / "b", config, monkeypatch, step=3, seed=1)
    train_segmenter([seg_data_dir], tmp_path / "b", config, seed=1, progress=False, resume=True)
    a, b = read_checkpoint(tmp_path / "a" / "last.pt"), read_checkpoint(tmp_path / "b" / "last.pt")
    for part in ("model", "ema"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=0)


def test_ema_decay_is_range_checked(tmp_path, capsys):
    with pytest.raises(ValueError, match="ema_decay"):
        SegmenterConfig(ema_decay=1.0)
    with pytest.raises(SystemExit):
        main(["train-segmenter", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--ema-decay", "1"])
    assert "--ema-decay" in capsys.readouterr().err
