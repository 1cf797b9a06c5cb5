"""Slices for the segmenter: fixed centred square crops, paste-back, the training set record, augmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandScaleIntensityd,
    RandZoomd,
)

from claim.data.patient import Patient
from claim.segmentation.config import SegmenterConfig

__all__ = ["SliceSet", "centre_crop", "paste_centre", "slices_from_patients", "build_augmentation", "augment_batch"]


def _ranges(n: int, c: int) -> tuple[slice, slice]:
    """Source and destination ranges of a centred crop of size ``c`` from an axis of size ``n``."""
    if n >= c:
        start = (n - c) // 2
        return slice(start, start + c), slice(0, c)
    start = (c - n) // 2
    return slice(0, n), slice(start, start + n)


def centre_crop(images_or_labels: np.ndarray, crop_size: int, fill: float | None = None) -> np.ndarray:
    """Centred ``crop_size`` square of the last two axes, padded with ``fill`` where the slice is smaller.

    Args:
        images_or_labels: ``(..., H, W)`` array.
        crop_size: side of the square crop in pixels.
        fill: pad value; ``None`` pads every slice with its own minimum (use 0 for label maps).

    Returns:
        ``(..., crop_size, crop_size)`` array of the same dtype.
    """
    array = np.asarray(images_or_labels)
    h, w = array.shape[-2:]
    (src_r, dst_r), (src_c, dst_c) = _ranges(h, crop_size), _ranges(w, crop_size)
    out = np.empty((*array.shape[:-2], crop_size, crop_size), dtype=array.dtype)
    if fill is None:
        out[...] = array.min(axis=(-2, -1), keepdims=True) if array.size else 0
    else:
        out[...] = fill
    out[..., dst_r, dst_c] = array[..., src_r, src_c]
    return out


def paste_centre(crops: np.ndarray, shape: tuple[int, int], fill: float = 0) -> np.ndarray:
    """Inverse of :func:`centre_crop`: place ``(..., C, C)`` crops into ``(..., H, W)``; outside = ``fill``."""
    crops = np.asarray(crops)
    c = crops.shape[-1]
    (src_r, dst_r), (src_c, dst_c) = _ranges(shape[0], c), _ranges(shape[1], c)
    out = np.full((*crops.shape[:-2], *shape), fill, dtype=crops.dtype)
    out[..., src_r, src_c] = crops[..., dst_r, dst_c]
    return out


@dataclass(frozen=True)
class SliceSet:
    """Training slices as centred crops.

    Attributes:
        images: ``(N, 1, C, C)`` float32 raw crops (source units; normalised later, per image, in torch).
        labels: ``(N, C, C)`` int64 label ids.
        patient_ids: per slice, its patient.
    """

    images: np.ndarray
    labels: np.ndarray
    patient_ids: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @staticmethod
    def concat(sets: Sequence[SliceSet], crop_size: int) -> SliceSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return SliceSet(np.zeros((0, 1, crop_size, crop_size), np.float32),
                            np.zeros((0, crop_size, crop_size), np.int64), [])
        return SliceSet(np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
                        [pid for s in sets for pid in s.patient_ids])


def slices_from_patients(patients: Sequence[Patient], crop_size: int) -> SliceSet:
    """Every slice of ``patients`` as a centred crop (images padded with the slice minimum, labels with 0)."""
    sets = []
    for p in patients:
        images = centre_crop(p.images.astype(np.float32), crop_size, None)[:, None]
        labels = centre_crop(p.label_maps.astype(np.int64), crop_size, 0)
        sets.append(SliceSet(images, labels, [p.patient_id] * p.n_slices))
    return SliceSet.concat(sets, crop_size)


def build_augmentation(config: SegmenterConfig) -> Compose:
    """nnU-Net-like MONAI dict transforms on ``{"image": (1, C, C) normalised, "label": (1, C, C)}``.

    Spatial: flips on both axes, rotation, zoom (labels nearest). Intensity (image only): scaling, gamma, Gaussian
    noise. Seed it with ``set_random_state`` before each batch; nothing here touches a global generator.
    """
    p = config.aug_prob
    keys = ("image", "label")
    rad = math.radians(config.rotate_deg)
    return Compose([
        RandFlipd(keys, prob=config.flip_prob, spatial_axis=0),
        RandFlipd(keys, prob=config.flip_prob, spatial_axis=1),
        RandRotated(keys, range_x=rad, prob=p, mode=("bilinear", "nearest"), padding_mode="border",
                    keep_size=True),
        RandZoomd(keys, prob=p, min_zoom=config.zoom_range[0], max_zoom=config.zoom_range[1],
                  mode=("bilinear", "nearest"), padding_mode="edge", keep_size=True),
        RandScaleIntensityd("image", factors=config.intensity_scale, prob=p),
        RandAdjustContrastd("image", gamma=config.gamma_range, prob=p),
        RandGaussianNoised("image", prob=p, std=config.noise_std),
    ])


def augment_batch(augmentation: Compose, images: torch.Tensor, labels: torch.Tensor,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch sample by sample after seeding ``augmentation`` with ``seed`` (no gradient through it).

    Args:
        images: ``(B, 1, C, C)`` normalised; labels: ``(B, C, C)`` long.

    Returns:
        Augmented ``(images, labels)`` with the same shapes and dtypes, on the input device.
    """
    augmentation.set_random_state(seed=int(seed) % (2**32))
    out_images, out_labels = [], []
    for image, label in zip(images.detach().cpu(), labels.cpu(), strict=True):
        sample = augmentation({"image": image.numpy().copy(), "label": label[None].numpy().astype(np.float32)})
        out_images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
        out_labels.append(torch.as_tensor(np.asarray(sample["label"])[0]).round().long())
    return torch.stack(out_images).to(images.device), torch.stack(out_labels).to(labels.device)
