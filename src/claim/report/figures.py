"""Figures: the AHA bull's-eye (driven by the segment table) and slice overlays."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Wedge  # noqa: E402

from claim.aha.segments import SEGMENTS, Level  # noqa: E402
from claim.data.io import atomic_path  # noqa: E402

__all__ = ["draw_bullseye", "save_bullseye", "save_figure", "figure_png_bytes", "segment_montage"]

# Ring radii (inner, outer) of the standard bull's-eye, apex in the centre.
_RINGS = {Level.APEX: (0.0, 0.25), Level.APICAL: (0.25, 0.5), Level.MID: (0.5, 0.75), Level.BASAL: (0.75, 1.0)}


def _display_span(segment_id: int) -> tuple[float, float]:
    """Display angles (deg, counterclockwise from 3 o'clock) of a segment wedge.

    Standard layout: segment 1 at 12 o'clock, numbering anticlockwise (septum on the viewer's left), so the
    display angle is the AHA angle shifted to put the centre of segment 1 (AHA 30 deg) at 90 deg.
    """
    segment = SEGMENTS[segment_id]
    start = segment.start_deg + 60.0
    return start, start + segment.width_deg


def draw_bullseye(
    ax: plt.Axes,
    values: Mapping[int, float] | Sequence[float],
    *,
    title: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    value_format: str = "{:.0f}",
    colorbar_label: str = "",
) -> None:
    """Draw a 17-segment bull's-eye of ``values`` (mapping segment -> value, or a length-17 sequence for 1..17).

    Each wedge shows its segment number and value; NaN values are drawn grey.
    """
    if not isinstance(values, Mapping):
        if len(values) != 17:
            raise ValueError(f"bull's-eye needs 17 values (segments 1-17), got {len(values)}")
        values = {k + 1: float(v) for k, v in enumerate(values)}
    data = np.array([float(values.get(k, np.nan)) for k in range(1, 18)])
    finite = data[np.isfinite(data)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    colormap = plt.get_cmap(cmap)
    norm = matplotlib.colors.Normalize(lo, hi)
    for segment_id in range(1, 18):
        level = SEGMENTS[segment_id].level
        inner, outer = _RINGS[level]
        value = data[segment_id - 1]
        colour = colormap(norm(value)) if np.isfinite(value) else (0.85, 0.85, 0.85, 1.0)
        if level == Level.APEX:
            ax.add_patch(matplotlib.patches.Circle((0, 0), outer, facecolor=colour, edgecolor="white", lw=1.5))
            text_xy = (0.0, 0.0)
        else:
            start, end = _display_span(segment_id)
            ax.add_patch(
                Wedge((0, 0), outer, start, end, width=outer - inner, facecolor=colour, edgecolor="white", lw=1.5)
            )
            mid = np.radians((start + end) / 2)
            radius = (inner + outer) / 2
            text_xy = (radius * np.cos(mid), radius * np.sin(mid))
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        text_colour = "black" if luminance > 0.55 else "white"
        shown = value_format.format(value) if np.isfinite(value) else "–"
        ax.text(*text_xy, f"{segment_id}\n{shown}", ha="center", va="center", fontsize=7.5, color=text_colour)
    ax.set_xlim(-1.15, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=colormap)
    colorbar = ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    if colorbar_label:
        colorbar.set_label(colorbar_label, fontsize=8)
    ax.text(-1.1, 0.0, "septum", rotation=90, ha="center", va="center", fontsize=7, color="0.4")


def save_figure(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Save and close a figure atomically as PNG."""
    try:
        return atomic_path(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def figure_png_bytes(fig: plt.Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes (for embedding in HTML) and close it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def save_bullseye(panels: Sequence[tuple[str, Mapping[int, float], dict]], path: Path, *, suptitle: str = "") -> Path:
    """Save one or more bull's-eyes side by side: ``panels`` = [(title, values, draw_bullseye kwargs), ...]."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.6))
    axes = np.atleast_1d(axes)
    for ax, (title, values, kwargs) in zip(axes, panels, strict=True):
        draw_bullseye(ax, values, title=title, **kwargs)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, path)


def segment_montage(
    images: np.ndarray,
    segment_maps: np.ndarray,
    *,
    levels: Sequence[object] | None = None,
    crop: int | None = 48,
    title: str = "",
) -> plt.Figure:
    """One row of slices with the AHA segments overlaid and numbered (for checking orientation by eye).

    Args:
        images: ``(S, H, W)`` intensities.
        segment_maps: ``(S, H, W)`` 0 / 1-17.
        levels: per-slice level names shown as titles.
        crop: half-size in pixels of a window around the myocardium (None = whole slice).
    """
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.4))
    axes = np.atleast_1d(axes)
    colours = plt.get_cmap("tab20")
    for s, ax in enumerate(axes):
        image, segments = images[s], segment_maps[s]
        window = (slice(None), slice(None))
        if crop and segments.any():
            rows, cols = np.nonzero(segments)
            r0, c0 = int(rows.mean()), int(cols.mean())
            window = (slice(max(r0 - crop, 0), r0 + crop), slice(max(c0 - crop, 0), c0 + crop))
        image, segments = image[window], segments[window]
        lo, hi = np.percentile(image, [1, 99.5]) if image.size else (0, 1)
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        overlay = np.zeros((*segments.shape, 4))
        for segment_id in np.unique(segments[segments > 0]):
            overlay[segments == segment_id] = (*colours((segment_id - 1) % 20)[:3], 0.45)
            rows, cols = np.nonzero(segments == segment_id)
            ax.text(
                cols.mean(),
                rows.mean(),
                str(segment_id),
                color="white",
                fontsize=7,
                ha="center",
                va="center",
                fontweight="bold",
            )
        ax.imshow(overlay)
        ax.set_title(str(levels[s]) if levels is not None and levels[s] is not None else f"slice {s}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
