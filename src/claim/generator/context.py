"""What the denoiser is conditioned on: the inpainting region and, in ``claim`` mode, the context channels.

One source for training (``trainer.training_loss``), sampling (``sampling.make_model_fn``) and the joint
consistency term, so the network never sees at sampling time a context built differently from the one it learnt.
"""

from __future__ import annotations

import torch

from claim.generator.config import GeneratorConfig, Mode
from claim.generator.data import lesion_masks, myocardium_masks
from claim.generator.loss import dilate_mask
from claim.labels import Label

__all__ = ["inpaint_region", "anatomy_channels", "config_anatomy", "build_context", "denoiser_input"]

def inpaint_region(config: GeneratorConfig, label_maps: torch.Tensor) -> torch.Tensor:
    """The pixels the generator repaints: scar + MVO of ``(B, 1, H, W)`` label maps, dilated by the blending band."""
    return dilate_mask(lesion_masks(label_maps), config.boundary_px)


def anatomy_channels(label_maps: torch.Tensor, mvo: bool = False, lesion: bool = False) -> torch.Tensor:
    """``(B, 1-3, H, W)`` bool: the myocardium mask; with ``mvo`` (``GeneratorConfig.mvo_channel``) the MVO mask
    after it; with ``lesion`` (``GeneratorConfig.lesion_channel``) the lesion itself (scar + MVO) last."""
    channels = [myocardium_masks(label_maps)]
    if mvo:
        channels.append(label_maps == Label.MVO)
    if lesion:
        channels.append(lesion_masks(label_maps))
    return torch.cat(channels, dim=1)


def config_anatomy(label_maps: torch.Tensor, config: GeneratorConfig) -> torch.Tensor:
    """The anatomy channels ``config`` asks for: what training, sampling and the consistency term all pass."""
    return anatomy_channels(label_maps, config.mvo_channel, config.lesion_channel)


def build_context(known: torch.Tensor, region: torch.Tensor, label_maps: torch.Tensor | None = None, *,
                  myocardium: torch.Tensor | None = None, mvo: bool = False, lesion: bool = False) -> torch.Tensor:
    """``(B, 3-5, H, W)`` claim-mode context: ``known`` blanked inside ``region``, ``region``, the anatomy.

    Args:
        known: ``(B, 1, H, W)`` source crop in [-1, 1].
        region: ``(B, 1, H, W)`` bool inpainting region.
        label_maps: ``(B, 1, H, W)`` label ids, for the anatomy channels (``anatomy_channels(label_maps, mvo,
            lesion)``).
        myocardium: the anatomy channels given directly instead (``(B, 1-3, H, W)``, e.g. ``config_anatomy``).
        mvo / lesion: with ``label_maps``, also the MVO / lesion channel.
    """
    if myocardium is None:
        if label_maps is None:
            raise ValueError("give label_maps or myocardium")
        myocardium = anatomy_channels(label_maps, mvo, lesion)
    return torch.cat([known * (~region).float(), region.float(), myocardium.float()], dim=1)


def denoiser_input(mode: Mode, x_t: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """The denoiser's input: ``x_t`` alone (``lefusion``) or ``x_t`` with the context channels (``claim``)."""
    if Mode(mode) == Mode.CLAIM:
        if context is None:
            raise ValueError("claim mode needs the context channels")
        return torch.cat([x_t, context], dim=1)
    return x_t
