"""Self-describing segmenter checkpoints: format, version, config, seed, step; atomic writes; clear load errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from claim import __version__
from claim.data.io import atomic_path
from claim.errors import InputError
from claim.generator.config import resolve_device
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.net import build_segmenter

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "read_checkpoint", "load_segmenter"]

CHECKPOINT_FORMAT = "claim-segmenter"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, config: SegmenterConfig, model_state: dict, **fields: Any) -> Path:
    """Write ``{format, version, claim_version, config, model, **fields}`` atomically (a crash never truncates)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "claim_version": __version__,
               "config": config.to_dict(), "model": model_state, **fields}
    return atomic_path(Path(path), lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a segmenter checkpoint; ``InputError`` naming the file when it is missing or foreign."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "segmenter checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/EOF errors for corrupt or foreign files
        raise InputError(path, f"not a readable segmenter checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a claim segmenter checkpoint (no format '{CHECKPOINT_FORMAT}')")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(path, f"checkpoint version {payload.get('version')} is not {CHECKPOINT_VERSION}")
    missing = [k for k in ("config", "model", "step", "seed") if k not in payload]
    if missing:
        raise InputError(path, f"checkpoint lacks {missing}")
    return payload


def load_segmenter(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, SegmenterConfig]:
    """Load a segmenter (eval mode) and its config. Raises ``InputError`` (a ``ClaimError``) naming a bad file."""
    path = Path(path)
    payload = read_checkpoint(path)
    try:
        config = SegmenterConfig.from_dict(payload["config"])
        model = build_segmenter(config)
        model.load_state_dict(payload["model"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InputError(path, f"checkpoint does not match its config ({exc})") from exc
    device = resolve_device(device) if isinstance(device, str) else device
    return model.to(device).eval(), config
