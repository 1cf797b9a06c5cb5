"""The segmenter network (MONAI DynUNet, 2D, nnU-Net style) and its differentiable per-image normalisation."""

from __future__ import annotations

import torch
from monai.networks.nets import DynUNet

from claim.segmentation.config import SegmenterConfig

__all__ = ["N_CLASSES", "build_segmenter", "normalise_images"]

N_CLASSES = 5  # EMIDEC labels 0-4 (claim.labels.Label without RV)
_LOW_PCT, _HIGH_PCT = 0.005, 0.995


def build_segmenter(config: SegmenterConfig) -> torch.nn.Module:
    """DynUNet mapping normalised ``(B, 1, H, W)`` images to logits ``(B, 5, H, W)``.

    ``H`` and ``W`` must be multiples of ``2 ** (len(config.filters) - 1)``. Instance norm and leaky ReLU as nnU-Net;
    no deep supervision (one output keeps the loss and the joint-training path simple).
    """
    levels = len(config.filters)
    return DynUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=N_CLASSES,
        kernel_size=[3] * levels,
        strides=[1] + [2] * (levels - 1),
        upsample_kernel_size=[2] * (levels - 1),
        filters=list(config.filters),
        norm_name="instance",
        deep_supervision=False,
        res_block=False,
    )


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """Per-image robust z-score: clip to the 0.5/99.5 percentiles, subtract the mean, divide by the SD.

    Differentiable (``torch.quantile`` and ``clamp`` pass gradients), so synthetic images produced by a generator
    can be trained through. Works for any intensity units (PNG 0..255, raw scanner values).

    Args:
        images: ``(B, 1, H, W)`` raw intensities.

    Returns:
        ``(B, 1, H, W)`` float with roughly zero mean and unit SD per image.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (B, 1, H, W), got {tuple(images.shape)}")
    flat = images.float().flatten(1)
    q = torch.quantile(flat, torch.tensor([_LOW_PCT, _HIGH_PCT], device=flat.device, dtype=flat.dtype), dim=1)
    clipped = torch.clamp(flat, min=q[0][:, None], max=q[1][:, None])
    mean = clipped.mean(dim=1, keepdim=True)
    std = clipped.std(dim=1, keepdim=True)
    return ((clipped - mean) / (std + 1e-6)).view_as(images)
