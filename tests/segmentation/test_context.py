"""2.5D input: each slice seen between its neighbours, in training, in prediction and in the network."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.joint.config import JointConfig
from claim.joint.train import train_joint
from claim.labels import Label
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import training_slices, with_context
from claim.segmentation.net import N_CLASSES, build_segmenter, normalise_images
from claim.segmentation.predict import predict_patient
from claim.segmentation.train import SegmenterTrainer
from claim.segmentation.trainer import _reverse_context
from tests.segmentation.conftest import TEST_CONFIG


def test_each_slice_sits_between_its_neighbours_and_the_ends_repeat():
    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 3), np.float32)
    out = with_context(stack, 2)
    assert out.shape == (4, 5, 2, 3)
    assert out[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]
    np.testing.assert_array_equal(with_context(stack, 0), stack[:, None])
    assert with_context(stack[:0], 1).shape == (0, 3, 2, 3)
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(ValueError, match="context_slices"):
            SegmenterConfig(context_slices=bad)
    assert SegmenterConfig(context_slices=2.0).context_slices == 2
    assert SegmenterConfig(context_slices=2).input_channels == 5
    saved = SegmenterConfig().to_dict()
    del saved["context_slices"]  # a config (or checkpoint) written before the field existed
    assert SegmenterConfig.from_dict(saved).context_slices == 0


def test_normalisation_is_per_channel():
    raw = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255
    raw[:, 2] = raw[:, 2] * 9 + 40  # a neighbour at another brightness is normalised on its own
    out = normalise_images(raw)
    for k in range(3):
        torch.testing.assert_close(out[:, k:k + 1], normalise_images(raw[:, k:k + 1]))
    assert torch.allclose(out.flatten(2).mean(2), torch.zeros(2, 3), atol=1e-4)


class _PreviousSliceReader(torch.nn.Module):
    """Calls a pixel infarct where the first input channel (the slice before) is bright, else myocardium."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[2:])
        logits[:, Label.MYOCARDIUM] = 0.5
        logits[:, Label.INFARCT] = x[:, 0]
        return logits + 0 * self.anchor


def test_prediction_feeds_each_slice_its_neighbours():
    config = replace(TEST_CONFIG, crop_size=16, localiser_size=0, postprocess=False, context_slices=1)
    images = np.zeros((3, 16, 16), np.float32)
    images[0, :, :8] = 1.0  # only slice 0 is bright, on its left half
    maps = predict_patient(_PreviousSliceReader(), config, images).label_maps
    # Slice 1's "previous" channel is slice 0, and slice 0 is its own previous (the end repeats).
    for s in (0, 1):
        assert (maps[s][:, :8] == Label.INFARCT).all() and (maps[s][:, 8:] == Label.MYOCARDIUM).all()
    assert (maps[2] == Label.MYOCARDIUM).all()


def test_a_context_segmenter_trains_on_neighbour_channels(seg_data_dir):
    config = replace(TEST_CONFIG, context_slices=1)
    patients = read_dataset(seg_data_dir)
    flat, stacked = training_slices(patients, TEST_CONFIG), training_slices(patients, config)
    assert stacked.images.shape == (len(flat), 3, *flat.images.shape[2:])
    np.testing.assert_array_equal(stacked.images[:, 1:2], flat.images)  # the slice itself in the middle
    np.testing.assert_array_equal(stacked.images[1, 0], flat.images[0, 0])  # slice 1's previous is slice 0
    np.testing.assert_array_equal(stacked.images[0, 0], flat.images[0, 0])  # slice 0 is its own previous
    assert build_segmenter(config).segmenter.input_block.conv1.conv.in_channels == 3
    with pytest.raises(ValueError, match="3-channel"):
        SegmenterTrainer(config, flat, patients[:2], seed=0)
    trainer = SegmenterTrainer(config, stacked, patients[:2], seed=0)
    before = [p.detach().clone() for p in trainer.network.segmenter.input_block.parameters()]
    losses = [trainer.step(s) for s in range(3)]
    assert all(np.isfinite(losses))
    after = list(trainer.network.segmenter.input_block.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert 0.0 <= trainer.validate()["myocardium_dice"] <= 1.0


def test_cli_records_context_and_joint_training_refuses_it(seg_data_dir, tmp_path):
    code = main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--steps", "1", "--val-every", "1", "--context-slices", "1"])
    assert code == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["context_slices"] == 1
    with pytest.raises(ClaimError, match="context_slices"):
        train_joint(seg_data_dir, tmp_path / "joint", joint=JointConfig(),
                    segmenter=replace(TEST_CONFIG, context_slices=1), progress=False)
    assert not (tmp_path / "joint").exists()
    with pytest.raises(SystemExit):  # argparse: one line naming the flag
        main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "bad"), "--context-slices", "9"])
    assert not (tmp_path / "bad").exists()


def test_training_reverses_the_neighbours_order_as_often_as_it_flips():
    images = torch.arange(3.0)[None, :, None, None].expand(400, 3, 2, 2).clone()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(_reverse_context(images, 0.0, g), images)
    assert torch.equal(_reverse_context(images, 1.0, g), images.flip(1))
    mixed = _reverse_context(images, 0.5, g)
    reversed_share = float((mixed[:, 0, 0, 0] == 2).float().mean())
    assert 0.4 < reversed_share < 0.6 and torch.equal(mixed[:, 1], images[:, 1])  # the slice itself stays
