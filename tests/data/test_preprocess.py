"""LV-centred crops and intensity normalisation invert exactly where they should."""

from __future__ import annotations

import numpy as np
import pytest

from claim.data.preprocess import crop_slice, fit_intensity_norm, lv_crop_box, paste_slice
from claim.labels import myocardium_mask


def test_crop_is_centred_on_the_lv_and_pastes_back(pathological_case):
    patient = pathological_case.patient
    s = patient.n_slices // 2
    box = lv_crop_box(patient.label_maps[s], 64)
    labels = crop_slice(patient.label_maps[s], box, is_label=True)
    assert labels.shape == (64, 64)
    rows, cols = np.nonzero(myocardium_mask(labels))
    assert abs(rows.mean() - 32) < 3 and abs(cols.mean() - 32) < 3
    assert myocardium_mask(labels).sum() == myocardium_mask(patient.label_maps[s]).sum()
    image = patient.images[s]
    patch = crop_slice(image, box)
    np.testing.assert_array_equal(paste_slice(patch, box, image), image)


def test_partial_paste_leaves_the_rest_identical(pathological_case):
    image = pathological_case.patient.images[2]
    box = lv_crop_box(pathological_case.patient.label_maps[2], 48)
    patch = crop_slice(image, box) + 100.0
    region = np.zeros((48, 48), dtype=bool)
    region[20:25, 20:25] = True
    pasted = paste_slice(patch, box, image, region_mask=region)
    changed = pasted != image
    assert changed.sum() == 25
    np.testing.assert_allclose(pasted[changed], image[changed] + 100.0)


def test_crop_pads_at_the_border():
    label_map = np.zeros((40, 40), dtype=np.uint8)
    label_map[0:6, 0:6] = 2
    box = lv_crop_box(label_map, 32)
    assert box.row0 < 0 and box.col0 < 0
    patch = crop_slice(np.ones((40, 40), dtype=np.float32), box, fill=-1.0)
    assert (patch == -1.0).any() and (patch == 1.0).any()


def test_resampling_to_common_spacing():
    label_map = np.zeros((200, 200), dtype=np.uint8)
    label_map[80:120, 80:120] = 2
    box = lv_crop_box(label_map, 50, spacing_mm=(1.0, 1.0), target_spacing_mm=2.0)
    assert box.extent == 100 and box.resampled
    patch = crop_slice(label_map, box, is_label=True)
    assert patch.shape == (50, 50)
    assert myocardium_mask(patch).sum() == pytest.approx(400, rel=0.1)  # 40x40 source pixels at half resolution


def test_intensity_norm_round_trip(pathological_case):
    images = pathological_case.patient.images
    norm = fit_intensity_norm(images)
    scaled = norm.normalise(images)
    assert scaled.min() >= -1.0 and scaled.max() <= 1.0
    inside = (images >= norm.low) & (images <= norm.high)
    np.testing.assert_allclose(norm.denormalise(scaled)[inside], images[inside], rtol=1e-4, atol=1e-2)
