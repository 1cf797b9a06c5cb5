"""Checkpoint files of every model kind: atomic writes, one reader that checks format, version and keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from claim import __version__
from claim.data.io import atomic_path
from claim.errors import InputError

__all__ = ["HASH_KEY", "content_hash", "save_checkpoint", "read_checkpoint", "build_with_weights"]


HASH_KEY = "content_sha256"


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 over every value of ``payload`` but the hash itself: tensors by name, dtype, shape and bytes, other
    values by their JSON text. Any flipped byte in weights, optimizer state or metadata changes it."""
    digest = hashlib.sha256()

    def visit(name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(f"{name}/{key}", value[key])
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                visit(f"{name}[{i}]", item)
        else:
            digest.update(f"{name}={json.dumps(value, sort_keys=True, default=str)};".encode())

    visit("", {k: v for k, v in payload.items() if k != HASH_KEY})
    return digest.hexdigest()


def _non_finite(payload: dict[str, Any], keys: Iterable[str]) -> list[str]:
    bad = []
    for key in keys:
        state = payload.get(key)
        if isinstance(state, dict):
            bad += [f"{key}.{name}" for name, t in state.items()
                    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return bad


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` atomically (a crash never leaves a truncated checkpoint), with a
    content hash that :func:`read_checkpoint` verifies."""
    payload = {**payload, HASH_KEY: content_hash(payload)}
    return atomic_path(Path(path), lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: Path, *, fmt: str, what: str, version: int | None = None,
                    required: Iterable[str] = (), weights: Iterable[str] = ("model",)) -> dict[str, Any]:
    """The payload of a checkpoint of format ``fmt``; ``InputError`` naming the file when it is unusable.

    Args:
        path: the checkpoint file.
        fmt: the ``format`` key it must carry (``claim-generator``, ``claim-segmenter``, ...).
        what: how to name it in messages (``generator checkpoint``).
        version: the ``version`` key it must carry (None: not checked).
        required: keys the payload must hold.
        weights: keys of state dicts that must hold finite values only.

    A checkpoint whose content hash does not match (a corrupted or edited file) is refused; checkpoints written
    before hashes existed carry none and load unverified.
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
        raise InputError(path, f"checkpoint version {payload.get('version')}; claim {__version__} reads version "
                               f"{version} only (retrain it, or use the claim version that wrote it)")
    missing = [k for k in required if k not in payload]
    if missing:
        raise InputError(path, f"checkpoint lacks {missing}")
    if HASH_KEY in payload and payload[HASH_KEY] != content_hash(payload):
        raise InputError(path, "checkpoint content does not match its hash: the file is corrupted or was edited")
    bad = _non_finite(payload, weights)
    if bad:
        raise InputError(path, f"checkpoint holds non-finite weights ({', '.join(bad[:3])}"
                               f"{', ...' if len(bad) > 3 else ''})")
    return payload


def build_with_weights(path: Path, build: Callable[[], torch.nn.Module], state: dict[str, Any]) -> torch.nn.Module:
    """``build()`` a network and load ``state`` into it; a mismatch is an ``InputError`` naming the checkpoint."""
    try:
        model = build()
        model.load_state_dict(state)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InputError(path, f"checkpoint does not match its config ({exc})") from exc
    return model
