"""Cosine noise schedule (Nichol & Dhariwal 2021) as LeFusion uses it, and the closed-form steps built on it.

MONAI ships a ``"cosine"`` schedule (``monai.networks.schedulers.scheduler._cosine_beta``) but it computes in float32
and clips betas at 0.999; LeFusion computes in float64 and clips at 0.9999, which changes the last step
(beta_299 = 0.9999 vs 0.999). We therefore compute the betas here; elsewhere they agree (tested).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["cosine_betas", "NoiseSchedule", "model_outputs"]

# Floor on 1 - abar_t when dividing by sqrt(1 - abar_t); the cosine schedule's smallest value (t = 0, T = 300) is
# ~1.6e-4, so the floor never binds for ordinary schedules but keeps t = 0 finite for any T.
_NOISE_VAR_FLOOR = 1e-8


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.9999) -> np.ndarray:
    """Betas of the cosine schedule in float64: ``abar(t) = cos^2((t/T + s)/(1 + s) * pi/2) / abar(0)``.

    Args:
        timesteps: T.
        s: offset that keeps beta_0 from being tiny.
        max_beta: clip (LeFusion 0.9999).

    Returns:
        ``(T,)`` float64 betas, ``beta_t = 1 - abar(t+1)/abar(t)``.
    """
    t = np.arange(timesteps + 1, dtype=np.float64)
    abar = np.cos(((t / timesteps) + s) / (1 + s) * math.pi / 2) ** 2
    abar = abar / abar[0]
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, max_beta)


class NoiseSchedule(nn.Module):
    """Schedule tensors as buffers (so ``.to(device)`` moves them) plus the per-step formulas.

    All methods take integer timestep tensors ``t`` of shape ``(B,)`` in ``0..T-1`` and images ``(B, C, H, W)``.
    """

    def __init__(self, timesteps: int = 300) -> None:
        super().__init__()
        betas = cosine_betas(timesteps)
        abar = np.cumprod(1.0 - betas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        self.timesteps = int(timesteps)
        f32 = torch.float32
        self.register_buffer("betas", torch.tensor(betas, dtype=f32), persistent=False)
        self.register_buffer("alphas_cumprod", torch.tensor(abar, dtype=f32), persistent=False)
        self.register_buffer("alphas_cumprod_prev", torch.tensor(abar_prev, dtype=f32), persistent=False)
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        self.register_buffer("posterior_log_var", torch.tensor(np.log(np.maximum(post_var, 1e-20)), dtype=f32),
                             persistent=False)
        self.register_buffer("posterior_coef_x0", torch.tensor(betas * np.sqrt(abar_prev) / (1.0 - abar), dtype=f32),
                             persistent=False)
        self.register_buffer(
            "posterior_coef_xt", torch.tensor((1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar), dtype=f32),
            persistent=False,
        )

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return values[t].view(-1, 1, 1, 1)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_t | x_0): ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``."""
        abar = self._at(self.alphas_cumprod, t)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """x0 estimate from predicted noise, clamped to the data range [-1, 1] (as LeFusion, no dynamic threshold;
        ``clamp=False`` keeps the raw estimate, whose out-of-range values still carry a gradient)."""
        abar = self._at(self.alphas_cumprod, t)
        x0 = (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()
        return x0.clamp(-1.0, 1.0) if clamp else x0

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise that takes ``x0`` to ``x_t`` at level t: ``(x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)``."""
        abar = self._at(self.alphas_cumprod, t)
        return (x_t - abar.sqrt() * x0) / (1.0 - abar).clamp(min=_NOISE_VAR_FLOOR).sqrt()

    def ancestral_step(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """DDPM step x_t -> x_{t-1}: posterior mean from the clamped x0 plus ``[t > 0] sigma_t noise``."""
        x0 = self.predict_x0(x_t, eps, t)
        mean = self._at(self.posterior_coef_x0, t) * x0 + self._at(self.posterior_coef_xt, t) * x_t
        nonzero = (t > 0).float().view(-1, 1, 1, 1)
        return mean + nonzero * (0.5 * self._at(self.posterior_log_var, t)).exp() * noise

    def undo_step(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """RePaint "undo" x_{t-1} -> x_t: ``sqrt(1 - beta_t) x + sqrt(beta_t) noise`` (t = the level reached)."""
        beta = self._at(self.betas, t)
        return (1.0 - beta).sqrt() * x + beta.sqrt() * noise

    def ddim_step(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, *, eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM step from level t to ``t_prev`` (``-1`` means the clean image); deterministic at ``eta`` 0.

        With ``eta`` > 0 (Song et al. 2021, eqs. 12 and 16) a share of the step's variance is fresh ``noise``:
        ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``; eta 1 is the ancestral
        DDPM step on the skipped grid. The last step (to the clean image) adds no noise.
        """
        x0 = self.predict_x0(x_t, eps, t)
        abar = self._at(self.alphas_cumprod, t)
        # Recompute eps from the clamped x0 so the step stays consistent with what was clamped.
        eps = self.eps_from_x0(x_t, x0, t)
        safe = t_prev.clamp(min=0)
        abar_prev = torch.where((t_prev >= 0).view(-1, 1, 1, 1), self._at(self.alphas_cumprod, safe),
                                torch.ones_like(abar))
        if eta == 0.0:
            return abar_prev.sqrt() * x0 + (1.0 - abar_prev).sqrt() * eps
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise")
        variance = (eta**2 * (1.0 - abar_prev) / (1.0 - abar).clamp(min=_NOISE_VAR_FLOOR)
                    * (1.0 - abar / abar_prev)).clamp(min=0.0)
        direction = (1.0 - abar_prev - variance).clamp(min=0.0).sqrt()
        return abar_prev.sqrt() * x0 + direction * eps + variance.sqrt() * noise


def model_outputs(
    raw: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, prediction: str,
    clamp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one conversion of the network output to ``(eps, x0)``; x0 is clamped to [-1, 1] unless ``clamp`` is
    False (a loss on the raw estimate: a clamped value has no gradient to pull it back into range).

    Args:
        raw: network output (after classifier-free guidance, which combines raw outputs).
        x_t / t: the noisy input and its levels.
        schedule: the noise schedule.
        prediction: ``eps`` (raw is the noise) or ``x0`` (raw is the clean image; eps derived from the clamped x0).
        clamp: clamp the returned x0 (eps is derived from the clamped x0 either way).
    """
    if prediction == "eps":
        return raw, schedule.predict_x0(x_t, raw, t, clamp=clamp)
    if prediction == "x0":
        x0 = raw.clamp(-1.0, 1.0)
        return schedule.eps_from_x0(x_t, x0, t), (x0 if clamp else raw)
    raise ValueError(f"prediction {prediction!r} must be 'eps' or 'x0'")
