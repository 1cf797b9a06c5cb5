"""One in-memory model of a patient: a stack of 2D short-axis slices with label maps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np

from claim.labels import Label, infarct_mask, myocardium_mask

__all__ = ["Layout", "Patient"]


class Layout(StrEnum):
    """Folder layouts claim reads and writes."""

    EMIDEC = "emidec"  # Case_X/Images/Case_X.nii.gz + Case_X/Contours/Case_X.nii.gz
    NNUNET = "nnunet"  # imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz + dataset.json
    PNG = "png"  # images/<patient>_slice<k>.png + labels/<same>.png


@dataclass(frozen=True, eq=False)
class Patient:
    """A patient as a stack of 2D slices.

    Attributes:
        patient_id: case name (``Case_P001``); new patients derived from it get suffixes.
        images: ``(S, H, W)`` float32 intensities in the source's units (0..255 for PNG, raw for NIfTI).
        label_maps: ``(S, H, W)`` uint8 label ids (``claim.labels.Label``).
        layout: the folder layout the patient came from; outputs mirror it.
        spacing_mm: in-plane pixel spacing ``(row, col)`` of the arrays, ``None`` when unknown (PNG).
        slice_thickness_mm: distance between slices, ``None`` when unknown.
        slice_positions: per slice, its position in the source (PNG ``k`` of ``_slice<k>``, NIfTI z index),
            in the order of the arrays (ascending). Says nothing about apex or base.
        image_paths / label_paths: source files (one per slice for PNG, one volume for NIfTI).
        affine: NIfTI voxel-to-world affine, kept so outputs land in the source grid.
        slice_stems: PNG only: per slice, the file stem (``Case_P001_slice004``) to mirror names.
    """

    patient_id: str
    images: np.ndarray
    label_maps: np.ndarray
    layout: Layout
    spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    slice_positions: tuple[int, ...] = ()
    image_paths: tuple[Path, ...] = ()
    label_paths: tuple[Path, ...] = ()
    affine: np.ndarray | None = None
    slice_stems: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.shape != self.label_maps.shape or self.images.ndim != 3:
            raise ValueError(
                f"patient {self.patient_id}: images {self.images.shape} and label maps {self.label_maps.shape} "
                "must both be (slices, rows, cols)"
            )
        if not self.slice_positions:
            object.__setattr__(self, "slice_positions", tuple(range(self.n_slices)))

    @property
    def n_slices(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def myocardium_mask(self) -> np.ndarray:
        return myocardium_mask(self.label_maps)

    @property
    def has_infarct(self) -> bool:
        """True when any slice holds infarct (scar or MVO, labels 3/4): the patient is pathological."""
        return bool(infarct_mask(self.label_maps).any())

    @property
    def has_mvo(self) -> bool:
        """True when any slice holds microvascular obstruction (label 4)."""
        return bool(np.any(self.label_maps == Label.MVO))

    @property
    def has_rv(self) -> bool:
        return bool(np.any(self.label_maps == Label.RV))

    def scar_burden(self) -> float:
        """Infarct (scar + MVO) as a fraction of the myocardium {2, 3, 4}, slices stacked."""
        myo = int(self.myocardium_mask.sum())
        return float(infarct_mask(self.label_maps).sum() / myo) if myo else 0.0

    def with_arrays(
        self, *, patient_id: str | None = None, images: np.ndarray | None = None, label_maps: np.ndarray | None = None
    ) -> Patient:
        """A new patient in the same grid and layout with some arrays replaced (the source is untouched)."""
        return replace(
            self,
            patient_id=patient_id or self.patient_id,
            images=self.images if images is None else images,
            label_maps=self.label_maps if label_maps is None else label_maps,
        )
