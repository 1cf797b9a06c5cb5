"""Apply a segmenter: full-size label maps from raw slices, and a whole folder mirrored into an output folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from claim.data.layouts import read_dataset
from claim.data.write import check_output_location, write_label_maps
from claim.output import staged_output
from claim.runtime import autocast, resolve_precision
from claim.segmentation.checkpoint import load_segmenter
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import centre_crop, paste_centre
from claim.segmentation.net import normalise_images

__all__ = ["predict_label_maps", "segment_folder"]


@torch.no_grad()
def predict_label_maps(model: torch.nn.Module, config: SegmenterConfig, images: np.ndarray,
                       batch_size: int = 16, precision: str = "fp32") -> np.ndarray:
    """Segment raw slices: centred crop, per-image normalisation, argmax, paste back (outside the crop = 0).

    Args:
        model: a segmenter (put into eval mode here; the caller's mode is restored).
        config: its config (crop size).
        images: ``(S, H, W)`` raw intensities.
        precision: ``fp32`` or ``bf16`` (autocast of the forward pass; see ``claim.runtime``).

    Returns:
        ``(S, H, W)`` uint8 label maps (EMIDEC ids 0-4).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be (S, H, W), got {images.shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    crops = centre_crop(images, config.crop_size, None)[:, None]
    out = []
    for start in range(0, len(crops), batch_size):
        batch = torch.from_numpy(crops[start:start + batch_size]).to(device)
        with torch.no_grad(), autocast(precision, device):
            logits = model(normalise_images(batch))
        out.append(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
    model.train(was_training)
    pred = np.concatenate(out) if out else np.zeros((0, config.crop_size, config.crop_size), np.uint8)
    return paste_centre(pred, images.shape[1:], 0)


def segment_folder(checkpoint: Path, data_dir: Path, out_dir: Path, *, device: str = "cpu",
                   progress: bool = False, overwrite: bool = False, precision: str = "fp32") -> list[Path]:
    """Segment every patient of ``data_dir`` (any layout; labels not needed) into ``out_dir``.

    Predictions mirror the input layout in the label role (``Case_X/Contours/Case_X.nii.gz``, ``labelsTr/``,
    ``labels/*.png``), so ``claim evaluate --pred OUT --gt DATA`` pairs them by name. Returns the written paths.
    """
    out_dir = Path(out_dir)
    check_output_location(out_dir, Path(data_dir))
    model, config = load_segmenter(checkpoint, device)
    precision = resolve_precision(precision, device)
    patients = read_dataset(Path(data_dir), require_labels=False)
    written: list[Path] = []
    with staged_output(out_dir, "segment", overwrite=overwrite, config={"model": str(checkpoint),
                                                                        "precision": precision},
                       inputs=[data_dir, checkpoint]) as staging:
        for patient in tqdm(patients, desc="segment", unit="patient", disable=not progress, leave=False):
            maps = predict_label_maps(model, config, patient.images, precision=precision)
            written += [out_dir / p.relative_to(staging) for p in write_label_maps(patient, staging, maps)]
    return written
