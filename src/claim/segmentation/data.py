"""Slices for the segmenter: LV-centred ROIs and whole-slice overviews, paste-back, the training set, augmentation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandScaleIntensityd,
    RandZoomd,
)
from skimage.transform import resize

from claim.data.patient import Patient
from claim.data.preprocess import CropBox, crop_slice, lv_crop_box, paste_slice
from claim.labels import Label, myocardium_mask
from claim.segmentation.config import SegmenterConfig

__all__ = ["SliceSet", "roi_box", "crop_rois", "paste_rois", "with_context", "overview",
           "overview_labels", "slices_from_patients", "training_slices", "jittered_rois", "build_augmentation",
           "augment_batch"]


def roi_box(shape: tuple[int, int], centre: tuple[float, float], size: int) -> CropBox:
    """The ``size`` square window of a ``shape`` slice centred (to the pixel) on ``centre`` = (row, col)."""
    return CropBox(int(round(centre[0] - size / 2)), int(round(centre[1] - size / 2)), size, size,
                   (int(shape[0]), int(shape[1])))


def crop_rois(stack: np.ndarray, box: CropBox, *, is_label: bool = False) -> np.ndarray:
    """``box`` cut from every slice of ``(S, H, W)``; images are padded with each slice's minimum, labels with 0."""
    return np.stack([crop_slice(s, box, is_label=is_label, fill=0 if is_label else float(s.min())) for s in stack]
                    ) if len(stack) else np.zeros((0, box.out_size, box.out_size), stack.dtype)


def paste_rois(rois: np.ndarray, box: CropBox, fill: int = 0) -> np.ndarray:
    """Inverse of :func:`crop_rois` for label maps: ``(S, C, C)`` into ``(S, *box.source_shape)``, outside = fill."""
    base = np.full(box.source_shape, fill, dtype=rois.dtype)
    if not len(rois):
        return np.zeros((0, *box.source_shape), rois.dtype)
    return np.stack([paste_slice(r, box, base, is_label=True) for r in rois])


def with_context(stack: np.ndarray, context: int) -> np.ndarray:
    """``(S, H, W)`` slices as ``(S, 1 + 2 * context, H, W)``: each slice in the middle channel between its
    ``context`` neighbours on either side, in stack order; past a stack's ends the edge slice repeats."""
    stack = np.asarray(stack)
    if not len(stack):
        return np.zeros((0, 1 + 2 * context, *stack.shape[1:]), stack.dtype)
    positions = np.arange(len(stack))[:, None] + np.arange(-context, context + 1)[None, :]
    return stack[np.clip(positions, 0, len(stack) - 1)]


def overview(stack: np.ndarray, size: int) -> np.ndarray:
    """Whole slices ``(S, H, W)`` resized to ``(S, size, size)`` (bilinear, anti-aliased): the localiser's input."""
    return resize(np.asarray(stack, np.float32), (len(stack), size, size), order=1, preserve_range=True,
                  anti_aliasing=True).astype(np.float32)


def overview_labels(label_maps: np.ndarray, size: int) -> np.ndarray:
    """The localiser's targets: 0 background, 1 LV cavity, 2 myocardium, resized nearest to ``(S, size, size)``."""
    heart = np.where(myocardium_mask(label_maps), 2, np.where(label_maps == Label.CAVITY, 1, 0))
    return resize(heart, (len(heart), size, size), order=0, preserve_range=True,
                  anti_aliasing=False).astype(np.int64)


@dataclass(frozen=True)
class SliceSet:
    """Training slices: LV-centred ROIs, or wider windows to cut jittered ROIs from (and, for a cascade,
    whole-slice overviews).

    Attributes:
        images: ``(N, K, C, C)`` float32 raw ROIs or windows (source units; normalised later, per image, in torch);
            ``K`` channels: the slice and its neighbours (:func:`with_context`).
        labels: ``(N, C, C)`` int64 label ids.
        patient_ids: per slice, its patient.
        overviews: ``(N, 1, L, L)`` float32 raw whole slices resized for the localiser, or ``None``.
        overview_labels: ``(N, L, L)`` int64 localiser targets (:func:`overview_labels`), or ``None``.
    """

    images: np.ndarray
    labels: np.ndarray
    patient_ids: list[str]
    overviews: np.ndarray | None = None
    overview_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def has_scar(self) -> np.ndarray:
        """``(N,)`` bool: the ROI holds infarct or MVO (the slices foreground oversampling draws from)."""
        if not len(self):
            return np.zeros(0, dtype=bool)
        return np.isin(self.labels, (Label.INFARCT, Label.MVO)).reshape(len(self), -1).any(axis=1)

    @staticmethod
    def concat(sets: Sequence[SliceSet], crop_size: int, channels: int = 1) -> SliceSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return SliceSet(np.zeros((0, channels, crop_size, crop_size), np.float32),
                            np.zeros((0, crop_size, crop_size), np.int64), [])
        with_overviews = all(s.overviews is not None for s in sets)
        return SliceSet(np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
                        [pid for s in sets for pid in s.patient_ids],
                        np.concatenate([s.overviews for s in sets]) if with_overviews else None,
                        np.concatenate([s.overview_labels for s in sets]) if with_overviews else None)


def slices_from_patients(patients: Sequence[Patient], crop_size: int, overview_size: int = 0,
                         context: int = 0) -> SliceSet:
    """Every slice of ``patients`` as an ROI centred on the patient's labelled heart (cavity + myocardium, all
    slices; the image centre where nothing is labelled), with ``context`` neighbouring slices on each side as
    extra channels, plus ``overview_size`` overviews when > 0.

    The ROI of a whole stack is one window, as at prediction, so a patient's slices keep their relative position.
    """
    sets = []
    for p in patients:
        box = lv_crop_box(p.label_maps, crop_size)
        images = with_context(crop_rois(p.images.astype(np.float32), box), context)
        labels = crop_rois(p.label_maps.astype(np.int64), box, is_label=True)
        views = view_labels = None
        if overview_size:
            views = overview(p.images, overview_size)[:, None]
            view_labels = overview_labels(p.label_maps, overview_size)
        sets.append(SliceSet(images, labels, [p.patient_id] * p.n_slices, views, view_labels))
    return SliceSet.concat(sets, crop_size, 1 + 2 * context)


def training_slices(patients: Sequence[Patient], config: SegmenterConfig) -> SliceSet:
    """:func:`slices_from_patients` in the frame ``config`` trains on (slice context, overviews), the windows
    ``2 * config.roi_jitter`` pixels wider than the ROI, so that every step can cut its ROI off-centre
    (:func:`jittered_rois`)."""
    return slices_from_patients(patients, config.training_window, config.localiser_size,
                                config.context_slices)


def jittered_rois(images: np.ndarray, labels: np.ndarray, size: int,
                  g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``size`` ROIs cut from wider training windows ``(N, K, W, W)`` / ``(N, W, W)`` at offsets drawn uniformly
    from ``g``, as the localiser's centre can be off by a few to twenty pixels at prediction. Windows already of
    ``size`` are returned as they are, and nothing is drawn."""
    window = images.shape[-1]
    if window == size:
        return images, labels
    if window < size or (window - size) % 2:
        raise ValueError(f"training windows of {window} px cannot give centred {size} px ROIs")
    offsets = torch.randint(0, window - size + 1, (len(images), 2), generator=g).tolist()
    return (np.stack([im[:, r:r + size, c:c + size] for im, (r, c) in zip(images, offsets, strict=True)]),
            np.stack([lab[r:r + size, c:c + size] for lab, (r, c) in zip(labels, offsets, strict=True)]))


def build_augmentation(config: SegmenterConfig) -> Compose:
    """nnU-Net-like MONAI dict transforms on ``{"image": (K, C, C) normalised, "label": (1, C, C)}``.

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
        images: ``(B, K, C, C)`` normalised (every channel moves with the same spatial draw); labels:
            ``(B, C, C)`` long.

    Returns:
        Augmented ``(images, labels)`` with the same shapes and dtypes, on the input device.
    """
    augmentation.set_random_state(seed=int(seed) % (2**32))
    out_images, out_labels = [], []
    with _untracked_metadata():
        for image, label in zip(images.detach().cpu(), labels.cpu(), strict=True):
            sample = augmentation({"image": image.numpy().copy(), "label": label[None].numpy().astype(np.float32)})
            out_images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
            out_labels.append(torch.as_tensor(np.asarray(sample["label"])[0]).round().long())
    return torch.stack(out_images).to(images.device), torch.stack(out_labels).to(labels.device)


@contextlib.contextmanager
def _untracked_metadata() -> Iterator[None]:
    """MONAI transforms without MetaTensor bookkeeping (affine and applied-transform records nobody reads here):
    the same arrays (bit for bit, tested) in 0.4x the time (measured: 62 -> 26 ms per batch of eight 128 px
    ROIs, one thread). MONAI's switch is process-wide, so the caller's setting is restored."""
    previous = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(previous)
