"""A finished smoke-preset study on a small phantom, shared by the experiment and report tests."""

from __future__ import annotations

import json

import pytest

from claim.experiment.config import experiment_preset
from claim.experiment.split import split_dataset
from claim.experiment.study import run_experiment
from claim.phantom import write_phantom_cohort
from tests.conftest import SMALL


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    # A fixed folder under the session's base temp, so tests/experiment and tests/report share one run.
    root = tmp_path_factory.getbasetemp() / "smoke_study"
    out = root / "study"
    if (out / "metrics.json").exists():
        return root, out, json.loads((out / "metrics.json").read_text())
    write_phantom_cohort(root / "phantom", 6, seed=2, config=SMALL, progress=False)
    split_dataset(root / "phantom", root / "split", test_pathological=1, test_normal=1, seed=0)
    metrics = run_experiment(root / "split/train", root / "split/test", out, experiment_preset("smoke"), seed=0,
                             threads=1, progress=False)
    return root, out, metrics
