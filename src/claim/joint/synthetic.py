"""Synthetic slices for S: G's EMA paints SMILE masks into normal canvases; a replay buffer keeps the newest.

Slices are painted like ``claim generate`` (crop, fast DDIM inpainting, paste back into the full slice) and then
cut by the segmenter's own ``slices_from_patients`` at its training window, and jittered like real ones when
sampled, so S sees synthetic slices in exactly the frame of real ones.
"""

from __future__ import annotations

import numpy as np
import torch

from claim.generator.checkpoint import LoadedGenerator
from claim.generator.inpaint import choose_condition, inpaint_patient
from claim.joint.canvas import Canvas, sample_painted_stack
from claim.labels import infarct_mask
from claim.segmentation.data import jittered_rois, slices_from_patients

__all__ = ["ReplayBuffer", "paint_synthetic_slices"]


class ReplayBuffer:
    """First-in first-out store of synthetic slices in S's frame.

    Args:
        capacity: most slices kept; adding more drops the oldest.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.images = torch.zeros(0)
        self.labels = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def add(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Append ``(N, 1, C, C)`` raw images and ``(N, C, C)`` labels, keeping the newest ``capacity``."""
        if len(self) == 0:
            self.images, self.labels = images, labels
        else:
            self.images = torch.cat([self.images, images])
            self.labels = torch.cat([self.labels, labels])
        self.images = self.images[-self.capacity :]
        self.labels = self.labels[-self.capacity :]

    def sample(self, n: int, generator: torch.Generator,
               size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` slices drawn uniformly with replacement; with ``size``, each cut to a ``size`` ROI at an offset
        drawn from ``generator`` when the buffer holds wider training windows (S's ``roi_jitter``), as real
        slices are."""
        if len(self) == 0:
            raise ValueError("replay buffer is empty")
        index = torch.randint(0, len(self), (n,), generator=generator)
        images, labels = self.images[index], self.labels[index]
        if size is None or images.shape[-1] == size:
            return images, labels
        rois, roi_labels = jittered_rois(images.numpy(), labels.numpy(), size, generator)
        return torch.from_numpy(rois), torch.from_numpy(roi_labels)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"images": self.images.clone(), "labels": self.labels.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.images, self.labels = state["images"], state["labels"]


def paint_synthetic_slices(
    generator: LoadedGenerator,
    canvases: list[Canvas],
    n_masks: int,
    crop_size: int,
    rng: np.random.Generator,
    *,
    sampler_steps: int,
    hist_rule: str = "matched",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint ``n_masks`` fresh SMILE mask stacks (one random canvas each) with G's fast DDIM sampler.

    Args:
        generator: G as a sampler (EMA weights, eval mode).
        canvases: normal patients with their SMILE samplers.
        n_masks: mask stacks to paint.
        crop_size: S's centred training window side (``SegmenterConfig.training_window``: its ROI, widened by
            its ``roi_jitter`` on each side).
        rng: every draw (canvas, mask, histogram, noise seed).
        sampler_steps: DDIM steps.
        hist_rule: how each stack's histogram condition is drawn (``claim.generator.inpaint.choose_condition``).

    Returns:
        ``(images (N, 1, crop, crop) float32 raw, labels (N, crop, crop) int64)``: every synthetic slice whose crop
        holds scar or MVO.
    """
    images, labels = [], []
    for _ in range(n_masks):
        canvas = canvases[int(rng.integers(len(canvases)))]
        label_maps, _slices = sample_painted_stack(canvas, rng)
        hist, _k, _rule = choose_condition(generator, canvas.patient, label_maps, rng, hist_rule)
        noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
        painted, _info = inpaint_patient(generator, canvas.patient, label_maps, sampler=f"ddim:{sampler_steps}",
                                         hist=hist, guidance=1.0, torch_generator=noise)
        synthetic = canvas.patient.with_arrays(images=painted.astype(np.float32), label_maps=label_maps)
        cut = slices_from_patients([synthetic], crop_size)
        slice_labels = torch.as_tensor(np.asarray(cut.labels)).long()
        keep = infarct_mask(slice_labels).flatten(1).any(1)
        images.append(torch.as_tensor(np.asarray(cut.images), dtype=torch.float32)[keep])
        labels.append(slice_labels[keep])
    return torch.cat(images), torch.cat(labels)
