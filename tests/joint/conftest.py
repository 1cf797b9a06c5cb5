"""Tiny joint-training fixtures: a phantom cohort on disk (2 normal, 2 pathological) and tiny G/S/joint configs."""

from __future__ import annotations

import pytest
import torch

from claim.generator.config import GeneratorConfig
from claim.joint.config import JointConfig
from claim.phantom import write_phantom_cohort
from claim.segmentation.config import segmenter_preset
from tests.conftest import SMALL

TINY_G = GeneratorConfig(
    crop_size=32,
    target_spacing_mm=2.5,  # phantom spacing is 2 mm: the consistency term resizes back to source pixels
    channels=(8, 16),
    attention_levels=(False, False),
    num_res_blocks=1,
    norm_num_groups=8,
    num_head_channels=8,
    timesteps=20,
    batch_size=2,
    n_clusters=2,
    ema_warmup=2,
    sample_steps=2,
    default_sampler="ddim:3",
    prediction="eps",
)
# Constant learning rate: the resume test extends a run (raises ``steps``), which reshapes a poly schedule; the
# segmenter's own tests cover a killed poly run resuming exactly.
TINY_S = segmenter_preset("tiny", filters=(8, 16, 32), batch_size=2, val_every=1000, lr_schedule="constant")
TINY_J = JointConfig(steps=6, generator_warmup=2, segmenter_warmup=1, refresh_every=2, buffer_size=8,
                     synthetic_per_batch=2, consistency_batch=2, sampler_steps=2, t_max=10, checkpoint_every=0)


@pytest.fixture(scope="session")
def joint_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint_phantom")
    write_phantom_cohort(root, 4, seed=11, config=SMALL, progress=False)
    return root


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: on 2 shared cores oversubscription made these tiny steps ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
