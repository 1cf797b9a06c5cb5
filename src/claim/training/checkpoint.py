"""Checkpoint files of every model kind: atomic writes, one reader that checks format, version and keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from claim.data.io import atomic_path
from claim.errors import InputError

__all__ = ["save_checkpoint", "read_checkpoint", "build_with_weights"]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` atomically (a crash never leaves a truncated checkpoint)."""
    return atomic_path(Path(path), lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: Path, *, fmt: str, what: str, version: int | None = None,
                    required: Iterable[str] = ()) -> dict[str, Any]:
    """The payload of a checkpoint of format ``fmt``; ``InputError`` naming the file when it is unusable.

    Args:
        path: the checkpoint file.
        fmt: the ``format`` key it must carry (``claim-generator``, ``claim-segmenter``, ...).
        what: how to name it in messages (``generator checkpoint``).
        version: the ``version`` key it must carry (None: not checked).
        required: keys the payload must hold.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/EOF errors for corrupt or foreign files
        raise InputError(path, f"not a readable {what} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise InputError(path, f"not a claim {what} (no format '{fmt}')")
    if version is not None and payload.get("version") != version:
        raise InputError(path, f"checkpoint version {payload.get('version')} is not {version}")
    missing = [k for k in required if k not in payload]
    if missing:
        raise InputError(path, f"checkpoint lacks {missing}")
    return payload


def build_with_weights(path: Path, build: Callable[[], torch.nn.Module], state: dict[str, Any]) -> torch.nn.Module:
    """``build()`` a network and load ``state`` into it; a mismatch is an ``InputError`` naming the checkpoint."""
    try:
        model = build()
        model.load_state_dict(state)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InputError(path, f"checkpoint does not match its config ({exc})") from exc
    return model
