"""Pinned numbers and one-source checks: sampler outputs of a fixed tiny net, and training/sampling contexts.

The pinned values were recorded with this code; a change that moves them changes what every saved model samples,
so it must be deliberate (update the numbers in the same commit and say why).
"""

from __future__ import annotations

import pytest
import torch

from claim.generator.config import Mode
from claim.generator.context import build_context, inpaint_region
from claim.generator.denoiser import build_denoiser
from claim.generator.repaint import RePaintPlan
from claim.generator.sampling import ddim_inpaint, make_eps_fn, make_model_fn, repaint_inpaint
from claim.generator.schedule import NoiseSchedule
from claim.generator.train import training_loss
from claim.labels import Label
from tests.generator.conftest import TINY, _awake

# (sum and sum of squares over the inpainting region, one pixel inside it) per sampler; CPU, float32.
PINNED = {
    "ddim:4": (57.13117980957031, 224.17803955078125, 1.0),
    "repaint:2x2": (55.543212890625, 64.03032684326172, 1.0),
}


def _tiny_net(mode: Mode):
    torch.manual_seed(0)
    return _awake(build_denoiser(TINY.with_mode(mode).replace(prediction="eps")).eval())


def _batch():
    g = torch.Generator().manual_seed(3)
    known = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    labels = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    labels[:, :, 8:20, 8:24] = Label.MYOCARDIUM
    labels[:, :, 10:16, 12:20] = Label.INFARCT
    labels[1, :, 12:14, 14:17] = Label.MVO
    return known, labels


def _sample(sampler: str) -> torch.Tensor:
    mode = Mode.CLAIM if sampler.startswith("ddim") else Mode.LEFUSION
    config = TINY.with_mode(mode).replace(prediction="eps")
    model, schedule = _tiny_net(mode), NoiseSchedule(config.timesteps)
    known, labels = _batch()
    region = inpaint_region(config, labels)
    myo = (labels >= Label.MYOCARDIUM) & (labels <= Label.MVO)
    eps_fn = make_eps_fn(model, mode, known, region, myo, torch.full((2, 16), 1 / 16), schedule=schedule,
                         prediction="eps")
    g = torch.Generator().manual_seed(42)
    with torch.no_grad():
        if sampler == "ddim:4":
            out, _ = ddim_inpaint(eps_fn, schedule, known, region, 4, g)
        else:
            out, _ = repaint_inpaint(eps_fn, schedule, known, region, RePaintPlan.build(schedule.timesteps, 2, 2), g)
    return out, region


@pytest.mark.parametrize("sampler", sorted(PINNED))
def test_sampler_outputs_equal_pinned_numbers(sampler):
    out, region = _sample(sampler)
    got = (float(out[region].sum()), float(out[region].square().sum()), float(out[1, 0, 14, 18]))
    torch.testing.assert_close(torch.tensor(got), torch.tensor(PINNED[sampler]), rtol=1e-5, atol=1e-5)


def test_training_and_sampling_build_identical_context():
    """The denoiser sees the same context channels when it learns (training_loss) as when it paints (sampling)."""
    config = TINY  # claim mode, 2-pixel band
    model = _tiny_net(Mode.CLAIM)
    known, labels = _batch()
    seen: list[torch.Tensor] = []
    hook = model.unet.register_forward_pre_hook(lambda _module, args, kwargs: seen.append(args[0].detach().clone()),
                                                with_kwargs=True)
    try:
        schedule = NoiseSchedule(config.timesteps)
        with torch.no_grad():
            training_loss(model, schedule, config, known, labels, torch.full((2, 16), 1 / 16),
                          torch.Generator().manual_seed(0))
            region = inpaint_region(config, labels)
            myo = (labels >= Label.MYOCARDIUM) & (labels <= Label.MVO)
            raw_fn = make_model_fn(model, Mode.CLAIM, known, region, myo, torch.full((2, 16), 1 / 16))
            raw_fn(torch.zeros_like(known), torch.zeros(2, dtype=torch.long))
    finally:
        hook.remove()
    train_input, sample_input = seen
    assert train_input.shape == sample_input.shape == (2, 4, 32, 32)
    assert torch.equal(train_input[:, 1:], sample_input[:, 1:])
    assert torch.equal(train_input[:, 1:], build_context(known, region, labels))
    # The band is part of the region, the MVO too; nothing beyond the band is blanked.
    assert region.sum() > ((labels == Label.INFARCT) | (labels == Label.MVO)).sum()
    assert torch.equal(train_input[:, 1:2][~region], known[~region])
