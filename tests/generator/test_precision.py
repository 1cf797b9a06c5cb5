"""Precision: fp32 by default and bit for bit unchanged, bf16 autocast where the hardware has it, auto that falls
back to fp32 where it does not (simulated here: CI machines may have bf16 units)."""

from __future__ import annotations

import json

import pytest
import torch

import claim.runtime
from claim.errors import ClaimError
from claim.generator.train import train_generator
from claim.runtime import resolve_precision
from claim.segmentation.train import train_segmenter
from tests.generator.conftest import TINY
from tests.segmentation.conftest import TEST_CONFIG


@pytest.fixture()
def no_bf16(monkeypatch):
    monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda: False)


@pytest.fixture()
def with_bf16(monkeypatch):
    monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda: True)


def test_auto_falls_back_to_fp32_without_bf16(no_bf16):
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ClaimError, match="no fast bf16"):
        resolve_precision("bf16", "cpu")
    with pytest.raises(ClaimError, match="must be one of"):
        resolve_precision("fp16", "cpu")


def test_fp32_path_runs_and_equals_the_default_where_bf16_is_unavailable(no_bf16, phantom_dir, tmp_path):
    config = TINY.replace(steps=3)
    default = train_generator(phantom_dir, tmp_path / "default", config, seed=1, progress=False)
    auto = train_generator(phantom_dir, tmp_path / "auto", config, seed=1, progress=False, precision="auto")
    a, b = (torch.load(r.checkpoint, weights_only=False) for r in (default, auto))
    assert a["precision"] == b["precision"] == "fp32"
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["precision"] == "fp32"


def test_bf16_trains_close_to_fp32_and_is_recorded(with_bf16, phantom_dir, tmp_path):
    config = TINY.replace(steps=3)
    fp32 = train_generator(phantom_dir, tmp_path / "fp32", config, seed=1, progress=False)
    bf16 = train_generator(phantom_dir, tmp_path / "bf16", config, seed=1, progress=False, precision="bf16")
    payload = torch.load(bf16.checkpoint, weights_only=False)
    assert payload["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in payload["model"].values() if v.is_floating_point())  # fp32 weights
    # The same batches and noise: losses agree to bf16's resolution, not bit for bit.
    torch.testing.assert_close(torch.tensor(bf16.losses), torch.tensor(fp32.losses), rtol=0.05, atol=0.01)
    assert bf16.losses != fp32.losses


def test_segmenter_records_its_precision(with_bf16, tmp_path):
    from claim.phantom import write_phantom_cohort
    from tests.conftest import SMALL

    write_phantom_cohort(tmp_path / "data", 4, seed=5, config=SMALL, progress=False)
    result = train_segmenter([tmp_path / "data"], tmp_path / "run", TEST_CONFIG.replace(steps=2), seed=0,
                             progress=False, precision="auto")
    assert torch.load(result.checkpoint, weights_only=False)["precision"] == "bf16"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"


def test_attention_kernel_follows_the_step_and_both_kernels_agree():
    """The fused attention kernel is used except for a bf16 training step on a CPU (its backward is slower
    there), and switching kernels does not change what the denoiser computes."""
    from claim.generator.denoiser import build_denoiser

    config = TINY.replace(attention_levels=(False, True))
    torch.manual_seed(0)
    model = build_denoiser(config)
    blocks = [m for m in model.modules() if hasattr(m, "use_flash_attention")]
    assert blocks
    x = torch.randn(2, config.in_channels, config.crop_size, config.crop_size)
    t, hist = torch.tensor([3, 7]), torch.full((2, config.hist_bins), 1.0 / config.hist_bins)

    def kernels() -> set[bool]:
        return {b.use_flash_attention for b in blocks}

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, t, hist)
    assert kernels() == {True}  # sampling in bf16: fused
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, t, hist)
    assert kernels() == {False}  # a bf16 training step: einsum + softmax
    fused = model(x, t, hist)  # fp32 training step
    assert kernels() == {True}
    for block in blocks:
        block._forward_pre_hooks.clear()
        block.use_flash_attention = False
    torch.testing.assert_close(model(x, t, hist), fused, rtol=1e-5, atol=1e-5)
