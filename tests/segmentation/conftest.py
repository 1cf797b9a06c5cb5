"""Segmenter fixtures: a phantom cohort on disk and a config small enough for 2 busy CPU cores."""

from __future__ import annotations

import pytest
import torch

from claim.phantom import write_phantom_cohort
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.train import SegmenterTrainer, train_segmenter
from tests.conftest import SMALL

# Smaller than the "tiny" preset (crop 64, 4 levels): tests only need the loop, not accuracy.
TEST_CONFIG = SegmenterConfig(crop_size=32, filters=(4, 8, 16), batch_size=2, steps=3, val_every=2, lr=1e-2,
                              localiser_size=32, localiser_filters=(4, 8, 16))


@pytest.fixture(scope="session")
def seg_data_dir(tmp_path_factory):
    """Four phantom patients (2 normal, 2 pathological) in the EMIDEC layout."""
    root = tmp_path_factory.mktemp("seg_phantom")
    write_phantom_cohort(root, 4, seed=5, config=SMALL, progress=False)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets on shared, busy cores: one intra-op thread is ~100x faster than two fighting for them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_killed_at_step(data_dir, out, config: SegmenterConfig, monkeypatch, *, step: int, seed: int) -> None:
    """Train into ``out`` until step ``step`` raises ``KeyboardInterrupt`` (as a killed run stops), then restore
    the trainer: what is left in ``out`` is what a resume starts from."""
    real_step = SegmenterTrainer.step

    def dies(self, s, *args, **kwargs):
        if s == step:
            raise KeyboardInterrupt
        return real_step(self, s, *args, **kwargs)

    monkeypatch.setattr(SegmenterTrainer, "step", dies)
    with pytest.raises(KeyboardInterrupt):
        train_segmenter([data_dir], out, config, seed=seed, progress=False)
    monkeypatch.setattr(SegmenterTrainer, "step", real_step)
