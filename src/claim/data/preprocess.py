"""LV-centred cropping and robust intensity normalisation, each with its exact inverse bookkeeping.

A crop records its box in the source grid (and the resampling factor when a common pixel spacing is asked
for), so a processed patch can be pasted back into the original slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from claim.labels import Label, myocardium_mask

__all__ = ["CropBox", "lv_crop_box", "crop_slice", "paste_slice", "IntensityNorm", "fit_intensity_norm"]


@dataclass(frozen=True)
class CropBox:
    """A square window of the source grid mapped onto an ``out_size`` x ``out_size`` patch.

    Attributes:
        row0, col0: top-left corner in source pixels (may be negative: the window is padded).
        extent: window side in source pixels (``out_size`` times the resampling factor).
        out_size: patch side in pixels.
        source_shape: the source slice shape.
    """

    row0: int
    col0: int
    extent: int
    out_size: int
    source_shape: tuple[int, int]

    @property
    def resampled(self) -> bool:
        return self.extent != self.out_size


def lv_crop_box(
    label_map: np.ndarray,
    out_size: int = 96,
    *,
    spacing_mm: tuple[float, float] | None = None,
    target_spacing_mm: float | None = None,
) -> CropBox:
    """Window centred on the LV (cavity + myocardium) of a slice or a stack ``(S, H, W)``.

    With both ``spacing_mm`` and ``target_spacing_mm`` the window covers ``out_size * target_spacing_mm`` mm
    (resampled to ``out_size`` pixels); otherwise it is ``out_size`` source pixels.
    """
    heart = myocardium_mask(label_map) | (label_map == Label.CAVITY)
    if heart.ndim == 3:
        heart = heart.any(axis=0)
    shape = heart.shape
    centre = ndimage.center_of_mass(heart) if heart.any() else (shape[0] / 2, shape[1] / 2)
    extent = out_size
    if spacing_mm is not None and target_spacing_mm is not None:
        # Square pixels are assumed for the window; anisotropic spacing uses the mean of the two.
        extent = max(int(round(out_size * target_spacing_mm / float(np.mean(spacing_mm)))), 1)
    row0 = int(round(centre[0] - extent / 2))
    col0 = int(round(centre[1] - extent / 2))
    return CropBox(row0, col0, extent, out_size, (int(shape[0]), int(shape[1])))


def _window(array: np.ndarray, box: CropBox, fill: float) -> np.ndarray:
    out = np.full((box.extent, box.extent), fill, dtype=array.dtype)
    r0, c0 = max(box.row0, 0), max(box.col0, 0)
    r1 = min(box.row0 + box.extent, array.shape[0])
    c1 = min(box.col0 + box.extent, array.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - box.row0 : r1 - box.row0, c0 - box.col0 : c1 - box.col0] = array[r0:r1, c0:c1]
    return out


def crop_slice(array: np.ndarray, box: CropBox, *, is_label: bool = False, fill: float = 0.0) -> np.ndarray:
    """Cut ``box`` from a 2D slice (padding with ``fill``), resampled to ``out_size`` when needed.

    Labels use nearest-neighbour resampling so ids stay ids.
    """
    window = _window(array, box, fill)
    if not box.resampled:
        return window
    return resize(
        window,
        (box.out_size, box.out_size),
        order=0 if is_label else 1,
        preserve_range=True,
        anti_aliasing=not is_label and box.extent > box.out_size,
    ).astype(array.dtype)


def paste_slice(
    patch: np.ndarray,
    box: CropBox,
    source: np.ndarray,
    *,
    region_mask: np.ndarray | None = None,
    is_label: bool = False,
) -> np.ndarray:
    """Inverse of ``crop_slice``: a copy of ``source`` with ``patch`` written back into its window.

    Args:
        patch: ``(out_size, out_size)`` processed patch.
        box: the box it was cut with.
        source: the original full slice (not modified).
        region_mask: optional patch-space boolean mask; only these pixels are pasted (the rest of the source stays
            bit-identical, e.g. everything outside an inpainted scar).
        is_label: nearest-neighbour when resampling back.
    """
    if patch.shape != (box.out_size, box.out_size):
        raise ValueError(f"patch shape {patch.shape} does not match the crop box ({box.out_size}, {box.out_size})")
    values = patch
    select = np.ones(patch.shape, dtype=bool) if region_mask is None else region_mask
    if box.resampled:
        values = resize(patch, (box.extent, box.extent), order=0 if is_label else 1, preserve_range=True)
        select = resize(select.astype(float), (box.extent, box.extent), order=0) > 0.5
    out = source.copy()
    r0, c0 = max(box.row0, 0), max(box.col0, 0)
    r1 = min(box.row0 + box.extent, source.shape[0])
    c1 = min(box.col0 + box.extent, source.shape[1])
    if r1 <= r0 or c1 <= c0:
        return out
    window_values = values[r0 - box.row0 : r1 - box.row0, c0 - box.col0 : c1 - box.col0]
    window_select = select[r0 - box.row0 : r1 - box.row0, c0 - box.col0 : c1 - box.col0]
    target = out[r0:r1, c0:c1]
    target[window_select] = window_values[window_select].astype(out.dtype)
    return out


@dataclass(frozen=True)
class IntensityNorm:
    """Linear map of a patient's intensities onto [-1, 1] from robust percentiles, and back."""

    low: float
    high: float

    def normalise(self, image: np.ndarray) -> np.ndarray:
        scaled = 2.0 * (image.astype(np.float32) - self.low) / (self.high - self.low) - 1.0
        return np.clip(scaled, -1.0, 1.0)

    def denormalise(self, image: np.ndarray) -> np.ndarray:
        return ((np.asarray(image, dtype=np.float32) + 1.0) / 2.0) * (self.high - self.low) + self.low


def fit_intensity_norm(
    images: np.ndarray, region_mask: np.ndarray | None = None, *, lower_pct: float = 0.5, upper_pct: float = 99.5
) -> IntensityNorm:
    """Percentile window of a patient's intensities (optionally within ``region_mask``, e.g. a dilated LV box).

    Percentiles rather than min/max keep a few hot pixels or a black padding border from setting the scale.
    """
    values = images[region_mask] if region_mask is not None else images.ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return IntensityNorm(0.0, 1.0)
    low, high = (float(v) for v in np.percentile(values, [lower_pct, upper_pct]))
    if high <= low:
        high = low + 1.0
    return IntensityNorm(low, high)
