"""Where and how tensors run: device choice and CPU threads, one place for every trainer and sampler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from claim.errors import ClaimError

__all__ = ["resolve_device", "torch_threads"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N`` | ``auto`` (CUDA when available, else CPU) as a ``torch.device``."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device {name!r} must be cpu, cuda or auto")
    return torch.device(name)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads (None: torch's choice), restoring the previous count.

    On shared, oversubscribed cores one thread is often faster than torch's default.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ClaimError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
