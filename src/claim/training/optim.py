"""The optimiser every trainer uses: AdamW, with PyTorch's fused kernel where the device has one."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["fused_adamw"]

_FUSED_DEVICES = ("cpu", "cuda")


def fused_adamw(params: Iterable[torch.nn.Parameter], device: torch.device, **options: float) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **options)`` with ``fused=True`` on CPU and CUDA.

    The fused kernel updates every parameter in one pass instead of a Python loop of small tensor ops per
    parameter: the same AdamW rule (to float rounding), a few milliseconds less per step of a small network, which
    is fixed cost that neither bf16 nor more threads shrink.
    """
    return torch.optim.AdamW(params, fused=torch.device(device).type in _FUSED_DEVICES, **options)
