"""Lesion-focused noise losses: LeFusion's (L1 on scar pixels only) and ours (scar plus a weighted boundary band)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dilate_mask", "lefusion_loss", "lesion_weights", "claim_loss"]


def dilate_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Dilate a ``(B, 1, H, W)`` mask by ``pixels`` with a square (chessboard) structuring element."""
    if pixels <= 0:
        return mask.bool()
    return F.max_pool2d(mask.float(), 2 * pixels + 1, stride=1, padding=pixels) > 0.5


def lefusion_loss(eps_hat: torch.Tensor, eps: torch.Tensor, lesion_mask: torch.Tensor) -> torch.Tensor:
    """LeFusion: ``mean(|eps M - eps_hat M|)`` over ALL pixels (so small scars weigh little, as in the original)."""
    m = lesion_mask.float()
    return (eps * m - eps_hat * m).abs().mean()


def lesion_weights(lesion_mask: torch.Tensor, boundary_px: int, boundary_weight: float) -> torch.Tensor:
    """Per-pixel weights: 1 on the lesion, ``boundary_weight`` on a ``boundary_px`` band around it, 0 elsewhere."""
    lesion = lesion_mask.bool()
    band = dilate_mask(lesion, boundary_px) & ~lesion
    return lesion.float() + boundary_weight * band.float()


def claim_loss(eps_hat: torch.Tensor, eps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted MSE normalised by the total weight: every lesion pixel counts the same whatever the scar size.

    MSE (not L1) because DDIM assumes the network returns the posterior mean of the noise.
    """
    return (weights * (eps_hat - eps) ** 2).sum() / weights.sum().clamp(min=1.0)
