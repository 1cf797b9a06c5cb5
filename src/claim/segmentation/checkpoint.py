"""Segmenter checkpoints: the one writer, reader and verifier (format, version, keys, config, weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from claim import __version__
from claim.errors import InputError
from claim.runtime import resolve_device
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.net import build_segmenter
from claim.training.checkpoint import build_with_weights
from claim.training.checkpoint import read_checkpoint as read_any_checkpoint
from claim.training.checkpoint import save_checkpoint as save_any_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "read_checkpoint", "load_segmenter"]

CHECKPOINT_FORMAT = "claim-segmenter"
CHECKPOINT_VERSION = 2  # 2: the cascade (localiser + segmenter) with deep supervision


def save_checkpoint(path: Path, config: SegmenterConfig, model_state: dict, **fields: Any) -> Path:
    """Write ``{format, version, claim_version, config, model, **fields}`` atomically (a crash never truncates)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "claim_version": __version__,
               "config": config.to_dict(), "model": model_state, **fields}
    return save_any_checkpoint(Path(path), payload)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a segmenter checkpoint; ``InputError`` naming the file when it is missing or foreign."""
    return read_any_checkpoint(path, fmt=CHECKPOINT_FORMAT, what="segmenter checkpoint", version=CHECKPOINT_VERSION,
                               required=("config", "model", "step", "seed"))


def config_from_checkpoint(path: Path, payload: dict[str, Any]) -> SegmenterConfig:
    try:
        return SegmenterConfig.from_dict(payload["config"])
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"checkpoint holds an invalid segmenter config ({exc})") from exc


def load_segmenter(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, SegmenterConfig]:
    """Load a segmenter (eval mode) and its config. Raises ``InputError`` (a ``ClaimError``) naming a bad file."""
    path = Path(path)
    payload = read_checkpoint(path)
    config = config_from_checkpoint(path, payload)
    model = build_with_weights(path, lambda: build_segmenter(config), payload["model"])
    return model.to(resolve_device(device)).eval(), config
