"""Library multistep solvers (DPM-Solver++, UniPC) on our schedule: the mapping, exact background, NFE, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claim.generator.config import MODE_DEFAULTS, GeneratorConfig, Mode
from claim.generator.sampling import inpaint, make_eps_fn, parse_sampler
from claim.generator.schedule import NoiseSchedule
from claim.generator.solvers import make_scheduler, solver_inpaint, solver_times
from tests.generator.conftest import _Counter


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the library's own np.array(tensor) call
@pytest.mark.parametrize("timesteps", [20, 300])
@pytest.mark.parametrize("solver", ["dpm", "unipc"])
def test_scheduler_carries_our_schedule(timesteps, solver):
    ours = NoiseSchedule(timesteps)
    theirs = make_scheduler(ours, solver, 2)
    assert theirs.config.num_train_timesteps == timesteps
    np.testing.assert_allclose(theirs.betas.numpy(), ours.betas.numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(theirs.alphas_cumprod.numpy(), ours.alphas_cumprod.numpy())
    # Its noise levels are the VP sigmas of our abar at the visited timesteps, then zero (the clean image).
    theirs.set_timesteps(8)
    t = theirs.timesteps.numpy()
    abar = ours.alphas_cumprod.numpy()[t].astype(np.float64)
    np.testing.assert_allclose(theirs.sigmas.numpy()[:-1], np.sqrt((1 - abar) / abar), rtol=1e-6)
    assert theirs.sigmas[-1] == 0
    assert t[0] == timesteps - 1 and np.all(np.diff(t) < 0)


def test_first_order_dpm_is_ddim_on_the_same_levels(setup):
    """DPM-Solver++ of order 1 is DDIM (eta 0) in closed form: the library's steps equal ours on the same levels."""
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule, prediction="eps")
    noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(5))
    out, calls = solver_inpaint(eps_fn, schedule, known, inpaint_mask, solver="dpm", order=1, steps=6, noise=noise)
    times = [*solver_times(schedule, 6), -1]
    x = noise
    with torch.no_grad():
        for t, t_prev in zip(times[:-1], times[1:], strict=True):
            tt, tp = torch.full((2,), t), torch.full((2,), t_prev)
            x = torch.where(inpaint_mask, x, schedule.add_noise(known, noise, tt))
            x = schedule.ddim_step(x, eps_fn(x, tt), tt, tp)
    ddim = torch.where(inpaint_mask, x.clamp(-1, 1), known)
    assert calls == 6
    torch.testing.assert_close(out, ddim, atol=2e-4, rtol=0)


def test_higher_order_differs_from_first_order(setup):
    model, schedule, known, inpaint_mask, myo, hist = setup
    eps_fn = make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule, prediction="x0")
    noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(5))
    first, _ = solver_inpaint(eps_fn, schedule, known, inpaint_mask, solver="dpm", order=1, steps=6, noise=noise)
    second, _ = solver_inpaint(eps_fn, schedule, known, inpaint_mask, solver="dpm", order=2, steps=6, noise=noise)
    assert (first - second)[inpaint_mask].abs().max() > 1e-4


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("sampler", ["dpm2:5", "dpm3:4", "unipc2:5", "dpm1:1", "unipc3:3"])
def test_background_exact_nfe_and_determinism(setup, prediction, sampler):
    model, schedule, known, inpaint_mask, myo, hist = setup
    spec = parse_sampler(sampler)
    outs = []
    for _ in range(2):
        eps_fn = _Counter(make_eps_fn(model, Mode.CLAIM, known, inpaint_mask, myo, hist, schedule=schedule,
                                      prediction=prediction))
        out, calls = inpaint(eps_fn, schedule, known, inpaint_mask, spec, torch.Generator().manual_seed(42))
        assert calls == eps_fn.calls == spec.nfe(schedule.timesteps) == spec.steps
        outs.append(out)
    assert torch.equal(outs[0][~inpaint_mask], known[~inpaint_mask])  # bit-identical background
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0][inpaint_mask], known[inpaint_mask])
    assert outs[0].abs().max() <= 1.0 and torch.isfinite(outs[0]).all()


@pytest.mark.parametrize(("text", "kind", "order", "steps", "shown"), [
    ("dpm:8", "dpm", 2, 8, "dpm2:8"), ("DPM3:10", "dpm", 3, 10, "dpm3:10"), ("unipc1:5", "unipc", 1, 5, "unipc1:5"),
])
def test_parse_solver_names(text, kind, order, steps, shown):
    spec = parse_sampler(text)
    assert (spec.kind, spec.order, spec.steps, str(spec)) == (kind, order, steps, shown)
    assert parse_sampler(str(spec)) == spec


@pytest.mark.parametrize("text", ["dpm4:8", "dpm:0", "unipc2:", "dpm2x8", "heun:8"])
def test_parse_rejects_bad_solver_names(text):
    with pytest.raises(ValueError, match="sampler|order|steps"):
        parse_sampler(text)


def test_claim_default_is_few_step():
    spec = parse_sampler(MODE_DEFAULTS[Mode.CLAIM]["default_sampler"])
    assert spec.kind in ("dpm", "unipc") and spec.nfe(300) <= 10
    assert GeneratorConfig().default_sampler == str(spec)
    assert MODE_DEFAULTS[Mode.LEFUSION]["default_sampler"] == "repaint:5x5"  # the faithful baseline keeps RePaint
