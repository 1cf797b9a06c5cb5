"""Exponential moving average of weights, the one rule for the generator's sampling copy."""

from __future__ import annotations

import torch

__all__ = ["ema_horizon", "update_ema"]


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, updates: int, *, every: int, warmup: int,
               decay: float) -> None:
    """After ``updates`` optimiser updates, move ``ema`` towards ``model`` (every ``every`` updates).

    As LeFusion: the EMA copies the online weights during the first ``warmup`` updates, then decays.
    """
    if updates % every:
        return
    rate = 1.0 - (0.0 if updates < warmup else decay)
    with torch.no_grad():
        # One multi-tensor call instead of a Python loop over parameters (the loop costs more than the arithmetic
        # for small networks); the same lerp, bit for bit.
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), rate)


def ema_horizon(decay: float) -> int:
    """Updates an EMA of ``decay`` averages over (``1 / (1 - decay)``): the warm-up during which it copies the
    online weights, so the first, random weights never linger in the average."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay {decay} must be in (0, 1)")
    return int(round(1.0 / (1.0 - decay)))
