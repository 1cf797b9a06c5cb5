"""`accelerate launch` with 2 CPU processes (gloo DDP): both ranks end with identical, trained weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.slow  # ~20 s on 2 busy cores: two interpreters import torch + MONAI
def test_two_process_training_keeps_ranks_in_sync(seg_data_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    # --multi_gpu selects Accelerate's torchrun launcher; Accelerator(cpu=True) in the worker then uses gloo.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "tests.segmentation.ddp_worker", str(seg_data_dir), str(tmp_path), "2"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    for key, value in ranks[0]["model"].items():
        torch.testing.assert_close(value, ranks[1]["model"][key], rtol=0, atol=0)


@pytest.mark.slow  # ~40 s on 2 busy cores: two interpreters, two members
def test_two_process_ensemble_is_written_once_by_rank_zero(seg_data_dir, tmp_path):
    import json

    from claim.segmentation.checkpoint import load_segmenter, read_checkpoint
    from claim.segmentation.net import SegmenterEnsemble

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    out = tmp_path / "pair"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "claim", "train-segmenter", "--data", str(seg_data_dir), "--out", str(out), "--preset", "tiny",
           "--steps", "2", "--val-every", "1", "--members", "2", "--seed", "1"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "config.json").read_text())
    assert record["num_processes"] == 2 and record["member_seeds"] == [1, 2]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e.get("member") for e in log] == [0, 1, None]  # one line each, not one per rank
    model, _ = load_segmenter(out / "segmenter.pt")
    assert isinstance(model, SegmenterEnsemble)
    assert read_checkpoint(out / "member1" / "segmenter.pt")["num_processes"] == 2
