"""The consistency term: its gradient reaches G and never S; S does learn from synthetic batches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.data.layouts import read_dataset
from claim.generator.checkpoint import LoadedGenerator
from claim.generator.data import build_training_set
from claim.generator.denoiser import build_denoiser
from claim.generator.histogram import kmeans_centres
from claim.generator.schedule import NoiseSchedule
from claim.joint.canvas import build_canvases, sample_canvas_crops
from claim.joint.consistency import consistency_loss, to_segmenter_frame
from claim.joint.synthetic import ReplayBuffer, paint_synthetic_slices
from claim.labels import Label
from claim.segmentation.data import training_slices
from claim.segmentation.net import build_segmenter
from claim.segmentation.train import SegmenterTrainer
from tests.joint.conftest import TINY_G, TINY_S


def _parts(joint_dir):
    patients = read_dataset(joint_dir)
    canvases = build_canvases(patients)
    crops = build_training_set([p for p in patients if p.has_infarct], TINY_G)
    centres = kmeans_centres(crops.hists.numpy(), TINY_G.n_clusters, seed=0)
    torch.manual_seed(0)
    return patients, canvases, centres, build_denoiser(TINY_G), build_segmenter(TINY_S)


def test_canvases_are_the_normal_patients_and_crops_carry_scar(joint_dir):
    patients, canvases, centres, _, _ = _parts(joint_dir)
    assert sorted(c.patient.patient_id for c in canvases) == ["Phantom_N001", "Phantom_N003"]
    batch = sample_canvas_crops(canvases, 3, TINY_G, centres, np.random.default_rng(0))
    assert batch.known.shape == (3, 1, 32, 32) and batch.label_maps.shape == (3, 1, 32, 32)
    assert all((batch.label_maps[i] == Label.INFARCT).any() for i in range(3))
    assert batch.extents == (40, 40, 40)  # 32 px at 2.5 mm = 40 source px at 2 mm


def test_frame_resizes_to_source_pixels_and_pads_to_the_stride():
    images = torch.rand(2, 1, 32, 32, requires_grad=True)
    labels = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    out, lab = to_segmenter_frame(images * 2 - 1, labels, 16, extents=(40, 32))
    assert out.shape == (2, 1, 48, 48) and lab.shape == (2, 48, 48)
    assert float(out[1, 0, 0, 0].detach()) == -1.0  # padding is the darkest value
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_consistency_gradient_reaches_generator_not_segmenter(joint_dir, prediction):
    _, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    config = replace(TINY_G, prediction=prediction)
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    batch = sample_canvas_crops(canvases, 2, config, centres, np.random.default_rng(1))
    loss = consistency_loss(denoiser, NoiseSchedule(config.timesteps), config, segmenter, batch.known,
                            batch.label_maps, batch.hists, torch.Generator().manual_seed(0),
                            t_max=10, multiple=4, extents=batch.extents)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad**2).sum() for p in denoiser.parameters() if p.grad is not None))
    assert float(grad_norm) > 0
    assert all(p.grad is None or not p.grad.any() for p in segmenter.parameters())
    assert all(p.requires_grad for p in segmenter.parameters())  # frozen only for the term
    for key, value in segmenter.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_synthetic_slices_match_the_segmenter_frame_and_change_its_weights(joint_dir):
    patients, canvases, centres, denoiser, _ = _parts(joint_dir)
    sampler = LoadedGenerator(denoiser.eval(), TINY_G, NoiseSchedule(TINY_G.timesteps), centres, 0, joint_dir)
    images, labels = paint_synthetic_slices(sampler, canvases, 1, TINY_S.crop_size, np.random.default_rng(2),
                                            sampler_steps=2)
    assert images.shape[1:] == (1, 64, 64) and labels.shape == (images.shape[0], 64, 64)
    assert (labels == Label.INFARCT).flatten(1).any(1).all()
    buffer = ReplayBuffer(3)
    buffer.add(images, labels)
    buffer.add(images, labels)
    assert len(buffer) == min(3, 2 * len(images))
    extra_images, extra_labels = buffer.sample(2, torch.Generator().manual_seed(0))

    real = training_slices(patients, TINY_S)
    plain = SegmenterTrainer(TINY_S, real, [], seed=0)
    mixed = SegmenterTrainer(TINY_S, real, [], seed=0)
    plain.step(0)
    mixed.step(0, extra_images, extra_labels)
    changed = [not torch.equal(a, b) for a, b in zip(plain.model.parameters(), mixed.model.parameters(), strict=True)]
    assert any(changed)
