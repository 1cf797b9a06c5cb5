"""Few-step inpainting with multistep ODE solvers from ``diffusers`` (DPM-Solver++, UniPC) on our noise schedule.

The solver arithmetic is the library's (``DPMSolverMultistepScheduler``, ``UniPCMultistepScheduler``); what is ours
is the mapping of :class:`~claim.generator.schedule.NoiseSchedule` onto them (the same float64 cosine betas, passed as
``trained_betas``) and the inpainting loop around them, which does what ``ddim_inpaint`` does: paste the background
forward-noised with the start noise before every call (so the run is a deterministic function of the seed) and paste
the source back exactly after the last step, so pixels outside the inpainting region equal the input bit for bit.

The network output reaches the solver as the clamped x0 estimate (``prediction_type="sample"``): DPM-Solver++ and
UniPC work in data prediction, and clamping x0 to [-1, 1] is the same rule DDIM and RePaint apply.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from claim.generator.schedule import NoiseSchedule, cosine_betas

__all__ = ["SOLVERS", "SOLVER_ORDERS", "make_scheduler", "solver_times", "solver_inpaint"]

# Sampler names of the library solvers (``dpm2:5``, ``unipc3:10``); orders the libraries implement.
SOLVERS = ("dpm", "unipc")
SOLVER_ORDERS = (1, 2, 3)


def make_scheduler(schedule: NoiseSchedule, solver: str, order: int) -> Any:
    """The library scheduler for ``solver`` (``dpm`` = DPM-Solver++ multistep, ``unipc`` = UniPC-bh2) on ``schedule``.

    The betas are the schedule's own (``cosine_betas(T)``, the float64 values ``NoiseSchedule`` is built from). The
    libraries form ``1 - beta`` and its cumulative product in float32, which loses 2e-4 of the last level's abar
    (beta clipped at 0.9999); we hand them our float64 product instead, so every noise level they use is ours
    exactly (tested). The K levels visited are the libraries' ``linspace`` grid (T-1 down to about T/K; DPM-Solver++
    of order 1 on it is DDIM, tested); the last step goes to the clean image (``final_sigmas_type="zero"``), and
    the multistep order drops near the end (``lower_order_final``), as the libraries recommend below 15 steps.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} must be one of {SOLVERS}")
    if order not in SOLVER_ORDERS:
        raise ValueError(f"solver order {order} must be one of {SOLVER_ORDERS}")
    # Imported here: diffusers takes seconds to import, and only these samplers need it.
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
    from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler

    common = dict(num_train_timesteps=schedule.timesteps, trained_betas=cosine_betas(schedule.timesteps),
                  solver_order=order, prediction_type="sample", thresholding=False, lower_order_final=True,
                  final_sigmas_type="zero", timestep_spacing="linspace")
    if solver == "dpm":
        scheduler = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_type="midpoint", **common)
    else:
        scheduler = UniPCMultistepScheduler(solver_type="bh2", predict_x0=True, **common)
    abar = torch.tensor(np.cumprod(1.0 - cosine_betas(schedule.timesteps)), dtype=torch.float32)
    # The tables both schedulers derive from abar at construction (set_timesteps reads abar again).
    scheduler.alphas_cumprod = abar
    scheduler.alpha_t, scheduler.sigma_t = abar.sqrt(), (1.0 - abar).sqrt()
    scheduler.lambda_t = scheduler.alpha_t.log() - scheduler.sigma_t.log()
    scheduler.sigmas = ((1.0 - abar) / abar).sqrt()
    return scheduler


def solver_times(schedule: NoiseSchedule, steps: int) -> list[int]:
    """The descending timesteps a ``steps``-step solver run evaluates the network at (one call each)."""
    scheduler = make_scheduler(schedule, "dpm", 1)
    _set_timesteps(scheduler, steps, schedule.timesteps)
    return [int(t) for t in scheduler.timesteps]


def _set_timesteps(scheduler: Any, steps: int, timesteps: int) -> None:
    with warnings.catch_warnings():
        # The libraries call np.array(tensor) in a way numpy 2 flags; harmless, and not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        scheduler.set_timesteps(min(int(steps), timesteps))


@torch.no_grad()
def solver_inpaint(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    *,
    solver: str,
    order: int,
    steps: int,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """Multistep-solver inpainting: ``steps`` network calls from pure noise at T-1 to the clean image.

    Args:
        eps_fn: ``(x_t, t) -> eps`` (as composed by ``make_eps_fn``).
        schedule: the noise schedule the network was trained on.
        known / inpaint_mask: ``(B, 1, H, W)`` source in [-1, 1] and the region to paint.
        solver / order / steps: which library solver, its multistep order, how many network calls.
        noise: ``(B, 1, H, W)`` start noise, also the noise of the pasted background at every level.

    Returns:
        ``(image (B, 1, H, W) in [-1, 1], number of eps_fn calls)``.
    """
    inpaint_mask = inpaint_mask.bool()
    scheduler = make_scheduler(schedule, solver, order)
    _set_timesteps(scheduler, steps, schedule.timesteps)
    x = noise
    calls = 0
    for t in scheduler.timesteps.tolist():
        tt = torch.full((known.shape[0],), int(t), dtype=torch.long, device=known.device)
        x = torch.where(inpaint_mask, x, schedule.add_noise(known, noise, tt))
        x0 = schedule.predict_x0(x, eps_fn(x, tt), tt)
        calls += 1
        x = scheduler.step(x0, int(t), x, return_dict=False)[0]
    return torch.where(inpaint_mask, x.clamp(-1.0, 1.0), known), calls
