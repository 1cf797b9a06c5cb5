"""Run by `accelerate launch` in test_distributed.py: a few DDP steps, then each rank saves its weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from claim.data.layouts import read_dataset
from claim.segmentation.data import training_slices
from claim.segmentation.train import SegmenterTrainer
from tests.segmentation.conftest import TEST_CONFIG


def run(data_dir: Path, out_dir: Path, steps: int) -> None:
    patients = read_dataset(data_dir)
    trainer = SegmenterTrainer(TEST_CONFIG, training_slices(patients[1:], TEST_CONFIG), patients[:1],
                               seed=3, device="cpu")
    for step in range(steps):
        trainer.step(step)
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    torch.save({"world": world, "model": trainer.network.state_dict()}, out_dir / f"rank{rank}.pt")
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
