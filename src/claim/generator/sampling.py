"""Inpainting loops: RePaint (faithful LeFusion), DDIM (deterministic, or stochastic as ``ddpm:K``), and the
few-step library solvers (``claim.generator.solvers``, the ``claim`` default). No network inside.

Both take ``eps_fn(x_t, t) -> eps``, composed by the caller (``make_eps_fn``), so conditioning variants and the
network's parameterisation (eps or x0, converted by ``schedule.model_outputs``) never branch inside a loop. Both
paste the known background back exactly after the last step, so pixels outside the inpainting region equal the input
bit for bit (LeFusion did not: its background ended within ~1e-2 of the input).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from claim.generator.config import PREDICTIONS, Mode
from claim.generator.context import build_context, denoiser_input
from claim.generator.denoiser import HistogramUNet
from claim.generator.repaint import RePaintPlan
from claim.generator.schedule import NoiseSchedule, model_outputs
from claim.generator.solvers import SOLVER_ORDERS, SOLVERS, solver_inpaint

__all__ = [
    "DDIM_KINDS",
    "SamplerSpec",
    "parse_sampler",
    "ddim_times",
    "make_model_fn",
    "make_eps_fn",
    "ddim_inpaint",
    "repaint_inpaint",
    "inpaint",
]

# Sampler kinds that walk the DDIM grid: deterministic (ddim) and with eta 1 (ddpm).
DDIM_KINDS = ("ddim", "ddpm")
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_SAMPLER = re.compile(r"^(?:(?P<ddim>ddim|ddpm):(?P<k>\d+)|(?P<rp>repaint):(?P<l>\d+)x(?P<n>\d+)"
                      r"|(?P<solver>dpm|unipc)(?P<order>\d)?:(?P<s>\d+))$")


@dataclass(frozen=True)
class SamplerSpec:
    """``ddim:K``, ``ddpm:K`` (DDIM with eta 1: ancestral steps on the same K-step grid), ``repaint:LxN``, or a
    library multistep solver ``dpmO:K`` / ``unipcO:K`` (order O, K calls)."""

    kind: str
    steps: int = 50
    jump_length: int = 5
    jump_n_sample: int = 5
    order: int = 2

    def __str__(self) -> str:
        if self.kind in DDIM_KINDS:
            return f"{self.kind}:{self.steps}"
        if self.kind in SOLVERS:
            return f"{self.kind}{self.order}:{self.steps}"
        return f"repaint:{self.jump_length}x{self.jump_n_sample}"

    def nfe(self, timesteps: int) -> int:
        """Denoiser evaluations per run (per batch) at guidance scale 1."""
        if self.kind in DDIM_KINDS:
            return len(ddim_times(timesteps, self.steps)) - 1
        if self.kind in SOLVERS:
            return min(self.steps, timesteps)
        return RePaintPlan.build(timesteps, self.jump_length, self.jump_n_sample).nfe


def parse_sampler(text: str) -> SamplerSpec:
    """Parse ``ddim:K`` or ``ddpm:K`` (K >= 1), ``repaint:LxN`` (e.g. ``repaint:5x5``), ``dpmO:K`` or ``unipcO:K``.

    ``dpm`` is DPM-Solver++ multistep, ``unipc`` UniPC, both from diffusers (``claim.generator.solvers``); O is the
    multistep order (1-3, default 2: ``dpm:8`` = ``dpm2:8``) and K the number of network calls.
    """
    match = _SAMPLER.match(text.strip().lower())
    if not match:
        raise ValueError(f"sampler {text!r} is not ddim:K, ddpm:K, repaint:LxN, dpmO:K or unipcO:K "
                         f"(e.g. ddim:50, ddpm:25, repaint:5x5, dpm2:8)")
    if match["solver"]:
        steps, order = int(match["s"]), int(match["order"] or 2)
        if steps < 1:
            raise ValueError(f"{match['solver']} steps {steps} must be >= 1")
        if order not in SOLVER_ORDERS:
            raise ValueError(f"{match['solver']} order {order} must be one of {SOLVER_ORDERS}")
        return SamplerSpec(match["solver"], steps=steps, order=order)
    if match["ddim"]:
        k = int(match["k"])
        if k < 1:
            raise ValueError(f"{match['ddim']} steps {k} must be >= 1")
        return SamplerSpec(match["ddim"], steps=k)
    length, count = int(match["l"]), int(match["n"])
    if length < 1 or count < 1:
        raise ValueError(f"repaint jump length and count must be >= 1, got {length}x{count}")
    return SamplerSpec("repaint", jump_length=length, jump_n_sample=count)


def ddim_times(timesteps: int, steps: int) -> list[int]:
    """Descending DDIM timesteps ``T-1 ... 0`` (``steps`` of them, evenly spaced) followed by ``-1``."""
    steps = min(int(steps), timesteps)
    times = np.unique(np.round(np.linspace(0, timesteps - 1, steps)).astype(int))[::-1].tolist()
    return [*times, -1]


def make_model_fn(
    model: HistogramUNet,
    mode: Mode,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    myo_mask: torch.Tensor,
    hist: torch.Tensor,
    guidance: float = 1.0,
) -> EpsFn:
    """Compose the denoiser with its conditioning for one batch: ``(x_t, t) -> raw network output``.

    Args:
        model: the denoiser.
        mode: ``claim`` adds the context channels (blanked image, inpainting mask, myocardium mask).
        known: ``(B, 1, H, W)`` source crop in [-1, 1].
        inpaint_mask / myo_mask: ``(B, 1, H, W)`` bool.
        hist: ``(B, bins)`` condition.
        guidance: classifier-free guidance scale (1 = conditional only); guidance combines raw outputs.
    """
    context = build_context(known, inpaint_mask, myocardium=myo_mask) if Mode(mode) == Mode.CLAIM else None

    def raw_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.guided(denoiser_input(mode, x, context), t, hist, guidance)

    return raw_fn


def make_eps_fn(
    model: HistogramUNet,
    mode: Mode,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    myo_mask: torch.Tensor,
    hist: torch.Tensor,
    guidance: float = 1.0,
    *,
    schedule: NoiseSchedule,
    prediction: str,
) -> EpsFn:
    """``(x_t, t) -> eps`` for the samplers: ``make_model_fn`` then ``model_outputs`` (x0 nets give the eps of their
    clamped x0). Arguments as ``make_model_fn``, plus the ``schedule`` and the config's ``prediction``.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} must be one of {PREDICTIONS}")
    raw_fn = make_model_fn(model, mode, known, inpaint_mask, myo_mask, hist, guidance)
    if prediction == "eps":
        return raw_fn  # identical to model_outputs(...)[0], without computing the unused x0

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model_outputs(raw_fn(x, t), x, t, schedule, prediction)[0]

    return eps_fn


def _randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Draw on the generator's device then move: the same seed gives the same noise on CPU and GPU runs.
    return torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


def _tvec(t: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), t, dtype=torch.long, device=like.device)


@torch.no_grad()
def ddim_inpaint(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    eta: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """DDIM inpainting, pasting the forward-noised background back before every call.

    At ``eta`` 0 (deterministic DDIM) the background is noised with the same fixed noise as the start. With
    ``eta`` > 0 every step also draws fresh noise, for the step itself and for the background (as RePaint does):
    on the standard generator the deterministic path paints scar smoother than real, and the stochastic one brings
    its texture and border closer to real scar (README, "Texture: stochastic sampling"). Either way the run is a
    deterministic function of the seed. Returns ``(image (B, 1, H, W) in [-1, 1], number of eps_fn calls)``.
    """
    inpaint_mask = inpaint_mask.bool()
    noise = _randn(known, generator)
    times = ddim_times(schedule.timesteps, steps)
    x = noise
    calls = 0
    for t, t_prev in zip(times[:-1], times[1:], strict=True):
        tt = _tvec(t, known)
        background = noise if eta == 0.0 else _randn(known, generator)
        x = torch.where(inpaint_mask, x, schedule.add_noise(known, background, tt))
        eps = eps_fn(x, tt)
        calls += 1
        step_noise = None if eta == 0.0 else _randn(known, generator)
        x = schedule.ddim_step(x, eps, tt, _tvec(t_prev, known), eta=eta, noise=step_noise)
    return torch.where(inpaint_mask, x.clamp(-1.0, 1.0), known), calls


@torch.no_grad()
def repaint_inpaint(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    plan: RePaintPlan,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """RePaint as LeFusion runs it: re-inject the freshly forward-noised background before each denoiser call,
    ancestral DDPM steps, and one-step re-noising on every upward pair of the plan.

    Returns ``(image (B, 1, H, W) in [-1, 1], number of eps_fn calls)``.
    """
    if plan.timesteps != schedule.timesteps:
        raise ValueError(f"plan T={plan.timesteps} does not match the schedule T={schedule.timesteps}")
    inpaint_mask = inpaint_mask.bool()
    x = _randn(known, generator)
    calls = 0
    for t_prev, t_next in plan.pairs:
        if t_next < t_prev:
            tt = _tvec(t_prev, known)
            x = torch.where(inpaint_mask, x, schedule.add_noise(known, _randn(known, generator), tt))
            eps = eps_fn(x, tt)
            calls += 1
            x = schedule.ancestral_step(x, eps, tt, _randn(known, generator))
        else:
            x = schedule.undo_step(x, _tvec(t_next, known), _randn(known, generator))
    return torch.where(inpaint_mask, x.clamp(-1.0, 1.0), known), calls


def inpaint(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    inpaint_mask: torch.Tensor,
    sampler: SamplerSpec,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """Dispatch on a parsed sampler spec; returns ``(image, eps_fn calls)``."""
    if sampler.kind in DDIM_KINDS:
        return ddim_inpaint(eps_fn, schedule, known, inpaint_mask, sampler.steps, generator,
                            eta=1.0 if sampler.kind == "ddpm" else 0.0)
    if sampler.kind in SOLVERS:
        return solver_inpaint(eps_fn, schedule, known, inpaint_mask, solver=sampler.kind, order=sampler.order,
                              steps=sampler.steps, noise=_randn(known, generator))
    plan = RePaintPlan.build(schedule.timesteps, sampler.jump_length, sampler.jump_n_sample)
    return repaint_inpaint(eps_fn, schedule, known, inpaint_mask, plan, generator)
