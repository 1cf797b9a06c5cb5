"""Sampling loops with a tiny untrained denoiser: background kept exactly, NFE, determinism, sampler parsing."""

from __future__ import annotations

import pytest
import torch

from claim.generator.config import Mode
from claim.generator.denoiser import build_denoiser
from claim.generator.loss import dilate_mask
from claim.generator.repaint import RePaintPlan
from claim.generator.sampling import ddim_inpaint, make_eps_fn, parse_sampler, repaint_inpaint
from claim.generator.schedule import NoiseSchedule
from tests.generator.conftest import TINY


def _awake(model):
    # MONAI zero-initialises the output conv, so an untrained net predicts eps = 0 whatever its inputs; wake it up.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = _awake(build_denoiser(TINY).eval())
    schedule = NoiseSchedule(TINY.timesteps)
    g = torch.Generator().manual_seed(3)
    known = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    lesion = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    lesion[:, :, 10:16, 12:20] = True
    inpaint_mask = dilate_mask(lesion, 2)
    myo = torch.zeros_like(lesion)
    myo[:, :, 8:20, 8:24] = True
    hist = torch.full((2, 16), 1 / 16)
    return model, schedule, known, inpaint_mask, myo, hist


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.fn(x, t)


@pytest.mark.parametrize("mode", [Mode.CLAIM, Mode.LEFUSION])
@pytest.mark.parametrize("sampler", ["ddim:4", "repaint:2x2"])
def test_background_exact_nfe_and_determinism(setup, mode, sampler):
    model, schedule, known, inpaint_mask, myo, _ = setup
    config_model = model if mode == Mode.CLAIM else _lefusion_model()
    hist = setup[5]
    spec = parse_sampler(sampler)
    outs = []
    for _ in range(2):
        eps_fn = _Counter(make_eps_fn(config_model, mode, known, inpaint_mask, myo, hist))
        g = torch.Generator().manual_seed(42)
        if spec.kind == "ddim":
            out, calls = ddim_inpaint(eps_fn, schedule, known, inpaint_mask, spec.steps, g)
        else:
            plan = RePaintPlan.build(schedule.timesteps, spec.jump_length, spec.jump_n_sample)
            out, calls = repaint_inpaint(eps_fn, schedule, known, inpaint_mask, plan, g)
        assert calls == eps_fn.calls == spec.nfe(schedule.timesteps)
        outs.append(out)
    assert torch.equal(outs[0][~inpaint_mask], known[~inpaint_mask])  # bit-identical background
    assert torch.equal(outs[0], outs[1])  # same seed, same image
    assert not torch.equal(outs[0][inpaint_mask], known[inpaint_mask])
    assert outs[0].abs().max() <= 1.0


def _lefusion_model():
    from dataclasses import replace

    torch.manual_seed(0)
    return _awake(build_denoiser(replace(TINY, mode=Mode.LEFUSION)).eval())


@pytest.mark.parametrize("k", [1, 7, 20])
def test_ddim_nfe_equals_k(setup, k):
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = _Counter(make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist))
    _, calls = ddim_inpaint(eps_fn, schedule, known, inpaint_mask, k, torch.Generator().manual_seed(0))
    assert calls == eps_fn.calls == k == parse_sampler(f"ddim:{k}").nfe(schedule.timesteps)


def test_guidance_changes_output_but_not_background(setup):
    model, schedule, known, inpaint_mask, myo, hist = setup
    with torch.no_grad():
        model.null_hist.fill_(0.5)
    a = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance=1.0)
    b = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance=3.0)
    out_a, _ = ddim_inpaint(a, schedule, known, inpaint_mask, 3, torch.Generator().manual_seed(0))
    out_b, _ = ddim_inpaint(b, schedule, known, inpaint_mask, 3, torch.Generator().manual_seed(0))
    assert torch.equal(out_b[~inpaint_mask], known[~inpaint_mask])
    assert not torch.equal(out_a, out_b)


@pytest.mark.parametrize("text", ["ddim", "ddim:0", "repaint:5", "repaint:0x5", "euler:10"])
def test_bad_sampler_text(text):
    with pytest.raises(ValueError):
        parse_sampler(text)


def test_sampler_nfe_at_t300():
    assert parse_sampler("repaint:5x5").nfe(300) == 1480
    assert parse_sampler("repaint:2x2").nfe(300) == 598
    assert parse_sampler("ddim:50").nfe(300) == 50
    assert str(parse_sampler(" DDIM:20 ")) == "ddim:20"
