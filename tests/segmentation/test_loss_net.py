"""Loss keeps the gradient; normalisation is per image, robust and differentiable; the network's shapes."""

from __future__ import annotations

import pytest
import torch

from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.loss import (
    METRIC_REGIONS,
    deep_supervision_weights,
    dice_ce_loss,
    region_soft_dice,
    soft_dice,
    supervised_loss,
)
from claim.segmentation.net import _row_quantile, build_segmenter, normalise_images
from tests.segmentation.conftest import TEST_CONFIG


def test_loss_gradient_reaches_logits_and_is_differentiable():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (2, 6, 6), generator=g)
    loss = dice_ce_loss(logits, labels)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    small = torch.randn(1, 5, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: dice_ce_loss(x, labels[:1, :3, :3]), (small,))


@pytest.mark.parametrize("dice_over", ["classes", "regions"])
def test_stacked_heads_loss_is_cross_entropy_plus_soft_dice_per_head(dice_over):
    """The one-pass loss over a deep-supervision stack equals the textbook formula head by head, value and
    gradient: cross-entropy plus one minus the mean of soft_dice / region_soft_dice, weighted 4:2:1."""
    g = torch.Generator().manual_seed(5)
    stack = torch.randn(3, 3, 5, 10, 12, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (3, 10, 12), generator=g)
    labels[0] = 0  # a slice of background only, as most training slices' scar classes are
    dice = soft_dice if dice_over == "classes" else region_soft_dice
    reference = sum(w * (torch.nn.functional.cross_entropy(stack[:, i], labels) + 1 - dice(stack[:, i], labels).mean())
                    for i, w in enumerate(deep_supervision_weights(3)))
    loss = supervised_loss(stack, labels, dice_over)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(torch.autograd.grad(loss, stack)[0], torch.autograd.grad(reference, stack)[0])
    with pytest.raises(ValueError, match="labels"):
        supervised_loss(stack, labels[:, :5], dice_over)


def test_perfect_logits_give_dice_one_and_lower_loss():
    labels = torch.randint(0, 5, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    perfect = 50.0 * torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    assert torch.allclose(soft_dice(perfect, labels), torch.ones(4), atol=1e-4)
    assert dice_ce_loss(perfect, labels) < 1e-3 < dice_ce_loss(torch.zeros_like(perfect), labels)


def test_region_dice_scores_the_metrics_nested_regions():
    labels = torch.randint(0, 5, (2, 8, 8), generator=torch.Generator().manual_seed(3))
    perfect = 50.0 * torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    assert torch.allclose(region_soft_dice(perfect, labels), torch.ones(len(METRIC_REGIONS)), atol=1e-4)
    assert METRIC_REGIONS == ((1,), (2, 3, 4), (3, 4), (4,))
    # Every infarct pixel predicted as MVO: per class, infarct Dice ~0; as regions, the infarct region (3-4) is whole.
    scar = torch.full((1, 8, 8), 2)
    scar[0, 2:6, 2:6] = 3
    as_mvo = scar.clone()
    as_mvo[scar == 3] = 4
    logits = 50.0 * torch.nn.functional.one_hot(as_mvo, 5).permute(0, 3, 1, 2).float()
    per_class = soft_dice(logits, scar)
    regions = region_soft_dice(logits, scar)
    assert per_class[2] < 1e-3  # class 3 (infarct) alone
    assert regions[2] > 0.999 and regions[1] > 0.999  # infarct 3-4 and myocardium 2-4
    assert regions[3] < 1e-3  # MVO predicted where there is none
    healthy = 50.0 * torch.nn.functional.one_hot(torch.full((1, 8, 8), 2), 5).permute(0, 3, 1, 2).float()
    assert region_soft_dice(healthy, scar)[2] < 1e-3  # the scar called healthy misses the infarct region
    small = torch.randn(1, 5, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64,
                        requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: dice_ce_loss(x, scar[:, :3, :3], "regions"), (small,))
    with pytest.raises(ValueError, match="dice_over"):
        dice_ce_loss(logits, scar, "voxels")
    with pytest.raises(ValueError, match="dice_over"):
        SegmenterConfig(dice_over="voxels")


def test_normalise_images_per_image_robust_and_differentiable():
    g = torch.Generator().manual_seed(2)
    raw = torch.rand(3, 1, 16, 16, generator=g) * 255
    out = normalise_images(raw)
    scaled = normalise_images(torch.cat([raw[:1] * 16 + 7, raw[1:]]))  # affine change of image 0 only
    torch.testing.assert_close(out, scaled, atol=1e-4, rtol=1e-4)
    assert torch.allclose(out.flatten(1).mean(1), torch.zeros(3), atol=1e-4)
    spiky = raw.clone()
    spiky[0, 0, 0, 0] = 1e6  # one outlier is clipped at the 99.5th percentile
    assert normalise_images(spiky)[0].abs().max() < 5
    x = raw.clone().requires_grad_(True)
    (normalise_images(x) * torch.randn(x.shape, generator=g)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # The clip limits are torch.quantile's 0.5 / 99.5 % (linear interpolation), bit for bit.
    big = torch.rand(4, 2, 40, 40, generator=g) * 255
    flat = big.flatten(2).flatten(0, 1)
    limits = torch.quantile(flat, torch.tensor([0.005, 0.995]), dim=1)
    clipped = torch.clamp(flat, min=limits[0][:, None], max=limits[1][:, None])
    expected = (clipped - clipped.mean(1, keepdim=True)) / (clipped.std(1, keepdim=True) + 1e-6)
    assert torch.equal(normalise_images(big), expected.view_as(big))


@pytest.mark.parametrize("q", [0.0, 0.005, 0.25, 0.5, 0.75, 0.995, 1.0])
def test_row_quantile_is_torch_quantile_bit_for_bit(q):
    """The partial selection of the shorter tail gives torch.quantile's values exactly, ties and tiny rows
    included."""
    g = torch.Generator().manual_seed(3)
    for shape in ((8, 4096), (3, 257), (2, 5), (2, 1)):
        flat = torch.rand(*shape, generator=g) * 255
        flat[0, : min(3, shape[1])] = flat[0, 0]  # ties
        assert torch.equal(_row_quantile(flat, q), torch.quantile(flat, q, dim=1))


def test_network_shapes_for_presets():
    for config in (TEST_CONFIG, segmenter_preset("tiny")):
        net = build_segmenter(config)
        c = config.crop_size
        assert net(torch.zeros(2, 1, c, c)).shape == (2, 5, c, c)
    standard = segmenter_preset("standard")
    assert standard.crop_size == 128 and standard.filters == (16, 32, 64, 128, 256)
    assert standard.ema_decay == 0.99 and segmenter_preset("tiny").ema_decay == 0.0
