"""Soft Dice + cross-entropy on softmax probabilities: keeps the gradient (no argmax inside the loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dice_ce_loss", "soft_dice", "deep_supervision_weights", "supervised_loss"]


def soft_dice(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Per-class soft Dice of softmax probabilities vs one-hot labels, pooled over the batch ("batch Dice").

    Args:
        logits: ``(B, K, H, W)``; labels: ``(B, H, W)`` integer ids in ``0..K-1``.

    Returns:
        ``(K - 1,)`` Dice of the foreground classes; a class absent from both prediction and labels scores ~1.
    """
    probs = torch.softmax(logits, dim=1)
    one_hot = F.one_hot(labels.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    overlap = (probs * one_hot).sum(dims)
    total = probs.sum(dims) + one_hot.sum(dims)
    return ((2 * overlap + smooth) / (total + smooth))[1:]


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``CE + (1 - mean foreground soft Dice)`` as in nnU-Net.

    Args:
        logits: ``(B, 5, H, W)`` raw network outputs.
        labels: ``(B, H, W)`` long label ids.

    Returns:
        A scalar that is differentiable with respect to ``logits``.
    """
    if labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"labels {tuple(labels.shape)} must be (B, H, W) for logits {tuple(logits.shape)}")
    return F.cross_entropy(logits, labels.long()) + (1.0 - soft_dice(logits, labels).mean())


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """nnU-Net's weights for the main output and its coarser heads: 1, 1/2, 1/4, ... normalised to sum to 1."""
    weights = [0.5**i for i in range(n_outputs)]
    return [w / sum(weights) for w in weights]


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`dice_ce_loss` of ``(B, K, H, W)`` logits, or the deep-supervision weighted sum over a
    ``(B, 1 + D, K, H, W)`` stack whose heads were upsampled to the labels' size (MONAI DynUNet's training output).
    """
    if logits.ndim == 4:
        return dice_ce_loss(logits, labels)
    weights = deep_supervision_weights(logits.shape[1])
    return sum(w * dice_ce_loss(logits[:, i], labels) for i, w in enumerate(weights))
