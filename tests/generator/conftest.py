"""Tiny generator fixtures: a phantom cohort on disk, a tiny config, a trained tiny checkpoint, a masks folder, and
an awake tiny denoiser with one batch for the sampler tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.write import patient_files, write_label_maps
from claim.generator.config import GeneratorConfig
from claim.generator.denoiser import build_denoiser
from claim.generator.loss import dilate_mask
from claim.generator.schedule import NoiseSchedule
from claim.generator.train import train_generator
from claim.labels import Label
from claim.phantom import write_phantom_cohort
from tests.conftest import SMALL

TINY = GeneratorConfig(
    crop_size=32,
    target_spacing_mm=2.5,  # phantom spacing is 2 mm: exercises resampling on crop and paste-back
    channels=(8, 16),
    attention_levels=(False, False),
    num_res_blocks=1,
    norm_num_groups=8,
    num_head_channels=8,
    timesteps=20,
    batch_size=2,
    n_clusters=2,
    ema_warmup=2,
    sample_steps=3,
    default_sampler="ddim:5",
    prediction="eps",
)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    write_phantom_cohort(root, 4, seed=11, config=SMALL, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(phantom_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    result = train_generator(phantom_dir, run, TINY.replace(steps=3), seed=0, progress=False)
    return result.checkpoint


def make_masks_dir(phantom_dir, root, n_masks: int = 2):
    """A stand-in for `claim masks`: a normal patient's labels with a patch of myocardium set to scar (3)."""
    normal = [p for p in read_dataset(phantom_dir) if "_N" in p.patient_id][0]
    entries = []
    for i in range(n_masks):
        labels = normal.label_maps.copy()
        for k in range(normal.n_slices):
            rows, cols = np.nonzero(labels[k] == Label.MYOCARDIUM)
            if rows.size == 0:
                continue
            # A few myocardial pixels near the top of the ring become scar; mask i shifts the patch.
            pick = np.argsort(rows + 3 * i * cols / max(cols.max(), 1))[:12]
            labels[k, rows[pick], cols[pick]] = Label.INFARCT
        mask_id = f"{normal.patient_id}_mask{i:02d}"
        files = write_label_maps(normal.with_arrays(patient_id=mask_id), root, labels)
        entries.append({
            "id": mask_id,
            "source_id": normal.patient_id,
            "files": [str(f.relative_to(root)) for f in files],
            "source_files": [str(p) for p in normal.label_paths],
        })
        assert files == patient_files(normal.with_arrays(patient_id=mask_id), root, "label")
    write_json(root / "masks.json", entries)
    return root, normal


def _awake(model):
    # MONAI zero-initialises the output conv, so an untrained net predicts eps = 0 whatever its inputs; wake it up.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.fixture(scope="module")
def setup():
    """A tiny awake claim denoiser, its schedule and one batch: known crops, inpainting region, myocardium, hist."""
    torch.manual_seed(0)
    model = _awake(build_denoiser(TINY).eval())
    schedule = NoiseSchedule(TINY.timesteps)
    g = torch.Generator().manual_seed(3)
    known = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    lesion = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    lesion[:, :, 10:16, 12:20] = True
    inpaint_mask = dilate_mask(lesion, 2)
    myo = torch.zeros_like(lesion)
    myo[:, :, 8:20, 8:24] = True
    hist = torch.full((2, 16), 1 / 16)
    return model, schedule, known, inpaint_mask, myo, hist


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.fn(x, t)
