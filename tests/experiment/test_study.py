from __future__ import annotations

import json
import math

import pytest

from claim.errors import ClaimError
from claim.experiment.config import ARMS, experiment_preset
from claim.experiment.study import run_experiment
from claim.smile.prior import default_prior

pytestmark = pytest.mark.slow


def test_metrics_json_schema(smoke_study):
    _, out, metrics = smoke_study
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["preset"] == "smoke" and on_disk["seed"] == 0
    assert set(on_disk["arms"]) == set(ARMS)
    test_pathological = on_disk["test_pathological"]
    assert len(test_pathological) == 1
    for entry in on_disk["arms"].values():
        for key in ("infarct_dice", "myocardium_dice", "mvo_dice"):
            assert 0.0 <= entry[key] <= 1.0
        assert entry["infarct_volume_ratio_error"] >= 0.0
        assert set(entry["per_patient"]) == set(test_pathological)  # pathological test patients only
        for record in entry["per_patient"].values():
            assert set(record) == {"infarct_dice", "myocardium_dice", "mvo_dice", "infarct_volume_ratio_error"}
    for arm in ("lefusion", "smile", "claim"):
        ci = on_disk["arms"][arm]["ci95_minus_real_only"]["infarct_dice"]
        assert ci["n"] == 1 and math.isfinite(ci["mean"])
    assert set(on_disk["fidelity"]) == {"lefusion", "smile", "claim"}
    assert all(0.0 <= v <= 1.0 for v in on_disk["fidelity"].values())
    timing = on_disk["timing"]
    assert timing["peak_rss_mb"] > 0 and timing["total_s"] > 0
    assert {"generator_lefusion", "joint", "segmenter_claim", "evaluate"} <= set(timing["stages_s"])
    assert on_disk["budget"]["generator_steps"]["claim"] > on_disk["budget"]["generator_steps"]["smile"]
    assert on_disk["smile_prior"]["source"] and on_disk["smile_prior"]["n_patients"] >= 1


def test_test_patients_never_reach_training(smoke_study):
    root, out, _ = smoke_study
    roles = json.loads((out / "prepare.json").read_text())
    test_ids = set(roles["test"])
    assert test_ids and not test_ids & (set(roles["fit"]) | set(roles["val"]))
    trained_on = {p.name for p in (out / "data" / "fit").iterdir()}
    assert not trained_on & test_ids
    masks = json.loads((out / "masks" / "transplant" / "masks.json").read_text())
    assert all(m["donor_id"] in roles["donors"] and m["source_id"] in roles["canvases"] for m in masks)
    assert all(m["donor_id"] != m["source_id"] for m in masks)
    # The SMILE prior never sees test scars: fitted on the training donors, or the shipped prior when too few.
    prior = json.loads((out / "masks" / "smile" / "smile_prior.json").read_text())
    if len(roles["donors"]) >= 3:
        assert "study training donors" in prior["source"] and prior["n_patients"] == len(roles["donors"])
    else:
        assert prior["source"] == default_prior().source


def test_rerun_skips_finished_stages_and_refuses_another_config(smoke_study):
    root, out, metrics = smoke_study
    state_before = json.loads((out / "state.json").read_text())
    again = run_experiment(root / "split/train", root / "split/test", out, experiment_preset("smoke"), seed=0,
                           threads=1, progress=False)
    assert json.loads((out / "state.json").read_text()) == state_before
    assert json.dumps(again["arms"]) == json.dumps(metrics["arms"])
    with pytest.raises(ClaimError, match="another configuration"):
        run_experiment(root / "split/train", root / "split/test", out, experiment_preset("smoke"), seed=1,
                       progress=False)
    with pytest.raises(ClaimError, match="both"):
        run_experiment(root / "split/train", root / "split/train", root / "other", experiment_preset("smoke"),
                       progress=False)


def test_config_file_reproduces_the_study(smoke_study, tmp_path):
    from claim.cli import main

    root, out, metrics = smoke_study
    saved = json.loads((out / "config.json").read_text())
    assert saved["command"] == "experiment" and saved["config"]["name"] == "smoke"
    again = tmp_path / "again"
    assert main(["experiment", "-c", str(out / "config.json"), "--out", str(again), "--threads", "1"]) == 0
    repeated = json.loads((again / "metrics.json").read_text())
    assert json.dumps(repeated["arms"]) == json.dumps(metrics["arms"])
