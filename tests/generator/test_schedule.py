"""Cosine schedule values (LeFusion's reference numbers, MONAI agreement) and the closed-form steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.schedulers.scheduler import _cosine_beta

from claim.generator.schedule import NoiseSchedule, cosine_betas, model_outputs


def test_cosine_betas_match_reference_values():
    betas = cosine_betas(300)
    assert betas.shape == (300,)
    np.testing.assert_allclose(betas[[0, 150, 298]], [1.56e-4, 0.0105, 0.75], rtol=0.02)
    assert betas[299] == 0.9999  # LeFusion's clip; MONAI clips at 0.999
    abar = np.cumprod(1 - betas)
    np.testing.assert_allclose(abar[[0, 150]], [0.99984, 0.489], rtol=1e-3)


def test_agrees_with_monai_cosine_except_the_clip():
    monai_betas = _cosine_beta(300)[0].double().numpy()
    np.testing.assert_allclose(cosine_betas(300)[:-1], monai_betas[:-1], rtol=1e-3, atol=1e-6)


def test_exact_eps_gives_back_x0():
    schedule = NoiseSchedule(20)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(2, 1, 8, 8, generator=g)
    t = torch.tensor([7, 19])
    x_t = schedule.add_noise(x0, noise, t)
    torch.testing.assert_close(schedule.predict_x0(x_t, noise, t), x0, atol=1e-3, rtol=0)
    out = schedule.ddim_step(x_t, noise, t, torch.tensor([-1, -1]))
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)
    # At t = 0 the ancestral step adds no noise and returns the clamped x0 estimate.
    x_0 = schedule.add_noise(x0, noise, torch.zeros(2, dtype=torch.long))
    step = schedule.ancestral_step(x_0, noise, torch.zeros(2, dtype=torch.long), torch.randn(2, 1, 8, 8))
    torch.testing.assert_close(step, x0, atol=1e-4, rtol=0)


def test_eps_from_x0_inverts_add_noise_and_model_outputs_converts_once():
    schedule = NoiseSchedule(300)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 150, 280])
    x_t = schedule.add_noise(x0, noise, t)
    torch.testing.assert_close(schedule.eps_from_x0(x_t, x0, t), noise, atol=2e-3, rtol=0)  # t = 0 included
    eps, est = model_outputs(x0 * 3, x_t, t, schedule, "x0")  # out-of-range output: clamped before eps
    torch.testing.assert_close(est, (x0 * 3).clamp(-1, 1))
    assert torch.isfinite(eps).all()
    eps2, est2 = model_outputs(noise, x_t, t, schedule, "eps")
    assert eps2 is noise
    torch.testing.assert_close(est2, schedule.predict_x0(x_t, noise, t))
    with pytest.raises(ValueError, match="prediction"):
        model_outputs(noise, x_t, t, schedule, "v")
    # t = 0 stays finite even where 1 - abar_0 rounds to zero (the floor).
    tiny = NoiseSchedule(20)
    tiny.alphas_cumprod[0] = 1.0
    zero = torch.zeros(1, dtype=torch.long)
    assert torch.isfinite(tiny.eps_from_x0(x_t[:1], x0[:1], zero)).all()


def test_ddim_step_with_eta_one_on_adjacent_levels_is_the_ddpm_step():
    """DDIM's eta interpolates to DDPM (Song et al. 2021): at eta 1 from t to t - 1 the step's mean and variance are
    the DDPM posterior's, so with the same noise it equals the ancestral step; at eta 0 it is the plain DDIM step."""
    schedule = NoiseSchedule(300)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(3, 1, 8, 8, generator=g) - 0.5  # inside [-1, 1]: no clamping on either path
    eps = torch.randn(3, 1, 8, 8, generator=g)
    noise = torch.randn(3, 1, 8, 8, generator=g)
    t = torch.tensor([1, 120, 299])
    x_t = schedule.add_noise(x0, eps, t)
    stochastic = schedule.ddim_step(x_t, eps, t, t - 1, eta=1.0, noise=noise)
    torch.testing.assert_close(stochastic, schedule.ancestral_step(x_t, eps, t, noise), atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(schedule.ddim_step(x_t, eps, t, t - 1, eta=0.0, noise=noise),
                               schedule.ddim_step(x_t, eps, t, t - 1))
    # The last step to the clean image adds no noise whatever eta is.
    last = torch.full((3,), -1)
    torch.testing.assert_close(schedule.ddim_step(x_t, eps, t, last, eta=1.0, noise=noise),
                               schedule.ddim_step(x_t, eps, t, last))
    with pytest.raises(ValueError, match="noise"):
        schedule.ddim_step(x_t, eps, t, t - 1, eta=1.0)
