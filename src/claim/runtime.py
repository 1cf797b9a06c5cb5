"""Where and how tensors run: device, CPU threads and precision, one place for every trainer and sampler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from claim.errors import ClaimError

__all__ = ["resolve_device", "torch_threads", "PRECISIONS", "bf16_supported", "resolve_precision", "autocast"]


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


PRECISIONS = ("auto", "fp32", "bf16")


def _cpu_has_bf16() -> bool:
    # bf16 autocast runs on any CPU, but is only faster where the cores multiply bf16 natively (AVX-512 BF16 or
    # AMX); elsewhere it is emulated and slower than fp32, so ``auto`` must not pick it.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast on ``device`` (a CUDA GPU that supports it, or a CPU with bf16 units)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return _cpu_has_bf16()


def resolve_precision(name: str, device: str | torch.device) -> str:
    """``auto`` | ``fp32`` | ``bf16`` -> the precision to run (``fp32`` or ``bf16``) on ``device``.

    ``auto`` picks bf16 where it is fast, else fp32; an explicit ``bf16`` where it is not fast is refused.
    """
    if name not in PRECISIONS:
        raise ClaimError(f"--precision {name!r} must be one of {', '.join(PRECISIONS)}")
    device = resolve_device(device)
    if name == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if name == "bf16" and not bf16_supported(device):
        raise ClaimError(f"--precision bf16: {device.type} here has no fast bf16 support; use fp32 or auto")
    return name


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The forward-pass context of ``precision``: bf16 autocast (weights and optimizer state stay fp32), or none."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
