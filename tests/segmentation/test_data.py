"""Centred crop / paste-back and seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import augment_batch, build_augmentation, centre_crop, paste_centre
from tests.segmentation.conftest import TEST_CONFIG


@pytest.mark.parametrize("shape", [(7, 9), (40, 33), (32, 32), (20, 50)])
def test_crop_then_paste_keeps_the_centre(shape):
    rng = np.random.default_rng(0)
    image = rng.random((2, *shape)).astype(np.float32) + 1
    crop = centre_crop(image, 32, None)
    assert crop.shape == (2, 32, 32)
    if min(shape) < 32:  # padded with each slice's minimum
        assert crop[0, 0, 0] == image[0].min() or crop[0].min() == image[0].min()
    pasted = paste_centre(crop, shape, 0)
    r0, c0 = max(0, (shape[0] - 32) // 2), max(0, (shape[1] - 32) // 2)
    inside = np.zeros(shape, bool)
    inside[r0:r0 + 32, c0:c0 + 32] = True
    np.testing.assert_array_equal(pasted[:, inside], image[:, inside])
    assert (pasted[:, ~inside] == 0).all()


def test_augmentation_is_seeded_and_keeps_label_ids():
    aug = build_augmentation(TEST_CONFIG)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 1, 32, 32, generator=g)
    labels = torch.randint(0, 5, (3, 32, 32), generator=g)
    a = augment_batch(aug, images, labels, seed=4)
    b = augment_batch(aug, images, labels, seed=4)
    c = augment_batch(aug, images, labels, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert a[0].shape == images.shape and a[1].dtype == torch.long
    assert set(a[1].unique().tolist()) <= set(range(5))


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="multiple of 8"):
        SegmenterConfig(crop_size=60, filters=(8, 16, 32, 64))
    with pytest.raises(ValueError, match="unknown segmenter preset"):
        segmenter_preset("huge")
    config = segmenter_preset("tiny", steps=5)
    assert SegmenterConfig.from_dict(config.to_dict()) == config and config.steps == 5
