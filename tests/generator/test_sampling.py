"""Sampling loops with a tiny untrained denoiser: background kept exactly, NFE, determinism, sampler parsing."""

from __future__ import annotations

import pytest
import torch

from claim.generator.config import Mode
from claim.generator.denoiser import build_denoiser
from claim.generator.repaint import RePaintPlan
from claim.generator.sampling import (
    ddim_inpaint,
    inpaint,
    make_eps_fn,
    make_model_fn,
    parse_sampler,
    repaint_inpaint,
)
from claim.generator.schedule import model_outputs
from tests.generator.conftest import TINY, _awake, _Counter


@pytest.mark.parametrize(("mode", "prediction"), [(Mode.CLAIM, "eps"), (Mode.CLAIM, "x0"), (Mode.LEFUSION, "eps")])
@pytest.mark.parametrize("sampler", ["ddim:4", "ddpm:4", "repaint:2x2"])
def test_background_exact_nfe_and_determinism(setup, mode, prediction, sampler):
    model, schedule, known, inpaint_mask, myo, _ = setup
    config_model = model if mode == Mode.CLAIM else _lefusion_model()
    hist = setup[5]
    spec = parse_sampler(sampler)
    outs = []
    for _ in range(2):
        eps_fn = _Counter(make_eps_fn(config_model, mode, known, inpaint_mask, myo, hist, schedule=schedule,
                                      prediction=prediction))
        g = torch.Generator().manual_seed(42)
        if spec.kind in ("ddim", "ddpm"):
            out, calls = inpaint(eps_fn, schedule, known, inpaint_mask, spec, g)
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

    torch.manual_seed(0)
    return _awake(build_denoiser(TINY.with_mode(Mode.LEFUSION)).eval())


@pytest.mark.parametrize("k", [1, 7, 20])
def test_ddim_nfe_equals_k(setup, k):
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = _Counter(make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule,
                                  prediction="eps"))
    _, calls = ddim_inpaint(eps_fn, schedule, known, inpaint_mask, k, torch.Generator().manual_seed(0))
    assert calls == eps_fn.calls == k == parse_sampler(f"ddim:{k}").nfe(schedule.timesteps)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_guidance_changes_output_but_not_background(setup, prediction):
    model, schedule, known, inpaint_mask, myo, hist = setup
    with torch.no_grad():
        model.null_hist.fill_(0.5)
    a = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance=1.0, schedule=schedule,
                    prediction=prediction)
    b = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance=3.0, schedule=schedule,
                    prediction=prediction)
    out_a, _ = ddim_inpaint(a, schedule, known, inpaint_mask, 3, torch.Generator().manual_seed(0))
    out_b, _ = ddim_inpaint(b, schedule, known, inpaint_mask, 3, torch.Generator().manual_seed(0))
    assert torch.equal(out_b[~inpaint_mask], known[~inpaint_mask])
    assert not torch.equal(out_a, out_b)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_x0_eps_fn_is_consistent_with_the_networks_clamped_x0(setup, guidance):
    """For x0 nets the samplers get the eps of the network's clamped x0: predict_x0 gives that x0 back, at every t."""
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance, schedule=schedule,
                         prediction="x0")
    raw_fn = make_model_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, guidance)
    g = torch.Generator().manual_seed(5)
    x0_true = torch.rand(known.shape, generator=g) * 2 - 1
    noise = torch.randn(known.shape, generator=g)
    with torch.no_grad():
        for level in (0, 1, schedule.timesteps // 2, schedule.timesteps - 1):
            t = torch.full((known.shape[0],), level, dtype=torch.long)
            x_t = schedule.add_noise(x0_true, noise, t)
            raw = raw_fn(x_t, t) * 4  # scaled so some outputs leave [-1, 1] and the clamp matters
            eps, x0 = model_outputs(raw, x_t, t, schedule, "x0")
            assert torch.isfinite(eps).all()
            torch.testing.assert_close(x0, raw.clamp(-1, 1))
            torch.testing.assert_close(schedule.predict_x0(x_t, eps, t), x0, atol=1e-3, rtol=0)
            out = eps_fn(x_t, t)
            torch.testing.assert_close(schedule.predict_x0(x_t, out, t), raw_fn(x_t, t).clamp(-1, 1),
                                       atol=1e-3, rtol=0)
            # and the eps re-noises the clamped x0 back to x_t (add_noise consistency)
            torch.testing.assert_close(schedule.add_noise(raw_fn(x_t, t).clamp(-1, 1), out, t), x_t,
                                       atol=1e-3, rtol=0)


def test_eps_prediction_passes_the_raw_output_through(setup):
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule, prediction="eps")
    raw_fn = make_model_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist)
    x, t = torch.randn(known.shape), torch.tensor([3, 7])
    with torch.no_grad():
        torch.testing.assert_close(eps_fn(x, t), raw_fn(x, t), rtol=0, atol=0)
    with pytest.raises(ValueError, match="prediction"):
        make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule, prediction="v")


@pytest.mark.parametrize("text", ["ddim", "ddim:0", "repaint:5", "repaint:0x5", "euler:10"])
def test_bad_sampler_text(text):
    with pytest.raises(ValueError):
        parse_sampler(text)


def test_sampler_nfe_at_t300():
    assert parse_sampler("repaint:5x5").nfe(300) == 1480
    assert parse_sampler("repaint:2x2").nfe(300) == 598
    assert parse_sampler("ddim:50").nfe(300) == 50
    assert str(parse_sampler(" DDIM:20 ")) == "ddim:20"


def test_ddpm_sampler_draws_fresh_noise_where_ddim_is_deterministic(setup):
    """ddpm:K walks the same K levels as ddim:K but adds noise at every step but the last: the painted region
    differs from DDIM's and between seeds, while DDIM's output depends on the seed only through its start noise."""
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule, prediction="eps")
    outs = {}
    for sampler in ("ddim:5", "ddpm:5"):
        for seed in (0, 1):
            outs[sampler, seed], calls = inpaint(eps_fn, schedule, known, inpaint_mask, parse_sampler(sampler),
                                                 torch.Generator().manual_seed(seed))
            assert calls == 5
    region = inpaint_mask.expand_as(known)
    assert not torch.allclose(outs["ddim:5", 0][region], outs["ddpm:5", 0][region])
    assert not torch.allclose(outs["ddpm:5", 0][region], outs["ddpm:5", 1][region])
    assert str(parse_sampler("DDPM:25")) == "ddpm:25" and parse_sampler("ddpm:25").nfe(300) == 25
