"""Anatomical post-processing of predicted label maps: what a reader would never draw is removed.

Three rules, each applied per slice (EMIDEC slices are 6-13 mm apart, too far for 3D connectivity to mean much):

1. **One myocardium**: the largest 8-connected component of the myocardium (labels {2, 3, 4}) is kept, with any
   other component that borders the same LV cavity (a ring the prediction broke by a gap); the rest becomes
   background. Infarct and MVO islands off the ring go with it, so infarct stays inside the myocardium kept.
2. **MVO inside infarct**: real MVO is the dark core of an infarct. An MVO component that touches no infarct pixel
   (label 3, 8-connected) is relabelled infarct: the infarct-with-MVO region (the EMIDEC infarct metric) is
   unchanged, only the claim that part of it is MVO is withdrawn.
3. **Cavity inside the myocardium**: cavity components that touch no myocardium are background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from claim.labels import Label, myocardium_mask

__all__ = ["PostprocessCounts", "anatomical_postprocess"]

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class PostprocessCounts:
    """Pixels each rule changed (summed over the slices it saw)."""

    myocardium_removed: int = 0
    mvo_relabelled: int = 0
    cavity_removed: int = 0

    def add(self, other: PostprocessCounts) -> None:
        self.myocardium_removed += other.myocardium_removed
        self.mvo_relabelled += other.mvo_relabelled
        self.cavity_removed += other.cavity_removed

    def to_dict(self) -> dict[str, int]:
        return {"myocardium_removed": self.myocardium_removed, "mvo_relabelled": self.mvo_relabelled,
                "cavity_removed": self.cavity_removed}


def _slice(label_map: np.ndarray, counts: PostprocessCounts) -> np.ndarray:
    out = label_map.copy()
    myo = myocardium_mask(out)
    components, n = ndimage.label(myo, structure=_EIGHT)
    if n > 1:
        largest = 1 + int(np.argmax(np.bincount(components.ravel())[1:]))
        keep = {largest}
        cavity = out == Label.CAVITY
        cavities, _ = ndimage.label(cavity, structure=_EIGHT)
        beside_largest = ndimage.binary_dilation(components == largest, structure=_EIGHT) & cavity
        shared = np.unique(cavities[beside_largest])
        if shared.size:
            beside_cavity = ndimage.binary_dilation(np.isin(cavities, shared), structure=_EIGHT) & myo
            keep |= set(np.unique(components[beside_cavity]).tolist())
        stray = myo & ~np.isin(components, sorted(keep))
        counts.myocardium_removed += int(stray.sum())
        out[stray] = Label.BACKGROUND
    mvo = out == Label.MVO
    if mvo.any():
        near_infarct = ndimage.binary_dilation(out == Label.INFARCT, structure=_EIGHT)
        components, n = ndimage.label(mvo, structure=_EIGHT)
        touching = np.unique(components[near_infarct & mvo])
        lonely = mvo & ~np.isin(components, touching[touching > 0])
        counts.mvo_relabelled += int(lonely.sum())
        out[lonely] = Label.INFARCT
    cavity = out == Label.CAVITY
    if cavity.any():
        near_myo = ndimage.binary_dilation(myocardium_mask(out), structure=_EIGHT)
        components, n = ndimage.label(cavity, structure=_EIGHT)
        touching = np.unique(components[near_myo & cavity])
        lonely = cavity & ~np.isin(components, touching[touching > 0])
        counts.cavity_removed += int(lonely.sum())
        out[lonely] = Label.BACKGROUND
    return out


def anatomical_postprocess(label_maps: np.ndarray) -> tuple[np.ndarray, PostprocessCounts]:
    """Apply the three rules to ``(S, H, W)`` (or one ``(H, W)``) EMIDEC label maps; the input is not modified.

    Returns:
        The cleaned maps (same shape and dtype) and how many pixels each rule changed.
    """
    maps = np.asarray(label_maps)
    counts = PostprocessCounts()
    if maps.ndim == 2:
        return _slice(maps, counts), counts
    if maps.ndim != 3:
        raise ValueError(f"label maps must be (S, H, W) or (H, W), got {maps.shape}")
    cleaned = np.stack([_slice(m, counts) for m in maps]) if len(maps) else maps.copy()
    return cleaned, counts
