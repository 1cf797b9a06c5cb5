"""Segmentation-consistency loss: G's one-step x0 estimate, composited into the canvas, must read as its mask to S.

This is the feedback the original joint training lacked (its loss was computed on argmax outputs and re-marked as a
leaf, so no gradient reached either network). Here the path canvas -> x_t -> G -> x0 -> composite -> S -> Dice+CE
is differentiable end to end; S's parameters are frozen for this term, so only G learns from it.

The same pass through S also yields S's finest decoder features over the painted scar: the feature term asks their
per-channel mean and spread to match those of real scar crops (consistency through S's features rather than its
output: scar that S represents as it represents real scar, not scar S finds as easily as possible).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss
from torch import nn

from claim.generator.config import GeneratorConfig
from claim.generator.context import config_anatomy, inpaint_region
from claim.generator.denoiser import HistogramUNet
from claim.generator.sampling import ddim_inpaint, make_eps_fn, make_model_fn
from claim.generator.schedule import NoiseSchedule, model_outputs
from claim.joint.config import CONSISTENCY_BOUNDS, HISTOGRAM_DISTANCES
from claim.labels import Label, infarct_mask
from claim.segmentation.loss import dice_ce_loss
from claim.segmentation.net import normalise_images

__all__ = ["frozen", "to_segmenter_frame", "GeneratorFeedback", "generator_feedback", "FeatureMoments",
           "SegmenterView", "segmenter_view", "feature_loss", "soft_histogram", "histogram_loss",
           "histogram_quantiles", "quantile_histogram_loss", "HISTOGRAM_DISTANCES", "bounded_consistency"]


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Parameters without gradients and eval mode (no norm statistics updated) for the block; restored after."""
    flags = [p.requires_grad for p in module.parameters()]
    training = module.training
    module.requires_grad_(False)
    module.eval()
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        module.train(training)


def to_segmenter_frame(
    images: torch.Tensor, label_maps: torch.Tensor, multiple: int, extents: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring G's crops to S's pixel scale and a size S accepts, differentiably for the images.

    Each item is resized to its source-pixel window ``extents[i]`` (bilinear; labels nearest) when G's crop was
    resampled, then centre-padded to the smallest common side that is a multiple of ``multiple`` (images with -1,
    the darkest value, as S pads with the slice minimum; labels with background).

    Args:
        images: ``(B, 1, C, C)`` in [-1, 1]; label_maps: ``(B, 1, C, C)`` or ``(B, C, C)`` integer ids.
        multiple: S's total stride ``2 ** (levels - 1)``.
        extents: per item, the window side in source pixels (None: no resampling).

    Returns:
        ``(images (B, 1, S, S), labels (B, S, S) int64)``.
    """
    labels = label_maps.reshape(images.shape[0], 1, *images.shape[-2:]).long()
    size = images.shape[-1]
    extents = [size] * images.shape[0] if extents is None else [int(e) for e in extents]
    side = -(-max(extents) // multiple) * multiple
    out_images, out_labels = [], []
    for i, extent in enumerate(extents):
        img, lab = images[i : i + 1], labels[i : i + 1]
        if extent != size:
            img = F.interpolate(img, size=(extent, extent), mode="bilinear", align_corners=False)
            lab = F.interpolate(lab.float(), size=(extent, extent), mode="nearest").long()
        before = (side - extent) // 2
        pad = (before, side - extent - before, before, side - extent - before)
        out_images.append(F.pad(img, pad, value=-1.0))
        out_labels.append(F.pad(lab, pad, value=0))
    return torch.cat(out_images), torch.cat(out_labels)[:, 0]


@dataclass(frozen=True)
class FeatureMoments:
    """Per-channel mean and standard deviation of S's finest decoder features over the scar pixels of a batch
    (``(C,)`` each); None in a ``SegmenterView`` whose batch has no scar pixel."""

    mean: torch.Tensor
    sd: torch.Tensor


@dataclass(frozen=True)
class SegmenterView:
    """Frozen S on a batch of G-frame crops: its Dice + CE against their label maps, and its scar features."""

    loss: torch.Tensor
    scar_features: FeatureMoments | None


@dataclass(frozen=True)
class GeneratorFeedback:
    """G's joint-step terms from one x0 estimate: ``consistency`` (S's Dice + CE on the composite),
    ``histogram`` (the painted scar against the histogram G was conditioned on: 1-D Wasserstein distance in
    intensity units, by ``histogram_loss`` (0..2) or ``quantile_histogram_loss`` (unbounded: it reads the
    unclamped estimate)) and ``scar_features`` (S's decoder
    features over the painted scar, for ``feature_loss``; differentiable for G)."""

    consistency: torch.Tensor
    histogram: torch.Tensor
    scar_features: FeatureMoments | None = None


def soft_histogram(values: torch.Tensor, weights: torch.Tensor, bins: int) -> torch.Tensor:
    """Differentiable ``bins``-bin histogram over [-1, 1] of each item's ``values`` weighted by ``weights``.

    Triangular kernels one bin wide on the bin centres (``scar_histogram``'s bins): a value shares itself between
    its two nearest centres, so the result sums to 1 and moves smoothly as the value moves. Hand-written because
    torch's ``histc`` has no gradient.

    Args:
        values: ``(B, ...)`` intensities; weights: same shape, >= 0 (e.g. the scar mask).
        bins: number of bins.

    Returns:
        ``(B, bins)``, each row summing to 1 (zeros where an item's weights are all 0).
    """
    width = 2.0 / bins
    centres = -1.0 + width * (torch.arange(bins, device=values.device, dtype=values.dtype) + 0.5)
    x = values.reshape(values.shape[0], -1, 1).clamp(float(centres[0]), float(centres[-1]))
    w = weights.reshape(weights.shape[0], -1, 1).to(values.dtype)
    membership = torch.relu(1.0 - (x - centres).abs() / width)
    counts = (membership * w).sum(1)
    return counts / w.sum(1).clamp_min(1e-6)


def histogram_loss(x0: torch.Tensor, label_maps: torch.Tensor, hists: torch.Tensor) -> torch.Tensor:
    """Mean 1-D Wasserstein distance (intensity units, [-1, 1] scale) between the soft histogram of x0 inside the
    scar (label 3, where the condition was measured) and the condition ``hists``, over the items that have scar.

    The distance of the two cumulative histograms, not of the bins: bins that do not overlap still give a gradient
    that moves the painted intensities towards the asked ones (a per-bin L1 is flat once nothing overlaps).
    """
    scar = (label_maps.reshape(x0.shape) == Label.INFARCT).to(x0.dtype)
    has = scar.flatten(1).sum(1) > 0
    if not bool(has.any()):
        return x0.sum() * 0.0
    bins = hists.shape[-1]
    painted = soft_histogram(x0[has], scar[has], bins)
    asked = hists[has].to(x0.dtype)
    asked = asked / asked.sum(1, keepdim=True).clamp_min(1e-6)
    return ((painted.cumsum(1) - asked.cumsum(1)).abs().sum(1) * (2.0 / bins)).mean()


def histogram_quantiles(hist: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles at ``levels`` (in [0, 1]) of the distribution that spreads each bin of ``hist`` (``scar_histogram``'s
    equal bins over [-1, 1]) uniformly over its bin: the inverse of its piecewise-linear CDF."""
    bins = hist.shape[-1]
    mass = hist.float().clamp_min(0)
    cdf = torch.cat([mass.new_zeros(1), (mass / mass.sum().clamp_min(1e-12)).cumsum(0)])
    edges = torch.linspace(-1.0, 1.0, bins + 1, device=hist.device)
    # The first edge whose CDF exceeds the level ends the bin that holds it; empty bins are never chosen.
    upper = torch.searchsorted(cdf, levels.float().contiguous(), right=True).clamp(1, bins)
    lower = upper - 1
    share = (levels - cdf[lower]) / (cdf[upper] - cdf[lower]).clamp_min(1e-12)
    return edges[lower] + share.clamp(0, 1) * (edges[upper] - edges[lower])


def quantile_histogram_loss(x0: torch.Tensor, label_maps: torch.Tensor, hists: torch.Tensor) -> torch.Tensor:
    """Mean exact 1-D Wasserstein distance between the painted scar's values (label 3 of ``label_maps``) and the
    condition ``hists`` (each bin's mass spread over its bin), over the items that have scar and a condition.

    W1 is the mean absolute difference of the two quantile functions: the sorted painted values against the
    condition's quantiles at the same levels. Every painted value gets a gradient towards its quantile, also
    above the top bin centre and beyond the data range when ``x0`` is the unclamped estimate; the soft histogram
    of :func:`histogram_loss` clamps values to its outer bin centres, so it cannot pull near-white scar down.
    """
    scar = label_maps.reshape(x0.shape) == Label.INFARCT
    distances = []
    for values, inside, hist in zip(x0, scar, hists, strict=True):
        painted = values[inside].float()
        if painted.numel() == 0 or float(hist.float().clamp_min(0).sum()) <= 0:  # nothing painted or nothing asked
            continue
        n = painted.numel()
        levels = (torch.arange(n, device=painted.device, dtype=torch.float32) + 0.5) / n
        target = histogram_quantiles(hist.to(painted.device), levels)
        distances.append((torch.sort(painted).values - target).abs().mean())
    if not distances:
        return x0.sum() * 0.0
    return torch.stack(distances).mean()


def _output_head(segmenter: nn.Module) -> nn.Module:
    """The 1x1 output convolution of S's segmenter DynUNet: its input is the finest decoder feature map."""
    network = getattr(segmenter, "module", segmenter)  # a DDP wrapper holds the model as .module
    network = getattr(network, "segmenter", network)  # the cascade's ROI segmenter
    head = getattr(network, "output_block", None)
    if head is None:
        raise ValueError(f"{type(network).__name__} has no output_block: the feature term needs a DynUNet segmenter")
    return head


def _scar_moments(features: torch.Tensor, labels: torch.Tensor) -> FeatureMoments | None:
    scar = (labels == Label.INFARCT).unsqueeze(1).to(torch.float32)
    count = scar.sum()
    if float(count) == 0:
        return None
    features = features.float()
    mean = (features * scar).sum((0, 2, 3)) / count
    variance = (((features - mean[None, :, None, None]) ** 2) * scar).sum((0, 2, 3)) / count
    return FeatureMoments(mean, torch.sqrt(variance + 1e-6))


def scar_border(labels: torch.Tensor, px: int) -> torch.Tensor:
    """``(B, H, W)`` bool: the ring of pixels outside the infarct (scar + MVO) of ``(B, H, W)`` label maps and within
    ``px`` pixels (chessboard distance) of it. Only the outside: a scar 2 px thick has no inside ring to spare."""
    scar = infarct_mask(labels)
    grown = F.max_pool2d(scar.float()[:, None], 2 * px + 1, stride=1, padding=px)[:, 0] > 0
    return grown & ~scar


def masked_dice_ce(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """:func:`claim.segmentation.loss.dice_ce_loss` over the ``keep`` pixels only: cross-entropy averaged over them
    plus MONAI's masked batch soft Dice of the foreground classes; with every pixel kept, the same number."""
    weight = keep.to(torch.float32)
    per_pixel = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    cross_entropy = (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)
    # One-hot here, not in MONAI: its mask also zeroes the target, which one-hot encoding would turn into background.
    one_hot = F.one_hot(labels.long(), logits.shape[1]).permute(0, 3, 1, 2).float()
    dice = MaskedDiceLoss(include_background=False, softmax=True, batch=True)(logits.float(), one_hot, weight[:, None])
    return cross_entropy + dice


def segmenter_view(segmenter: nn.Module, images: torch.Tensor, label_maps: torch.Tensor, multiple: int,
                   extents: Sequence[int] | None = None, ignore_border_px: int = 0) -> SegmenterView:
    """Frozen S on G-frame crops (brought to S's frame by ``to_segmenter_frame``): Dice + CE and scar features.
    With ``ignore_border_px`` the loss leaves out the ring of pixels that close outside the scar
    (:func:`scar_border`), so a hard edge exactly on the label earns nothing."""
    frame_images, labels = to_segmenter_frame(images, label_maps, multiple, extents)
    captured: list[torch.Tensor] = []
    # MONAI's DynUNet returns logits only; a hook on its output head reads the decoder features of the same pass.
    hook = _output_head(segmenter).register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0]))
    try:
        with frozen(segmenter):
            logits = segmenter(normalise_images(frame_images))
    finally:
        hook.remove()
    loss = (dice_ce_loss(logits, labels) if ignore_border_px <= 0
            else masked_dice_ce(logits, labels, ~scar_border(labels, ignore_border_px)))
    return SegmenterView(loss, _scar_moments(captured[-1], labels))


def bounded_consistency(synthetic: torch.Tensor, real: torch.Tensor, bound: str) -> torch.Tensor:
    """The consistency term after its bound (``claim.joint.config.CONSISTENCY_BOUNDS``): S's loss on the painted
    composite as it is (``none``), only what it exceeds S's loss on real scar crops of the same step (``real``), or
    the distance between the two (``match``: scar easier for S than real scar costs G as much as harder scar).
    ``real`` is a target: no gradient flows into it.
    """
    if bound not in CONSISTENCY_BOUNDS:
        raise ValueError(f"consistency bound {bound!r} must be one of {', '.join(CONSISTENCY_BOUNDS)}")
    real = real.detach()
    if bound == "none":
        return synthetic
    if bound == "real":
        return torch.relu(synthetic - real)
    return (synthetic - real).abs()  # match


def feature_loss(painted: FeatureMoments | None, real: FeatureMoments | None) -> torch.Tensor | None:
    """How far S's features over painted scar lie from its features over real scar, per channel: the squared
    standardised mean difference plus the squared log ratio of the spreads, averaged over channels (0 when they
    match; the spread term penalises uniform scar as well as the mean term scar of the wrong brightness).

    The scale of each channel is the pooled spread of both batches, floored at a tenth of the median channel's: a
    few crops can leave a channel nearly constant over their scar, and dividing by that alone let single steps
    reach 100x the typical loss. ``real`` is a target (no gradient). None when either batch has no scar pixel.
    """
    if painted is None or real is None:
        return None
    mean_r, sd_r = real.mean.detach(), real.sd.detach()
    pooled = torch.sqrt(0.5 * (sd_r**2 + painted.sd.detach() ** 2))
    floor = 0.1 * pooled.median()
    scale = torch.maximum(pooled, floor)
    shift = ((painted.mean - mean_r) / scale) ** 2
    spread = (torch.log(painted.sd + floor) - torch.log(sd_r + floor)) ** 2
    return (shift + spread).mean()


@torch.no_grad()
def painted_start(denoiser: HistogramUNet, schedule: NoiseSchedule, config: GeneratorConfig, known: torch.Tensor,
                  label_maps: torch.Tensor, hists: torch.Tensor, steps: int,
                  generator: torch.Generator) -> torch.Tensor:
    """G's own painting of the canvas crops (deterministic DDIM with ``steps`` steps, no gradient): the clean image
    whose noised versions the feedback terms then read, so that G's estimate at a small t is judged on the scar
    it paints, not asked to paint scar in one step into scar-free myocardium (which sampling never asks of it)."""
    region = inpaint_region(config, label_maps)
    eps_fn = make_eps_fn(denoiser, config.mode, known, region, config_anatomy(label_maps, config), hists,
                         schedule=schedule, prediction=config.prediction)
    was_training = denoiser.training
    denoiser.eval()
    try:
        painted, _ = ddim_inpaint(eps_fn, schedule, known, region, steps, generator)
    finally:
        denoiser.train(was_training)
    return painted.to(known.dtype)


def generator_feedback(
    denoiser: HistogramUNet,
    schedule: NoiseSchedule,
    config: GeneratorConfig,
    segmenter: nn.Module,
    known: torch.Tensor,
    label_maps: torch.Tensor,
    hists: torch.Tensor,
    generator: torch.Generator,
    *,
    t_max: int,
    multiple: int,
    extents: Sequence[int] | None = None,
    histogram_distance: str = "soft",
    start: torch.Tensor | None = None,
    ignore_border_px: int = 0,
) -> GeneratorFeedback:
    """G's joint terms from one x0 estimate: Dice + CE of frozen S on the inpainted estimate against the mask's
    label map (``consistency``), and the painted scar's histogram against its condition (``histogram``).

    The canvas (or ``start``, e.g. G's own painting of it) is noised to ``t ~ U{0..min(t_max, T)-1}``; G predicts x0
    (differentiable, clamped to [-1, 1] as in sampling; the network's output itself when ``config.prediction`` is
    ``x0``); the estimate replaces the canvas inside the inpainting region (lesion dilated by the blending band in
    ``claim`` mode) and the known canvas stays outside; the composite goes through S's per-image normalisation
    (affine-invariant, so G's [-1, 1] scale needs no inverse) and S. S's parameters get no gradient.

    Args:
        denoiser / schedule / config: G, its schedule and config (tensors on the denoiser's device).
        segmenter: S, mapping normalised ``(B, 1, H, W)`` to logits ``(B, 5, H, W)``.
        known: ``(B, 1, C, C)`` clean normal canvas crops in [-1, 1].
        label_maps: ``(B, 1, C, C)`` SMILE label maps (ids 0-4) on those canvases.
        hists: ``(B, bins)`` histogram conditions.
        generator: CPU generator for ``t`` and the noise.
        t_max: largest noise level (exclusive).
        multiple: S's total stride.
        extents: per item, source-pixel window of the crop (see ``to_segmenter_frame``).
        histogram_distance: ``soft`` (:func:`histogram_loss` on the clamped estimate) or ``quantile``
            (:func:`quantile_histogram_loss` on the unclamped one, so out-of-range scar is pulled back as well).
        start: the clean image ``x_t`` is noised from (``(B, 1, C, C)``, e.g. :func:`painted_start`); None: the
            canvas ``known`` itself. Outside the inpainting region the composite is the canvas either way.
        ignore_border_px: the consistency loss leaves out the pixels this close outside the scar (0: none).

    Returns:
        Both scalar terms and S's scar features; their gradients reach G's parameters only.
    """
    if histogram_distance not in HISTOGRAM_DISTANCES:
        raise ValueError(f"histogram_distance {histogram_distance!r} must be one of {', '.join(HISTOGRAM_DISTANCES)}")
    device = known.device
    b = known.shape[0]
    t = torch.randint(0, min(int(t_max), schedule.timesteps), (b,), generator=generator).to(device)
    noise = torch.randn(known.shape, generator=generator).to(device)
    inpaint_mask = inpaint_region(config, label_maps)
    x_t = schedule.add_noise(known if start is None else start, noise, t)
    raw_fn = make_model_fn(denoiser, config.mode, known, inpaint_mask,
                           config_anatomy(label_maps, config), hists)
    # eps nets: x0 from the predicted noise; x0 nets: the network's own (clamped) x0.
    raw = raw_fn(x_t, t)
    _, x0 = model_outputs(raw, x_t, t, schedule, config.prediction)
    composite = torch.where(inpaint_mask, x0, known)
    view = segmenter_view(segmenter, composite, label_maps, multiple, extents, ignore_border_px)
    if histogram_distance == "quantile":
        unclamped = model_outputs(raw, x_t, t, schedule, config.prediction, clamp=False)[1]
        histogram = quantile_histogram_loss(unclamped, label_maps, hists)
    else:
        histogram = histogram_loss(x0, label_maps, hists)
    return GeneratorFeedback(consistency=view.loss, histogram=histogram, scar_features=view.scar_features)
