"""kill -9 at a random point, then the same command again: the result equals an uninterrupted run's, and nothing is
left that a reader chokes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from tests.safety.conftest import snapshot

pytestmark = pytest.mark.slow

_RUN = "import sys; from claim.cli import main; sys.exit(main(sys.argv[1:]))"


def _kill_during(args: list, started: Callable[[], bool], rng: np.random.Generator, timeout: float = 120.0) -> bool:
    """Start ``claim ARGS`` in a child process, wait until ``started()`` holds, wait a random moment more, then
    SIGKILL it. Returns whether it was killed (False: it finished first)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _RUN, *map(str, args)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not started() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(float(rng.uniform(0.0, 0.6)))
    if child.poll() is not None:
        return False
    child.send_signal(signal.SIGKILL)
    child.wait()
    return True


def _kill_then_rerun(args: list, started: Callable[[], bool], seed: int) -> None:
    if not _kill_during(args, started, np.random.default_rng(seed)):
        pytest.fail(f"claim {args[0]} finished before it could be killed; make the test's run longer")


def _data_files(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(folder).items() if k.endswith((".png", ".nii.gz"))}


def _no_half_written_output(out: Path) -> None:
    # After a kill: the output is absent (it is only renamed into place when complete); the staging folder beside
    # it is hidden, so a reader of the parent folder never sees it as data.
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert all(name.startswith(".") for name in leftovers)


def test_kill_generate(world, tmp_path):
    args = ["generate", "--model", world.generator, "--data", world.png, "--masks", world.masks,
            "--sampler", "ddim:20", "--seed", "4"]
    reference = tmp_path / "reference"
    assert main([*map(str, args), "--out", str(reference)]) == 0
    out = tmp_path / "out"
    staging = tmp_path / ".out.claim-staging"
    _kill_then_rerun([*args, "--out", out], lambda: staging.exists(), seed=1)
    _no_half_written_output(out)
    assert main([*map(str, args), "--out", str(out)]) == 0
    assert _data_files(out) == _data_files(reference)
    assert len(read_dataset(out)) == len(read_dataset(reference))


def test_kill_masks(world, tmp_path):
    args = ["masks", "--data", world.png, "--per-patient", "40", "--seed", "2"]
    reference = tmp_path / "reference"
    assert main([*map(str, args), "--out", str(reference)]) == 0
    out = tmp_path / "out"
    staging = tmp_path / ".out.claim-staging"
    _kill_then_rerun([*args, "--out", out], lambda: (staging / "labels").exists(), seed=2)
    _no_half_written_output(out)
    assert main([*map(str, args), "--out", str(out)]) == 0
    assert _data_files(out) == _data_files(reference)
    assert json.loads((out / "masks.json").read_text()) == json.loads((reference / "masks.json").read_text())


def test_kill_train_generator_with_default_flags(world, tmp_path):
    # Default flags: no --checkpoint-every, so the default cadence (a quarter of the run) must leave a checkpoint.
    args = ["train-generator", "--data", world.emidec, "--preset", "tiny", "--steps", "40", "--seed", "3"]
    reference = tmp_path / "reference"
    assert main([*map(str, args), "--out", str(reference)]) == 0
    out = tmp_path / "out"
    log = out / "train_log.jsonl"
    _kill_then_rerun([*args, "--out", out], lambda: log.exists() and len(log.read_text().splitlines()) >= 11, seed=3)
    assert (out / "generator.pt").exists()  # killed after step 10: the step-10 checkpoint is there to resume
    assert main([*map(str, args), "--out", str(out), "--resume"]) == 0
    a = torch.load(reference / "generator.pt", weights_only=False)
    b = torch.load(out / "generator.pt", weights_only=False)
    for key in ("model", "ema"):
        for name, value in a[key].items():
            assert torch.equal(b[key][name], value), f"{key}.{name}"
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 41))


def test_kill_experiment(tmp_path):
    from claim.experiment.split import split_dataset
    from claim.phantom import write_phantom_cohort
    from tests.conftest import SMALL

    write_phantom_cohort(tmp_path / "phantom", 6, seed=2, config=SMALL, progress=False)
    split_dataset(tmp_path / "phantom", tmp_path / "split", test_pathological=1, test_normal=1, seed=0)
    args = ["experiment", "--train-data", tmp_path / "split/train", "--test-data", tmp_path / "split/test",
            "--preset", "smoke", "--threads", "1"]
    reference = tmp_path / "reference"
    assert main([*map(str, args), "--out", str(reference)]) == 0
    out = tmp_path / "out"
    state = out / "state.json"

    def started() -> bool:
        return state.exists() and len(json.loads(state.read_text() or "{}").get("stages", {})) >= 3

    _kill_then_rerun([*args, "--out", out], started, seed=4)
    assert not (out / "metrics.json").exists()
    assert main([*map(str, args), "--out", str(out)]) == 0
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert json.dumps(got["arms"]) == json.dumps(want["arms"])
