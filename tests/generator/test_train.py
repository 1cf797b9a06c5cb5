"""Training: exact resume, checkpoint contents, and clear errors for bad checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from claim.errors import ClaimError
from claim.generator.config import Mode, preset_config
from claim.generator.train import load_generator, train_generator
from tests.generator.conftest import TINY


@pytest.mark.parametrize("mode", [Mode.CLAIM, Mode.LEFUSION])
def test_resume_reproduces_an_uninterrupted_run(phantom_dir, tmp_path, mode):
    config = replace(TINY, mode=mode)
    full = train_generator(phantom_dir, tmp_path / "full", config, steps=4, seed=5, progress=False)
    part = train_generator(phantom_dir, tmp_path / "part", config, steps=2, seed=5, progress=False)
    rest = train_generator(phantom_dir, tmp_path / "part", config, steps=4, seed=5, resume=True, progress=False)
    assert part.step == 2 and rest.step == 4
    assert len(full.losses) == 4 and len(rest.losses) == 2
    torch.testing.assert_close(torch.tensor(part.losses + rest.losses), torch.tensor(full.losses), rtol=1e-5, atol=1e-6)
    a = torch.load(full.checkpoint, weights_only=False)
    b = torch.load(rest.checkpoint, weights_only=False)
    for key in ("model", "ema"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=1e-5, atol=1e-6)
    log = [json.loads(line) for line in (tmp_path / "part" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]


def test_checkpoint_is_self_describing(tiny_checkpoint):
    payload = torch.load(tiny_checkpoint, weights_only=False)
    for key in ("config", "mode", "version", "step", "ema", "model", "optimizer", "rng", "hist_centres", "crop_size"):
        assert key in payload
    loaded = load_generator(tiny_checkpoint)
    assert loaded.config == TINY and loaded.step == 3
    assert loaded.hist_centres.shape == (2, 16)
    assert not loaded.model.training


def test_bad_checkpoints_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    for path in (garbage, foreign, tmp_path / "missing.pt"):
        with pytest.raises(ClaimError, match=path.name):
            load_generator(path)


def test_resume_guards(phantom_dir, tiny_checkpoint):
    run = tiny_checkpoint.parent
    with pytest.raises(ClaimError, match="exists already"):
        train_generator(phantom_dir, run, TINY, steps=4, progress=False)
    with pytest.raises(ClaimError, match="different config"):
        train_generator(phantom_dir, run, replace(TINY, lr=1.0), steps=4, resume=True, progress=False)


def test_presets():
    tiny, standard = preset_config("tiny"), preset_config("standard", mode="lefusion")
    assert tiny.crop_size == 48 and standard.crop_size == 96
    assert standard.default_sampler == "repaint:5x5" and standard.in_channels == 1 and tiny.in_channels == 4
    with pytest.raises(ValueError):
        preset_config("huge")
