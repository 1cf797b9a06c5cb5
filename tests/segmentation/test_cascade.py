"""The cascade and the recipe: localisation, paste-back, post-processing, deep supervision, oversampling, LR."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.data.layouts import read_dataset
from claim.errors import InputError
from claim.labels import Label
from claim.segmentation.checkpoint import load_segmenter, save_checkpoint
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import training_slices
from claim.segmentation.loss import dice_ce_loss, supervised_loss
from claim.segmentation.net import N_CLASSES, build_segmenter
from claim.segmentation.postprocess import anatomical_postprocess
from claim.segmentation.predict import locate_heart, predict_patient
from claim.segmentation.train import SegmenterTrainer
from claim.training.checkpoint import read_checkpoint
from tests.segmentation.conftest import TEST_CONFIG


def _ring(shape, centre, r_in, r_out):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(rr - centre[0], cc - centre[1])
    return (d >= r_in) & (d < r_out), d < r_in


def test_postprocess_keeps_one_myocardium_mvo_inside_infarct_and_cavity_inside_myocardium():
    ring, cavity = _ring((64, 64), (32, 32), 8, 14)
    maps = np.zeros((64, 64), np.uint8)
    maps[cavity] = Label.CAVITY
    maps[ring] = Label.MYOCARDIUM
    maps[ring & (np.mgrid[:64, :64][1] > 38)] = Label.INFARCT
    maps[30:34, 41:43] = Label.MVO  # inside the infarct: kept
    maps[2:5, 2:5] = Label.INFARCT  # an infarct island off the ring: removed
    maps[2:4, 58:61] = Label.MYOCARDIUM  # stray myocardium: removed
    # MVO on the ring, far from any infarct: becomes infarct.
    maps[ring & (np.mgrid[:64, :64][0] > 44) & (np.abs(np.mgrid[:64, :64][1] - 32) < 2)] = Label.MVO
    maps[60:63, 2:5] = Label.CAVITY  # cavity touching no myocardium: removed
    before = maps.copy()
    out, counts = anatomical_postprocess(maps[None])
    np.testing.assert_array_equal(maps, before)  # the input is not modified
    out = out[0]
    assert (out[2:5, 2:5] == 0).all() and (out[2:4, 58:61] == 0).all() and (out[60:63, 2:5] == 0).all()
    assert (out[30:34, 41:43] == Label.MVO).all()
    lonely = (before == Label.MVO) & (np.mgrid[:64, :64][0] > 44)
    assert (out[lonely] == Label.INFARCT).all()
    assert counts.myocardium_removed == 9 + 6 and counts.cavity_removed == 9
    assert counts.mvo_relabelled == int(lonely.sum()) > 0
    # Infarct-with-MVO (the EMIDEC infarct metric) only loses the island; the ring is untouched.
    untouched = ring | cavity
    np.testing.assert_array_equal(np.isin(out, (3, 4))[untouched], np.isin(before, (3, 4))[untouched])
    clean, counts = anatomical_postprocess(out)  # idempotent
    np.testing.assert_array_equal(clean, out)
    assert counts.to_dict() == {"myocardium_removed": 0, "mvo_relabelled": 0, "cavity_removed": 0}


def test_postprocess_keeps_both_halves_of_a_broken_ring():
    ring, cavity = _ring((64, 64), (32, 32), 8, 14)
    maps = np.zeros((64, 64), np.uint8)
    maps[cavity] = Label.CAVITY
    maps[ring] = Label.MYOCARDIUM
    maps[ring & (np.mgrid[:64, :64][1] > 40)] = Label.INFARCT
    maps[:, 38:40][ring[:, 38:40]] = Label.BACKGROUND  # a gap cuts the ring at the top and the bottom
    maps[2:5, 2:5] = Label.MYOCARDIUM  # a stray blob still goes
    out, counts = anatomical_postprocess(maps)
    assert (out == Label.INFARCT).sum() == (maps == Label.INFARCT).sum() > 0
    assert counts.myocardium_removed == 9 and (out[2:5, 2:5] == 0).all()


class _ThresholdLocaliser(torch.nn.Module):
    """Stands in for a trained localiser: pixels brighter than 1 SD are 'myocardium'."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        heart = (x > 1.0).float()
        return torch.cat([1 - heart, torch.zeros_like(heart), heart], dim=1) * 10 + 0 * self.anchor


class _Cascade(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.localiser = _ThresholdLocaliser()

    def forward(self, x):  # the ROI segmenter: everything is myocardium
        logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[2:])
        logits[:, Label.MYOCARDIUM] = 1
        return logits


def test_locate_heart_maps_the_overview_centre_back_and_ignores_stray_blobs():
    config = replace(TEST_CONFIG, crop_size=16, postprocess=False)
    images = np.zeros((3, 90, 120), np.float32)
    images[:, 50:62, 20:36] = 10.0  # the "heart", centre (55.5, 27.5)
    images[1, 5:7, 100:102] = 10.0  # a stray blob on one slice
    centre, found = locate_heart(_Cascade(), config, images)
    assert found and abs(centre[0] - 55.5) < 1.5 and abs(centre[1] - 27.5) < 1.5
    pred = predict_patient(_Cascade(), config, images)
    assert pred.localised and pred.label_maps.shape == images.shape
    rows, cols = np.nonzero(pred.label_maps[0])
    assert rows.min() == round(centre[0] - 8) and cols.min() == round(centre[1] - 8)
    assert rows.max() - rows.min() == 15 and cols.max() - cols.min() == 15  # the 16-px ROI, pasted in place
    blank, found = locate_heart(_Cascade(), config, np.zeros((2, 40, 60), np.float32))
    assert not found and blank == (20.0, 30.0)


def test_deep_supervision_heads_and_weights():
    config = SegmenterConfig(crop_size=32, filters=(4, 8, 16, 32), localiser_size=0)
    assert config.deep_supervision == 2 and SegmenterConfig(filters=(4, 8, 16)).deep_supervision == 1
    assert config.replace(filters=(4, 8, 16)).deep_supervision == 1  # fewer levels re-derive the default heads
    with pytest.raises(ValueError, match="three levels"):
        SegmenterConfig(crop_size=16, filters=(4, 8))
    with pytest.raises(ValueError, match="deep_supervision"):
        SegmenterConfig(filters=(4, 8, 16), deep_supervision=2)
    net = build_segmenter(config).train()
    x = torch.randn(2, 1, 32, 32)
    stack = net(x, all_outputs=True)
    assert stack.shape == (2, 3, N_CLASSES, 32, 32) and net(x).shape == (2, N_CLASSES, 32, 32)
    labels = torch.randint(0, N_CLASSES, (2, 32, 32), generator=torch.Generator().manual_seed(0))
    expected = (4 * dice_ce_loss(stack[:, 0], labels) + 2 * dice_ce_loss(stack[:, 1], labels)
                + dice_ce_loss(stack[:, 2], labels)) / 7
    torch.testing.assert_close(supervised_loss(stack, labels), expected)
    assert net.eval()(x).shape == (2, N_CLASSES, 32, 32)


def test_foreground_oversampling_and_poly_learning_rate(seg_data_dir):
    patients = read_dataset(seg_data_dir)
    config = replace(TEST_CONFIG, batch_size=6, foreground_fraction=0.5, steps=10)
    train = training_slices(patients, config)
    trainer = SegmenterTrainer(config, train, [], seed=0)
    pool, n, scar_index = trainer._pools[0]
    scar = train.has_scar
    assert 0 < scar.mean() < 0.5
    g = torch.Generator().manual_seed(0)
    draws = np.concatenate([trainer._draw(pool, n, scar_index, g) for _ in range(200)])
    assert scar[draws].mean() >= 0.5 + 0.5 * scar.mean() - 0.05  # half forced + half uniform
    assert [round(trainer.learning_rate(s) / config.lr, 4) for s in (0, 5, 10)] == [1.0, round(0.5**0.9, 4), 0.0]
    assert replace(config, lr_schedule="constant") .lr == SegmenterTrainer(
        replace(config, lr_schedule="constant"), train, [], seed=0).learning_rate(7)
    warm = SegmenterTrainer(replace(config, lr_warmup=4), train, [], seed=0)
    assert [round(warm.learning_rate(s) / config.lr, 4) for s in (0, 3, 5)] == [0.25, round(0.7**0.9, 4),
                                                                                 round(0.5**0.9, 4)]
    trainer.step(5)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr * 0.5**0.9)
    assert trainer.last_localiser_loss is not None and trainer.last_localiser_loss > 0


def test_old_checkpoint_version_is_one_clear_error(tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint(path, TEST_CONFIG, build_segmenter(TEST_CONFIG).state_dict(), step=0, seed=0)
    payload = read_checkpoint(path, fmt="claim-segmenter", what="segmenter checkpoint")
    payload["version"] = 1
    del payload["content_sha256"]
    torch.save(payload, path)
    with pytest.raises(InputError, match="version 1; claim .* reads version 2"):
        load_segmenter(path)


class _LeftHanded(torch.nn.Module):
    """A segmenter that calls the left half of any ROI myocardium and the right half infarct."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[2:])
        half = x.shape[-1] // 2
        logits[:, Label.MYOCARDIUM, :, :half] = 2.0
        logits[:, Label.INFARCT, :, half:] = 1.0
        return logits + 0 * self.anchor


def test_mirroring_averages_the_four_flips():
    config = replace(TEST_CONFIG, crop_size=16, localiser_size=0,
                     postprocess=False)
    images = np.random.default_rng(0).random((1, 16, 16)).astype(np.float32)
    plain = predict_patient(_LeftHanded(), config, images).label_maps[0]
    assert (plain[:, :8] == Label.MYOCARDIUM).all() and (plain[:, 8:] == Label.INFARCT).all()
    mirrored = predict_patient(_LeftHanded(), config, images, mirror=True).label_maps[0]
    # Averaged over the column flip, every pixel sees myocardium 2 vs infarct 1 half the time: myocardium wins.
    assert (mirrored == Label.MYOCARDIUM).all()
    assert (predict_patient(_LeftHanded(), replace(config, mirror=True), images).label_maps[0] == mirrored).all()


def test_ensemble_of_one_is_the_single_prediction_and_probabilities_average(pathological_case):
    from claim.segmentation.predict import predict_ensemble, predict_label_maps, predict_probabilities

    config = replace(TEST_CONFIG, crop_size=48)
    torch.manual_seed(0)
    first = build_segmenter(config).eval()
    torch.manual_seed(1)
    second = build_segmenter(config).eval()
    images = pathological_case.patient.images[:3]
    single = predict_label_maps(first, config, images)
    np.testing.assert_array_equal(predict_ensemble([(first, config)], images), single)
    probs = predict_probabilities(first, config, images)
    assert probs.shape == (3, N_CLASSES, *images.shape[1:])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # background is certain outside the ROI
    np.testing.assert_array_equal(anatomical_postprocess(probs.argmax(axis=1).astype(np.uint8))[0], single)
    # Two members: the argmax of the mean softmax, then the same post-processing.
    other = predict_probabilities(second, config, images)
    mean = (probs + other) / 2
    assert (mean.argmax(axis=1) != probs.argmax(axis=1)).any()  # the second member changes the vote
    expected = anatomical_postprocess(mean.argmax(axis=1).astype(np.uint8))[0]
    np.testing.assert_array_equal(predict_ensemble([(first, config), (second, config)], images), expected)
    with pytest.raises(ValueError, match="at least one"):
        predict_ensemble([], images)


def test_consensus_heart_drops_strays_that_the_union_would_merge_or_prefer():
    from claim.segmentation.predict import consensus_heart

    heart = np.zeros((5, 40, 40), bool)
    heart[:, 15:25, 15:25] = True  # the heart, on every slice
    heart[1, 0:14, 0:30] = True  # a large stray on one slice, touching nothing ...
    heart[2, 25:40, 20:24] = True  # ... and one on another slice that touches the heart there
    footprint = consensus_heart(heart)
    assert footprint[15:25, 15:25].all() and not footprint[0:14, 0:30].any()
    # The slice whose stray touches the heart keeps it (it is one component there): only slice strays go.
    assert footprint[25:40, 20:24].all()
    assert consensus_heart(np.zeros((3, 8, 8), bool)) is None
    # The plain union would have taken the stray's side: its largest component spans both.
    assert heart.any(axis=0).sum() > footprint.sum() + 14 * 30 - 1


class _ShiftedLocaliser(_ThresholdLocaliser):
    """A localiser that finds the bright heart ``shift`` overview pixels to the left of where it is."""

    def __init__(self, shift: int):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return torch.roll(super().forward(x), -self.shift, dims=-1)


class _BrightIsHeart(torch.nn.Module):
    """A cascade with a localiser that is off, and an ROI segmenter that calls bright pixels myocardium."""

    def __init__(self, shift: int):
        super().__init__()
        self.localiser = _ShiftedLocaliser(shift)
        self.windows: list[torch.Tensor] = []

    def forward(self, x):
        self.windows.append(x)
        logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[2:])
        logits[:, 0] = 1.0
        logits[:, Label.MYOCARDIUM] = 2.0 * (x[:, 0] > 1.0)
        return logits


def test_refine_roi_recentres_the_window_on_the_heart_the_first_window_found():
    config = replace(TEST_CONFIG, crop_size=48, localiser_size=32, postprocess=False)
    images = np.zeros((3, 96, 96), np.float32)
    images[:, 40:56, 40:56] = 10.0  # the heart, centre (47.5, 47.5)
    model = _BrightIsHeart(4)  # 4 overview pixels = 12 source pixels to the left
    first = predict_patient(model, config, images)
    assert abs(first.roi_centre[1] - 35.5) < 1.5 and abs(first.roi_centre[0] - 47.5) < 1.5
    assert len(model.windows) == 1
    refined = predict_patient(model, replace(config, refine_roi=True), images)
    assert len(model.windows) == 3  # the first window again, then the re-centred one
    assert abs(refined.roi_centre[0] - 47.5) < 0.5 and abs(refined.roi_centre[1] - 47.5) < 0.5
    assert (refined.label_maps[:, 40:56, 40:56] == Label.MYOCARDIUM).all()
    np.testing.assert_array_equal(refined.label_maps, first.label_maps)  # the heart was inside both windows
    # A first window without any heart leaves the ROI where the localiser put it.
    lost = _BrightIsHeart(14)
    empty = predict_patient(lost, replace(config, refine_roi=True), images)
    assert not (empty.label_maps == Label.MYOCARDIUM).any()
    assert len(lost.windows) == 1  # no second cut
    assert empty.roi_centre == predict_patient(_BrightIsHeart(14), config, images).roi_centre


def test_jittered_rois_cut_aligned_windows_inside_the_margin_and_draw_nothing_without_one():
    from claim.segmentation.data import jittered_rois

    rng = np.random.default_rng(0)
    images = rng.random((6, 2, 24, 24)).astype(np.float32)
    labels = rng.integers(0, 5, (6, 24, 24))
    g = torch.Generator().manual_seed(0)
    rois, roi_labels = jittered_rois(images, labels, 16, g)
    assert rois.shape == (6, 2, 16, 16) and roi_labels.shape == (6, 16, 16)
    offsets = set()
    for i in range(6):
        # Each ROI is a window of its own sample, the label cut at the same place as the image.
        hits = [(r, c) for r in range(9) for c in range(9)
                if np.array_equal(images[i, :, r:r + 16, c:c + 16], rois[i])]
        assert len(hits) == 1 and np.array_equal(labels[i][hits[0][0]:hits[0][0] + 16,
                                                           hits[0][1]:hits[0][1] + 16], roi_labels[i])
        offsets.add(hits[0])
    assert len(offsets) > 1  # not always the same place
    state = g.get_state()
    same = jittered_rois(images[:, :, 4:20, 4:20], labels[:, 4:20, 4:20], 16, g)
    assert np.array_equal(same[0], images[:, :, 4:20, 4:20]) and np.array_equal(same[1], labels[:, 4:20, 4:20])
    assert torch.equal(g.get_state(), state)  # nothing drawn: runs without jitter keep their random stream
    with pytest.raises(ValueError, match="cannot give centred"):
        jittered_rois(images[:, :, :23, :23], labels[:, :23, :23], 16, g)


def test_a_jittered_trainer_trains_on_wider_windows_and_refuses_other_sizes(seg_data_dir):
    patients = read_dataset(seg_data_dir)
    config = replace(TEST_CONFIG, roi_jitter=4)
    train = training_slices(patients, config)
    assert train.images.shape[-1] == config.crop_size + 8
    trainer = SegmenterTrainer(config, train, [], seed=0)
    images, labels, _ = trainer._real_batch(0)
    assert images.shape[-1] == labels.shape[-1] == config.crop_size
    assert np.isfinite(trainer.step(0))
    with pytest.raises(ValueError, match="training slices must be"):
        SegmenterTrainer(replace(TEST_CONFIG, roi_jitter=6), train, [], seed=0)
    with pytest.raises(ValueError, match="roi_jitter"):
        replace(TEST_CONFIG, roi_jitter=-1)
    assert config.training_window == config.crop_size + 8
    with pytest.raises(ValueError, match="the heart can leave the ROI"):
        replace(TEST_CONFIG, roi_jitter=TEST_CONFIG.crop_size // 2 + 1)
    assert replace(TEST_CONFIG, roi_jitter=TEST_CONFIG.crop_size // 2).training_window == 2 * TEST_CONFIG.crop_size
