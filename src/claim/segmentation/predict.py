"""Apply a segmenter: the cascade (localise the heart, segment the LV-centred ROI, paste back, post-process) on
raw slices, and a whole folder mirrored into an output folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from claim.data.layouts import read_dataset
from claim.data.preprocess import CropBox
from claim.data.write import check_output_location, write_label_maps
from claim.output import staged_output
from claim.runtime import autocast, resolve_precision
from claim.segmentation.checkpoint import load_segmenter
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import crop_rois, overview, paste_rois, roi_box, with_context
from claim.segmentation.net import N_CLASSES, SegmenterEnsemble, normalise_images
from claim.segmentation.postprocess import PostprocessCounts, anatomical_postprocess

__all__ = ["Prediction", "consensus_heart", "locate_heart", "predict_patient", "predict_label_maps",
           "predict_probabilities", "predict_ensemble", "segment_folder"]


@dataclass
class Prediction:
    """One patient's prediction: label maps in the source grid, where the ROI sat, what post-processing changed."""

    label_maps: np.ndarray
    roi_centre: tuple[float, float]
    localised: bool
    postprocess: PostprocessCounts | None = field(default=None)


def _probabilities(net: torch.nn.Module, batches: np.ndarray, batch_size: int, precision: str,
                   mirror: bool = False) -> np.ndarray:
    """Softmax ``(N, C, H, W)`` of ``(N, K, H, W)`` raw images; with ``mirror``, averaged over the four flips
    (none, rows, columns, both: nnU-Net's test-time mirroring, matching the flips the network trained with)."""
    device = next(net.parameters()).device
    flips = ((), (-2,), (-1,), (-2, -1)) if mirror else ((),)
    out = []
    for start in range(0, len(batches), batch_size):
        batch = normalise_images(torch.from_numpy(np.ascontiguousarray(batches[start:start + batch_size])).to(device))
        probs = 0
        with torch.no_grad(), autocast(precision, device):
            for dims in flips:
                logits = net(batch.flip(dims) if dims else batch).float()
                probs = probs + torch.softmax(logits.flip(dims) if dims else logits, dim=1)
        out.append((probs / len(flips)).cpu().numpy())
    return np.concatenate(out)


def _labels(net: torch.nn.Module, batches: np.ndarray, batch_size: int, precision: str,
            mirror: bool = False) -> np.ndarray:
    """Argmax labels of ``(N, K, H, W)`` raw images (see :func:`_probabilities`)."""
    return _probabilities(net, batches, batch_size, precision, mirror).argmax(axis=1).astype(np.uint8)


def consensus_heart(heart: np.ndarray) -> np.ndarray | None:
    """The heart's footprint from per-slice heart masks ``(S, H, W)`` of one stack, without single slices' strays.

    The heart sits in the same place on every slice of a stack, a stray blob (bright bowel, the RV, a vessel) on a
    few: pixels called heart on at least half as many slices as the most-voted pixel form the consensus, its
    component with the most votes is the heart, each slice keeps the components that overlap it, and the footprint
    is their union over the slices, as the labelled heart whose centre training ROIs take
    (:func:`claim.data.preprocess.lv_crop_box`). ``None`` when no slice has any heart.
    """
    heart = np.asarray(heart, dtype=bool)
    votes = heart.sum(axis=0)
    if not votes.any():
        return None
    consensus, n = ndimage.label(votes >= max(1.0, votes.max() / 2))
    mass = ndimage.sum(votes, consensus, index=np.arange(1, n + 1))
    core = consensus == 1 + int(np.argmax(mass))
    footprint = np.zeros(heart.shape[1:], dtype=bool)
    for mask in heart:
        components, _ = ndimage.label(mask)
        overlapping = np.unique(components[core & mask])
        footprint |= np.isin(components, overlapping[overlapping > 0])
    return footprint


@torch.no_grad()
def locate_heart(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray, batch_size: int = 16,
                 precision: str = "fp32") -> tuple[tuple[float, float], bool]:
    """Centre (row, col) of the heart in a stack ``(S, H, W)`` from the localiser's whole-slice overviews.

    The per-slice hearts (cavity + myocardium) are pooled by :func:`consensus_heart`, so a stray blob on a few
    slices neither pulls the ROI nor, merged with the heart, moves its centre. Returns ``(centre, True)``, or the
    slice centre and ``False`` when the config has no localiser or it finds no heart.
    """
    h, w = images.shape[1:]
    fallback = (h / 2, w / 2)  # the centre training ROIs take when nothing is labelled (claim.data.lv_crop_box)
    if not config.localiser_size or not len(images):
        return fallback, False
    localiser = getattr(model, "localiser", None)
    if localiser is None:
        raise ValueError(f"config.localiser_size is {config.localiser_size} but the model has no localiser "
                         "(pass the bare CascadeSegmenter, not a wrapped one)")
    size = config.localiser_size
    footprint = consensus_heart(_labels(localiser, overview(images, size)[:, None], batch_size, precision) > 0)
    if footprint is None:
        return fallback, False
    r, c = ndimage.center_of_mass(footprint)
    # Overview pixel centres map to source pixel centres: (i + 0.5) * scale - 0.5.
    return ((r + 0.5) * h / size - 0.5, (c + 0.5) * w / size - 0.5), True


def _roi_softmax(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray, batch_size: int,
                 precision: str, mirror: bool | None):
    """Localise, cut the ROI and run the segmenter: ``(ROI softmax or None for no slices, box, centre, localised)``.

    With ``config.refine_roi`` the ROI is cut a second time, centred on the heart the segmenter found in the
    first window (:func:`consensus_heart` of its full-resolution prediction), as training ROIs are centred on the
    labelled heart: the 64 px localiser's centre can be ten or twenty pixels off, which a segmenter trained on
    centred ROIs only (``roi_jitter`` 0) misreads. The model is put into eval mode and its mode restored."""
    if images.ndim != 3:
        raise ValueError(f"images must be (S, H, W), got {images.shape}")
    mirror = config.mirror if mirror is None else mirror
    was_training = model.training
    model.eval()

    def segment(box: CropBox) -> np.ndarray | None:
        rois = with_context(crop_rois(images, box), config.context_slices)
        return _probabilities(model, rois, batch_size, precision, mirror) if len(images) else None

    try:
        centre, localised = locate_heart(model, config, images, batch_size, precision)
        box = roi_box(images.shape[1:], centre, config.crop_size)
        probs = segment(box)
        footprint = consensus_heart(probs.argmax(axis=1) > 0) if config.refine_roi and probs is not None else None
        if footprint is not None:
            r, c = ndimage.center_of_mass(footprint)
            refined = (box.row0 + r, box.col0 + c)  # ROI pixels are source pixels, shifted by the box's corner
            if np.hypot(refined[0] - centre[0], refined[1] - centre[1]) >= 1.0:
                centre, box = refined, roi_box(images.shape[1:], refined, config.crop_size)
                probs = segment(box)
    finally:
        model.train(was_training)
    return probs, box, centre, localised


def _ensemble_softmax(model: SegmenterEnsemble, config: SegmenterConfig, images: np.ndarray, batch_size: int,
                      precision: str, mirror: bool | None) -> tuple[np.ndarray, tuple[float, float], bool]:
    """Source-grid softmax averaged over an ensemble's members, each localised and cut in its own ROI; the mean of
    their ROI centres; whether every member found the heart."""
    single = config.replace(members=1)
    total, centres, localised = None, [], True
    for member in model.members:
        probs, box, centre, found = _roi_softmax(member, single, images, batch_size, precision, mirror)
        pasted = _paste_softmax(probs, box, images.shape)
        total = pasted if total is None else total + pasted
        centres.append(centre)
        localised = localised and found
    return total / len(model.members), tuple(float(v) for v in np.mean(centres, axis=0)), localised


def _paste_softmax(probs: np.ndarray | None, box: CropBox, shape: tuple[int, ...]) -> np.ndarray:
    """ROI softmax ``(S, C, c, c)`` pasted into the source grid ``(S, C, H, W)``: background certain outside."""
    if probs is None:
        return np.zeros((0, N_CLASSES, *shape[1:]), np.float32)
    return np.stack([paste_rois(np.ascontiguousarray(probs[:, c]), box, 1 if c == 0 else 0)
                     for c in range(probs.shape[1])], axis=1)


@torch.no_grad()
def predict_patient(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray, batch_size: int = 16,
                    precision: str = "fp32", postprocess: bool | None = None,
                    mirror: bool | None = None) -> Prediction:
    """Segment one patient's raw slices ``(S, H, W)`` with the cascade; outside the ROI is background.

    Args:
        model: a segmenter (put into eval mode here; the caller's mode is restored), or an ensemble of them
            (the softmax averaged over its members in the source grid; ``roi_centre`` is their ROIs' mean centre).
        config: its config (ROI size, localiser, post-processing default).
        precision: ``fp32`` or ``bf16`` (autocast of the forward passes; see ``claim.runtime``).
        postprocess: anatomical post-processing; ``None`` = ``config.postprocess``.
        mirror: test-time mirroring of the ROI segmenter; ``None`` = ``config.mirror``.
    """
    images = np.asarray(images, dtype=np.float32)
    if isinstance(model, SegmenterEnsemble):
        probs, centre, localised = _ensemble_softmax(model, config, images, batch_size, precision, mirror)
        maps = probs.argmax(axis=1).astype(np.uint8)
    else:
        roi_probs, box, centre, localised = _roi_softmax(model, config, images, batch_size, precision, mirror)
        rois = (roi_probs.argmax(axis=1).astype(np.uint8) if roi_probs is not None
                else np.zeros((0, config.crop_size, config.crop_size), np.uint8))
        maps = paste_rois(rois, box, 0)
    counts = None
    if config.postprocess if postprocess is None else postprocess:
        maps, counts = anatomical_postprocess(maps)
    return Prediction(maps, (float(centre[0]), float(centre[1])), localised, counts)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray, batch_size: int = 16,
                          precision: str = "fp32", mirror: bool | None = None) -> np.ndarray:
    """Class probabilities ``(S, C, H, W)`` of one patient's raw slices in the source grid: the ROI segmenter's
    softmax pasted back, background certain outside the ROI (an ensemble's averaged over its members). No
    post-processing (it acts on labels)."""
    images = np.asarray(images, dtype=np.float32)
    if isinstance(model, SegmenterEnsemble):
        return _ensemble_softmax(model, config, images, batch_size, precision, mirror)[0]
    probs, box, _, _ = _roi_softmax(model, config, images, batch_size, precision, mirror)
    return _paste_softmax(probs, box, images.shape)


def predict_ensemble(members: Sequence[tuple[torch.nn.Module, SegmenterConfig]], images: np.ndarray,
                     batch_size: int = 16, precision: str = "fp32", postprocess: bool | None = None) -> np.ndarray:
    """``(S, H, W)`` label maps of the softmax averaged over several segmenters (each with its own ROI; a saved
    ensemble counts as one, its own members averaged first), then post-processed (``None`` = the first member's
    ``config.postprocess``). One member gives exactly :func:`predict_label_maps`'s maps."""
    if not members:
        raise ValueError("an ensemble needs at least one segmenter")
    if len(members) == 1:
        model, config = members[0]
        return predict_label_maps(model, config, images, batch_size, precision, postprocess)
    total = None
    for model, config in members:
        probs = predict_probabilities(model, config, images, batch_size, precision)
        total = probs if total is None else total + probs
    maps = total.argmax(axis=1).astype(np.uint8)
    if members[0][1].postprocess if postprocess is None else postprocess:
        maps, _ = anatomical_postprocess(maps)
    return maps


def predict_label_maps(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray,
                       batch_size: int = 16, precision: str = "fp32", postprocess: bool | None = None) -> np.ndarray:
    """``(S, H, W)`` uint8 label maps (EMIDEC ids 0-4) of raw slices: :func:`predict_patient`'s maps."""
    return predict_patient(model, config, images, batch_size, precision, postprocess).label_maps


def segment_folder(checkpoint: Path, data_dir: Path, out_dir: Path, *, device: str = "cpu",
                   progress: bool = False, overwrite: bool = False, precision: str = "fp32",
                   postprocess: bool | None = None) -> list[Path]:
    """Segment every patient of ``data_dir`` (any layout; labels not needed) into ``out_dir``.

    Predictions mirror the input layout in the label role (``Case_X/Contours/Case_X.nii.gz``, ``labelsTr/``,
    ``labels/*.png``), so ``claim evaluate --pred OUT --gt DATA`` pairs them by name. The manifest records, per
    patient, where the ROI sat and what post-processing changed. Returns the written paths.
    """
    out_dir = Path(out_dir)
    check_output_location(out_dir, Path(data_dir))
    model, config = load_segmenter(checkpoint, device)
    precision = resolve_precision(precision, device)
    do_post = config.postprocess if postprocess is None else bool(postprocess)
    patients = read_dataset(Path(data_dir), require_labels=False)
    written: list[Path] = []
    per_patient: dict[str, dict] = {}
    # The manifest is written when the block ends, so the per-patient record filled in below lands in it.
    record = {"model": str(checkpoint), "precision": precision, "postprocess": do_post, "patients": per_patient}
    with staged_output(out_dir, "segment", overwrite=overwrite, config=record,
                       inputs=[data_dir, checkpoint]) as staging:
        for patient in tqdm(patients, desc="segment", unit="patient", disable=not progress, leave=False):
            pred = predict_patient(model, config, patient.images, precision=precision, postprocess=do_post)
            per_patient[patient.patient_id] = {
                "roi_centre": [round(v, 1) for v in pred.roi_centre], "localised": pred.localised,
                **({"postprocess": pred.postprocess.to_dict()} if pred.postprocess is not None else {})}
            written += [out_dir / p.relative_to(staging) for p in write_label_maps(patient, staging, pred.label_maps)]
    return written
