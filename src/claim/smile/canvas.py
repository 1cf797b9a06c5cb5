"""A patient's myocardium prepared once for fast scar drawing: flat per-pixel arrays and a polar (slice, angle) grid.

Every mask is drawn on the same canvas, so the expensive part (AHA geometry) is computed once per patient and a
mask costs a few vectorised passes over the myocardial pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.aha.geometry import PatientGeometry
from claim.aha.segments import Level, segment_from_angle
from claim.labels import Label

__all__ = ["ScarCanvas", "ANGLE_BIN_DEG", "MIN_SEGMENT_PIXELS", "apply_scar"]

ANGLE_BIN_DEG = 2.0  # resolution of the polar grid on which smooth fields are drawn
N_ANGLES = int(round(360.0 / ANGLE_BIN_DEG))
MIN_SEGMENT_PIXELS = 5  # a segment with fewer myocardial pixels counts as absent from the stack


@dataclass(frozen=True, eq=False)
class ScarCanvas:
    """Myocardial pixels of one patient as flat arrays (all of length ``n_pixels``).

    Attributes:
        patient_id: the patient.
        shape: ``(S, H, W)`` of the patient's stack.
        flat_index: index of each myocardial pixel into the flattened stack.
        slice_index: slice of each pixel.
        grid_index: index into the flattened ``(S, N_ANGLES)`` polar grid (slice, angle bin).
        depth: transmural depth in [0, 1] (0 endocardium).
        endocardial: True for pixels beside the cavity (8-connected), the layer an ischemic scar grows from.
        segment: AHA segment 1-17.
        levels: per slice its ``Level`` (None without myocardium).
        segment_pixels: ``(18,)`` pixel count per segment (index 0 unused).
        geometry: the source geometry (the blob baseline works on full arrays).
    """

    patient_id: str
    shape: tuple[int, int, int]
    flat_index: np.ndarray
    slice_index: np.ndarray
    grid_index: np.ndarray
    depth: np.ndarray
    endocardial: np.ndarray
    segment: np.ndarray
    levels: tuple[Level | None, ...]
    segment_pixels: np.ndarray
    geometry: PatientGeometry
    _sorted_depth: tuple[np.ndarray, ...]

    @classmethod
    def from_geometry(cls, geometry: PatientGeometry, cavity: np.ndarray | None = None) -> ScarCanvas:
        """Prepare the canvas of a patient from its AHA geometry; ``cavity``, the ``(S, H, W)`` LV cavity mask where
        the label maps are at hand, places the endocardial layer (without it: the hole each myocardial ring
        encloses)."""
        segment_maps = geometry.segment_maps
        flat_index = np.flatnonzero(segment_maps.ravel() > 0)
        shape = segment_maps.shape
        slice_index = (flat_index // (shape[1] * shape[2])).astype(np.int32)
        angle = geometry.angle_deg.ravel()[flat_index].astype(np.float64)
        angle_bin = np.minimum((angle / ANGLE_BIN_DEG).astype(np.int64), N_ANGLES - 1)
        segment = segment_maps.ravel()[flat_index].astype(np.int64)
        depth = geometry.depth.ravel()[flat_index].astype(np.float64)
        endocardial = _beside_cavity(segment_maps > 0, cavity).ravel()[flat_index]
        sorted_depth = tuple(np.sort(depth[segment == s]) for s in range(18))
        return cls(
            patient_id=geometry.patient_id,
            shape=tuple(int(n) for n in shape),  # type: ignore[arg-type]
            flat_index=flat_index,
            slice_index=slice_index,
            grid_index=slice_index.astype(np.int64) * N_ANGLES + angle_bin,
            depth=depth,
            endocardial=endocardial,
            segment=segment,
            levels=geometry.levels,
            segment_pixels=np.bincount(segment, minlength=18),
            geometry=geometry,
            _sorted_depth=sorted_depth,
        )

    @property
    def n_pixels(self) -> int:
        return int(self.flat_index.size)

    @property
    def n_slices(self) -> int:
        return self.shape[0]

    def present_segments(self) -> tuple[int, ...]:
        """Segments with at least ``MIN_SEGMENT_PIXELS`` myocardial pixels in this stack."""
        return tuple(s for s in range(1, 18) if self.segment_pixels[s] >= MIN_SEGMENT_PIXELS)

    def segment_lookup(self, segments: tuple[int, ...] | list[int]) -> np.ndarray:
        """Boolean table over segment ids 0-17, True for ``segments``."""
        table = np.zeros(18, dtype=bool)
        table[list(segments)] = True
        return table

    def region_grid(self, segments: tuple[int, ...]) -> np.ndarray:
        """``(S, N_ANGLES)`` float indicator of ``segments`` on the polar grid (table arithmetic, no pixels)."""
        centres = (np.arange(N_ANGLES) + 0.5) * ANGLE_BIN_DEG
        table = self.segment_lookup(segments)
        grid = np.zeros((self.n_slices, N_ANGLES))
        for s, level in enumerate(self.levels):
            if level is not None:
                grid[s] = table[segment_from_angle(centres, level)]
        return grid

    def segment_capacity(self, kind: str, extent: float) -> np.ndarray:
        """Pixels per segment (``(18,)``) a scar of transmural ``extent`` could fill.

        Args:
            kind: ``endo`` (depth <= extent), ``epi`` (depth >= 1 - extent) or ``band`` (|depth - 0.5| <= extent/2).
            extent: fraction of the wall.
        """
        counts = np.zeros(18, dtype=np.int64)
        for s in range(1, 18):
            depths = self._sorted_depth[s]
            if kind == "endo":
                counts[s] = np.searchsorted(depths, extent, side="right")
            elif kind == "epi":
                counts[s] = depths.size - np.searchsorted(depths, 1.0 - extent, side="left")
            elif kind == "band":
                counts[s] = np.searchsorted(depths, 0.5 + extent / 2, side="right") - np.searchsorted(
                    depths, 0.5 - extent / 2, side="left"
                )
            else:
                raise ValueError(f"capacity kind {kind!r} is not endo, epi or band")
        return counts


def apply_scar(
    label_maps: np.ndarray, canvas: ScarCanvas, scar_pixels: np.ndarray, mvo_pixels: np.ndarray
) -> np.ndarray:
    """New label maps: the source outside the myocardium, 2 inside, 3 on the scar and 4 on the MVO core.

    Args:
        label_maps: ``(S, H, W)`` source label ids (any real scar is replaced).
        canvas: the patient's canvas.
        scar_pixels / mvo_pixels: indices into the canvas pixels (MVO pixels are part of the scar).
    """
    out = label_maps.copy()
    flat = out.reshape(-1)
    flat[canvas.flat_index] = Label.MYOCARDIUM
    flat[canvas.flat_index[scar_pixels]] = Label.INFARCT
    flat[canvas.flat_index[mvo_pixels]] = Label.MVO
    return out


def _beside_cavity(myocardium: np.ndarray, cavity: np.ndarray | None = None) -> np.ndarray:
    """``(S, H, W)``: myocardial pixels 8-connected to the cavity. Without a cavity mask, the cavity is the hole the
    myocardial ring encloses: on EMIDEC it equals the cavity label on 529 of 530 slices (the other ring is open, and
    has no hole)."""
    eight = np.ones((3, 3), dtype=bool)
    rim = np.zeros_like(myocardium)
    box = ndimage.find_objects(myocardium.any(axis=0).astype(np.int8))
    if not box:
        return rim
    # The cavity touches the rings' bounding box at most from inside, so the work is done on the box, widened by
    # one pixel for the dilation.
    rows, cols = (slice(max(b.start - 1, 0), b.stop + 1) for b in box[0])
    for s, ring in enumerate(myocardium[:, rows, cols]):
        hole = cavity[s, rows, cols] if cavity is not None else ndimage.binary_fill_holes(ring) & ~ring
        if hole.any():
            rim[s, rows, cols] = ring & ndimage.binary_dilation(hole, eight)
    return rim
