"""Generator checkpoints: the one writer, reader and verifier (format, version, keys, config, weights)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from claim import __version__
from claim.errors import InputError
from claim.generator.config import GeneratorConfig, Mode
from claim.generator.denoiser import HistogramUNet, build_denoiser
from claim.generator.schedule import NoiseSchedule
from claim.runtime import resolve_device, resolve_precision
from claim.training.checkpoint import build_with_weights, read_checkpoint, save_checkpoint

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LoadedGenerator",
           "write_generator_checkpoint", "read_generator_checkpoint", "config_from_checkpoint", "load_generator"]

CHECKPOINT_NAME = "generator.pt"
CHECKPOINT_FORMAT = "claim-generator"
CHECKPOINT_VERSION = 1
_REQUIRED = ("config", "step", "model", "ema", "optimizer", "hist_centres")


@dataclass
class LoadedGenerator:
    """A checkpoint ready for sampling: EMA denoiser (eval mode), its config, schedule and histogram centres."""

    model: HistogramUNet
    config: GeneratorConfig
    schedule: NoiseSchedule
    hist_centres: np.ndarray
    step: int
    path: Path
    precision: str = "fp32"  # autocast of the sampler's denoiser calls (claim.runtime)
    # Per centre: training slices and the mean/sd of their scan levels (claim.generator.condition); None in
    # checkpoints written before it existed, which then draw their condition uniformly.
    hist_context: np.ndarray | None = None


def write_generator_checkpoint(path: Path, config: GeneratorConfig, state: dict[str, Any], *,
                               hist_centres: np.ndarray, seed: int, **fields: Any) -> Path:
    """Write ``state`` (``model``, ``ema``, ``optimizer``, ``step`` = optimiser updates) atomically, with its config,
    seed, histogram centres and ``fields`` (provenance: data, rng scheme, joint run, ...)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "claim_version": __version__,
        "config": config.to_dict(),
        "mode": str(config.mode),
        "crop_size": config.crop_size,
        "seed": int(seed),
        "step": int(state["step"]),
        "model": state["model"],
        "ema": state["ema"],
        "optimizer": state["optimizer"],
        "hist_centres": np.asarray(hist_centres).tolist(),
        **fields,
    }
    return save_checkpoint(path, payload)


def read_generator_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a generator checkpoint; ``InputError`` naming the file when it is missing or foreign."""
    payload = read_checkpoint(path, fmt=CHECKPOINT_FORMAT, what="generator checkpoint", version=CHECKPOINT_VERSION,
                              required=_REQUIRED, weights=("model", "ema"))
    centres = np.asarray(payload["hist_centres"], dtype=np.float64)
    if centres.ndim != 2 or centres.shape[0] < 1 or not np.isfinite(centres).all():
        raise InputError(path, f"checkpoint's histogram centres must be a non-empty finite (k, bins) table, got "
                               f"shape {centres.shape}")
    if payload.get("hist_context") is not None:
        context = np.asarray(payload["hist_context"], dtype=np.float64)
        if context.shape != (centres.shape[0], 5) or not np.isfinite(context).all():
            raise InputError(path, f"checkpoint's histogram context must be a finite ({centres.shape[0]}, 5) table, "
                                   f"got shape {context.shape}")
        if (context[:, 0] < 0).any() or (context[:, 3:] <= 0).any():
            raise InputError(path, "checkpoint's histogram context needs counts >= 0 and level sds > 0")
    return payload


def config_from_checkpoint(path: Path, payload: dict[str, Any]) -> GeneratorConfig:
    """The config stored in ``payload``; configs written before a field existed get the value they ran with."""
    data = dict(payload["config"])
    # Older checkpoints: no ``prediction`` meant eps; a lefusion band was stored but never used.
    data.setdefault("prediction", "eps")
    if data.get("mode") == Mode.LEFUSION:
        data["boundary_px"] = 0
    try:
        return GeneratorConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"checkpoint holds an invalid generator config ({exc})") from exc


def load_generator(path: Path, device: str | torch.device = "cpu", precision: str = "fp32") -> LoadedGenerator:
    """Load a checkpoint's EMA denoiser for sampling. Raises ``InputError`` naming the file when it is unusable."""
    path = Path(path)
    payload = read_generator_checkpoint(path)
    config = config_from_checkpoint(path, payload)
    model = build_with_weights(path, lambda: build_denoiser(config), payload["ema"])
    device = resolve_device(device)
    model.to(device).eval()
    return LoadedGenerator(model, config, NoiseSchedule(config.timesteps).to(device),
                           np.asarray(payload["hist_centres"], dtype=np.float32), int(payload["step"]), path,
                           precision=resolve_precision(precision, device),
                           hist_context=None if payload.get("hist_context") is None
                           else np.asarray(payload["hist_context"], dtype=np.float64))
