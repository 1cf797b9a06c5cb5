"""PNG preview grids (source | mask | synthetic) for humans; never read back by the code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from claim.data.io import write_png

__all__ = ["label_panel", "write_grid"]


def label_panel(label_map: np.ndarray) -> np.ndarray:
    """A label map as a grey panel in [-1, 1] (background black, scar/MVO brightest)."""
    return np.asarray(label_map, dtype=np.float32) / 2.0 - 1.0


def write_grid(path: Path, rows: Sequence[Sequence[np.ndarray]]) -> Path:
    """Write rows of equally sized ``(H, W)`` panels in [-1, 1] as one uint8 PNG with 2-px gaps."""
    gap = 2
    lines = []
    for row in rows:
        panels = [np.clip((np.asarray(p, dtype=np.float32) + 1.0) * 127.5, 0, 255) for p in row]
        h = panels[0].shape[0]
        spacer = np.zeros((h, gap), dtype=np.float32)
        lines.append(np.concatenate([x for p in panels for x in (p, spacer)][:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, gap), (0, width - line.shape[1]))) for line in lines]
    return write_png(path, np.round(np.concatenate(lines, axis=0)[:-gap]).astype(np.uint8))
