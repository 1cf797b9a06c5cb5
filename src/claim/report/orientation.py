"""The orientation sheet: one small tile per patient showing where the AHA angle origin was placed.

Each tile is the patient's mid-ventricular slice, centred on the LV, with the anterior RV insertion (solid),
the septum direction (arrow) and the inferior insertion (dashed) drawn as the geometry will use them, so a
wrong origin is visible at a glance: the arrow must point at the RV blood pool beside the septum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from claim.aha.orientation import Orientation
from claim.aha.segments import ANTERIOR_INSERTION_DEG, SEPTUM_CENTRE_DEG
from claim.report.figures import figure_png_bytes, plt, save_figure

__all__ = [
    "OrientationTile",
    "orientation_sheet",
    "save_orientation_sheet",
    "orientation_sheet_png",
]

# AHA angle of the inferior RV insertion point (the 3|4 boundary).
_INFERIOR_INSERTION_DEG = 180.0


@dataclass(frozen=True, eq=False)
class OrientationTile:
    """What one tile shows.

    Attributes:
        patient_id: tile title.
        image: 2D intensities of the slice shown.
        heart: 2D bool mask of LV cavity + myocardium (its outline is drawn).
        centre_rc: LV centre (row, col) that the angles are measured around.
        orientation: the origin the geometry uses.
        low_confidence: draw the tile with a red frame and a LOW mark.
        reference_deg: optional screen angle of a reference anterior insertion (drawn green), for checking.
    """

    patient_id: str
    image: np.ndarray
    heart: np.ndarray
    centre_rc: tuple[float, float]
    orientation: Orientation
    low_confidence: bool = False
    reference_deg: float | None = None


def _ray(ax: plt.Axes, centre: tuple[float, float], angle_deg: float, length: float, **style: object) -> None:
    # Screen angles count counterclockwise with rows pointing down, so the row step is -sin.
    t = np.radians(angle_deg)
    row, col = centre
    ax.plot([col, col + length * np.cos(t)], [row, row - length * np.sin(t)], **style)


def _draw_tile(ax: plt.Axes, tile: OrientationTile) -> None:
    row, col = tile.centre_rc
    radius = max(float(np.sqrt(tile.heart.sum() / np.pi)), 4.0)
    half = max(2.4 * radius, 24.0)
    window = tile.image[int(max(row - half, 0)) : int(row + half) + 1, int(max(col - half, 0)) : int(col + half) + 1]
    lo, hi = np.percentile(window, [1, 99.5]) if window.size else (0.0, 1.0)
    ax.imshow(tile.image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="bilinear")
    if tile.heart.any():
        ax.contour(tile.heart.astype(float), levels=[0.5], colors=["#ffd400"], linewidths=0.5)
    orientation = tile.orientation
    reach = 1.9 * radius
    _ray(ax, tile.centre_rc, orientation.insertion_screen_deg, reach, color="#ff7f0e", lw=1.6)
    _ray(ax, tile.centre_rc, orientation.screen_deg(_INFERIOR_INSERTION_DEG), reach, color="#ff7f0e", lw=1.0, ls="--")
    septum = np.radians(orientation.screen_deg(SEPTUM_CENTRE_DEG))
    ax.annotate(
        "",
        xy=(col + 2.1 * radius * np.cos(septum), row - 2.1 * radius * np.sin(septum)),
        xytext=(col, row),
        arrowprops={"arrowstyle": "-|>", "color": "#00d5ff", "lw": 1.6},
    )
    if tile.reference_deg is not None:
        _ray(ax, tile.centre_rc, tile.reference_deg, reach, color="#2ca02c", lw=1.2, ls=":")
    ax.set_xlim(col - half, col + half)
    ax.set_ylim(row + half, row - half)
    ax.set_xticks([])
    ax.set_yticks([])
    flag = ("  LOW" + (" (outlier)" if orientation.cohort_outlier else "")) if tile.low_confidence else ""
    ax.set_title(
        f"{tile.patient_id}\n{orientation.method.value} conf {orientation.confidence:.2f}{flag}",
        fontsize=7,
        color="#c00000" if tile.low_confidence else "black",
    )
    for spine in ax.spines.values():
        spine.set_edgecolor("#c00000" if tile.low_confidence else "0.7")
        spine.set_linewidth(2.5 if tile.low_confidence else 0.5)


def orientation_sheet(tiles: Sequence[OrientationTile], *, columns: int = 10, title: str = "") -> plt.Figure:
    """A grid of orientation tiles (see module docstring); an empty list gives a sheet saying so."""
    n = max(len(tiles), 1)
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.75 * columns, 2.05 * rows + 1.0), squeeze=False)
    for ax in axes.ravel()[len(tiles) :]:
        ax.axis("off")
    if not tiles:
        axes[0, 0].text(0.5, 0.5, "no patient with an LV slice", ha="center", va="center")
    for ax, tile in zip(axes.ravel(), tiles, strict=False):
        _draw_tile(ax, tile)
    legend = (
        f"orange: anterior RV insertion (AHA {ANTERIOR_INSERTION_DEG:.0f}°), dashed: inferior insertion, "
        "cyan arrow: septum (should point at the RV)"
    )
    if any(t.reference_deg is not None for t in tiles):
        legend += ", green dotted: reference insertion"
    fig.suptitle((title + "\n" if title else "") + legend, fontsize=8)
    # Two-line tile titles need more room between rows than tight_layout leaves.
    top = 1.0 - 1.0 / fig.get_figheight()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.08, hspace=0.42)
    return fig


def save_orientation_sheet(tiles: Sequence[OrientationTile], path: Path, **kwargs: object) -> Path:
    """Write the sheet as PNG atomically."""
    return save_figure(orientation_sheet(tiles, **kwargs), Path(path), dpi=90)


def orientation_sheet_png(tiles: Sequence[OrientationTile], **kwargs: object) -> bytes:
    """The sheet as PNG bytes, for an HTML report section."""
    return figure_png_bytes(orientation_sheet(tiles, **kwargs), dpi=80)
