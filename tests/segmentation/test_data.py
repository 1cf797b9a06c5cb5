"""LV-centred ROIs, paste-back, overviews and seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claim.data.layouts import read_dataset
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import augment_batch, build_augmentation, crop_rois, paste_rois, roi_box, training_slices
from tests.segmentation.conftest import TEST_CONFIG


@pytest.mark.parametrize(("shape", "centre"), [((7, 9), (3, 4)), ((40, 33), (10.0, 25.4)), ((32, 32), (15.5, 15.5)),
                                             ((20, 50), (2, 48))])
def test_roi_crop_then_paste_keeps_the_window(shape, centre):
    rng = np.random.default_rng(0)
    image = rng.random((2, *shape)).astype(np.float32) + 1
    box = roi_box(shape, centre, 32)
    crop = crop_rois(image, box)
    assert crop.shape == (2, 32, 32)
    inside = np.zeros(shape, bool)
    inside[max(box.row0, 0):box.row0 + 32, max(box.col0, 0):box.col0 + 32] = True
    assert crop[0].min() == image[0].min()  # padding (where the window leaves the slice) is the slice minimum
    labels = (image * 3).astype(np.uint8)
    pasted = paste_rois(crop_rois(labels, box, is_label=True), box, 0)
    np.testing.assert_array_equal(pasted[:, inside], labels[:, inside])
    assert (pasted[:, ~inside] == 0).all()


def test_training_rois_follow_the_labelled_heart(seg_data_dir):
    patient = read_dataset(seg_data_dir)[0]
    shifted = patient.with_arrays(images=np.roll(patient.images, (9, -7), axis=(1, 2)),
                                  label_maps=np.roll(patient.label_maps, (9, -7), axis=(1, 2)))
    a, b = training_slices([patient], TEST_CONFIG), training_slices([shifted], TEST_CONFIG)
    np.testing.assert_array_equal(a.labels, b.labels)  # the ROI moved with the heart
    np.testing.assert_array_equal(a.images, b.images)
    assert a.overviews.shape == (patient.n_slices, 1, TEST_CONFIG.localiser_size, TEST_CONFIG.localiser_size)
    assert set(np.unique(a.overview_labels)) <= {0, 1, 2} and (a.overview_labels == 2).any()


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


def test_augmentation_without_metadata_gives_the_tracked_arrays_and_restores_the_setting():
    from monai.data import get_track_meta

    aug = build_augmentation(TEST_CONFIG.replace(aug_prob=0.9))  # nearly every transform drawn
    g = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 32, 32, generator=g)
    labels = torch.randint(0, 5, (4, 32, 32), generator=g)
    fast_images, fast_labels = augment_batch(aug, images, labels, seed=7)
    assert get_track_meta()  # MONAI's process-wide default, back as it was
    aug.set_random_state(seed=7)  # the reference: the same draws with MetaTensor tracking on
    for i in range(len(images)):
        sample = aug({"image": images[i].numpy().copy(), "label": labels[i][None].numpy().astype(np.float32)})
        np.testing.assert_array_equal(fast_images[i].numpy(), np.asarray(sample["image"], dtype=np.float32))
        np.testing.assert_array_equal(fast_labels[i].numpy(), np.asarray(sample["label"])[0].round())
    assert not torch.equal(fast_images, images)  # something was drawn


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="multiple of 8"):
        SegmenterConfig(crop_size=60, filters=(8, 16, 32, 64))
    with pytest.raises(ValueError, match="unknown segmenter preset"):
        segmenter_preset("huge")
    config = segmenter_preset("tiny", steps=5)
    assert SegmenterConfig.from_dict(config.to_dict()) == config and config.steps == 5
