"""Generator data: LV-centred, intensity-normalised crops of slices, their histograms, and seeded augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from claim.data.patient import Patient
from claim.data.preprocess import CropBox, IntensityNorm, crop_slice, fit_intensity_norm, lv_crop_box
from claim.generator.config import GeneratorConfig
from claim.generator.histogram import scar_histogram
from claim.labels import Label, infarct_mask

__all__ = [
    "SliceCrop",
    "CropSet",
    "crop_patient_slice",
    "patient_norm",
    "build_training_set",
    "augment_batch",
    "lesion_masks",
    "myocardium_masks",
]


@dataclass(frozen=True)
class SliceCrop:
    """One slice cut for the generator.

    Attributes:
        image: ``(crop, crop)`` float32 in [-1, 1].
        label_map: ``(crop, crop)`` uint8 label ids.
        box: where the crop came from in the source slice.
    """

    image: np.ndarray
    label_map: np.ndarray
    box: CropBox


@dataclass(frozen=True)
class CropSet:
    """Training tensors: images ``(N, 1, H, W)`` in [-1, 1], label maps ``(N, 1, H, W)`` uint8, hists ``(N, bins)``."""

    images: torch.Tensor
    label_maps: torch.Tensor
    hists: torch.Tensor
    slice_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def patient_norm(patient: Patient) -> IntensityNorm:
    """Robust per-patient [-1, 1] window, fitted on the slices' LV neighbourhood (a 2x dilated heart box).

    Fitting near the heart keeps the dark air and bright fat far from the LV from setting the scale.
    """
    heart = patient.myocardium_mask | (patient.label_maps == Label.CAVITY)
    region = np.zeros_like(heart)
    for k in range(patient.n_slices):
        rows, cols = np.nonzero(heart[k])
        if rows.size == 0:
            continue
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        dr, dc = r1 - r0 + 1, c1 - c0 + 1
        region[k, max(r0 - dr // 2, 0) : r1 + dr // 2 + 1, max(c0 - dc // 2, 0) : c1 + dc // 2 + 1] = True
    return fit_intensity_norm(patient.images, region if region.any() else None)


def crop_patient_slice(
    patient: Patient, k: int, config: GeneratorConfig, norm: IntensityNorm, label_map: np.ndarray | None = None
) -> SliceCrop:
    """Cut slice ``k`` around its LV (using ``label_map`` if given, e.g. a synthetic mask's labels).

    Normalisation happens before cropping, so padding is the darkest value -1 rather than mid-grey (LeFusion
    padded with 0 after rescaling).
    """
    labels = patient.label_maps[k] if label_map is None else label_map
    target = config.target_spacing_mm if patient.spacing_mm is not None else None
    box = lv_crop_box(labels, config.crop_size, spacing_mm=patient.spacing_mm, target_spacing_mm=target)
    image = crop_slice(norm.normalise(patient.images[k]), box, fill=-1.0)
    crop_labels = crop_slice(labels, box, is_label=True)
    return SliceCrop(image.astype(np.float32), crop_labels.astype(np.uint8), box)


def build_training_set(patients: list[Patient], config: GeneratorConfig) -> CropSet:
    """Crops of every slice with scar (label 3) of the given patients, with their scar histograms."""
    images, labels, hists, ids = [], [], [], []
    for patient in patients:
        norm = patient_norm(patient)
        for k in range(patient.n_slices):
            if not np.any(patient.label_maps[k] == Label.INFARCT):
                continue
            crop = crop_patient_slice(patient, k, config, norm)
            if not np.any(crop.label_map == Label.INFARCT):
                continue
            images.append(crop.image)
            labels.append(crop.label_map)
            hists.append(scar_histogram(crop.image, crop.label_map == Label.INFARCT, config.hist_bins))
            ids.append(f"{patient.patient_id}:{patient.slice_positions[k]}")
    if not images:
        raise ValueError("no slice with scar (label 3) found: the generator trains on pathological slices")
    return CropSet(
        images=torch.from_numpy(np.stack(images))[:, None],
        label_maps=torch.from_numpy(np.stack(labels))[:, None],
        hists=torch.from_numpy(np.stack(hists)),
        slice_ids=tuple(ids),
    )


def augment_batch(
    images: torch.Tensor, label_maps: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and 90-degree rotations per item, drawn from ``generator`` (same draw for image and labels).

    Exact pixel permutations only: the histogram condition of the crop stays valid.
    """
    n = images.shape[0]
    flips = torch.randint(0, 2, (n,), generator=generator)
    turns = torch.randint(0, 4, (n,), generator=generator)
    out_i, out_l = [], []
    for i in range(n):
        img, lab = images[i], label_maps[i]
        if flips[i]:
            img, lab = img.flip(-1), lab.flip(-1)
        img, lab = torch.rot90(img, int(turns[i]), (-2, -1)), torch.rot90(lab, int(turns[i]), (-2, -1))
        out_i.append(img)
        out_l.append(lab)
    return torch.stack(out_i), torch.stack(out_l)


def lesion_masks(label_maps: torch.Tensor) -> torch.Tensor:
    """Scar plus MVO ``{3, 4}`` as a bool tensor (the region the generator paints)."""
    return infarct_mask(label_maps)


def myocardium_masks(label_maps: torch.Tensor) -> torch.Tensor:
    """Whole myocardium ``{2, 3, 4}`` as a bool tensor."""
    return (label_maps >= Label.MYOCARDIUM) & (label_maps <= Label.MVO)

