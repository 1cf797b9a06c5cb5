from __future__ import annotations

import json
import math

import pytest

from claim.errors import ClaimError
from claim.experiment.config import ARMS, ExperimentConfig, experiment_preset
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
    # Realism of every synthetic arm against the held-out test scars, with the real-vs-real reference.
    realism = on_disk["realism"]
    assert set(realism["sources"]) == {"lefusion", "smile", "claim", "blobs_masks"}
    assert realism["real"]["patients"] == len(test_pathological)
    assert (out / "realism" / "gallery.png").exists() and "realism" in timing["stages_s"]


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


def test_orientation_sheet_and_record(smoke_study):
    _, out, metrics = smoke_study
    roles = json.loads((out / "prepare.json").read_text())
    orientation = metrics["orientation"]
    assert orientation["orientation"] == "auto" and orientation["handedness"] == "ccw"
    # Every training and test patient is on the sheet's record, with the source of its origin.
    assert set(orientation["orientation_per_patient"]) == set(roles["fit"]) | set(roles["val"]) | set(roles["test"])
    assert sum(orientation["orientation_methods"].values()) == len(orientation["orientation_per_patient"])
    assert (out / "orientation" / "orientation.png").stat().st_size > 0
    assert metrics["config"]["orientation"] == "auto"
    assert "AHA angle origin per patient" in (out / "report.html").read_text()


def test_file_orientation_changes_the_study_and_is_recorded(smoke_study, tmp_path):
    from claim.cli import main

    root, out, metrics = smoke_study
    roles = json.loads((out / "prepare.json").read_text())
    auto = metrics["orientation"]["orientation_per_patient"]
    # Every patient's anterior insertion turned by 120 degrees: masks drawn by AHA segment must move with it.
    path = tmp_path / "orientation.csv"
    path.write_text("patient_id,insertion_deg\n" + "".join(
        f"{pid},{(auto[pid]['insertion_screen_deg'] + 120.0) % 360.0:.1f}\n" for pid in roles["canvases"]))
    turned = tmp_path / "turned"
    assert main(["experiment", "-c", str(out / "config.json"), "--out", str(turned), "--threads", "1",
                 "--orientation", f"file:{path}"]) == 0
    recorded = json.loads((turned / "metrics.json").read_text())
    assert recorded["config"]["orientation"] == f"file:{path}"
    methods = recorded["orientation"]["orientation_methods"]
    assert methods.get("file") == len(roles["canvases"]) and sum(methods.values()) == len(auto)
    assert recorded["orientation"]["orientation_file_sha256"]
    saved = json.loads((turned / "config.json").read_text())["config"]
    assert ExperimentConfig.from_dict(saved) == experiment_preset("smoke", orientation=f"file:{path}")
    def mask_bytes(study):
        root = study / "masks"
        return {f: (root / f).read_bytes() for kind in ("smile", "transplant")
                for entry in json.loads((root / kind / "masks.json").read_text()) for f in
                (f"{kind}/{name}" for name in entry["files"])}

    assert mask_bytes(turned) != mask_bytes(out), "a turned origin must move the masks drawn by AHA segment"
    # The study folder remembers its orientation: another one, or an edited file, is another study.
    train, test = root / "split/train", root / "split/test"
    with pytest.raises(ClaimError, match="config"):
        run_experiment(train, test, turned, experiment_preset("smoke"), seed=0, progress=False)
    path.write_text(path.read_text().replace("insertion_deg\n", "insertion_deg\n# edited\n") + "Case_X,10\n")
    with pytest.raises(ClaimError, match="orientation_file"):
        run_experiment(train, test, turned, experiment_preset("smoke", orientation=f"file:{path}"), seed=0,
                       progress=False)


def test_experiment_refuses_a_bad_orientation(smoke_study, tmp_path, capsys):
    from claim.cli import main

    _, out, _ = smoke_study
    assert main(["experiment", "-c", str(out / "config.json"), "--out", str(tmp_path / "x"),
                 "--orientation", "file:/nonexistent.csv"]) != 0
    assert "orientation" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_study_precision_reaches_every_trainer_and_is_checked(smoke_study, tmp_path, capsys):
    from claim.cli import main

    _, out, _ = smoke_study
    assert experiment_preset("standard").precision == "auto" and experiment_preset("quick").precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        experiment_preset("smoke", precision="fp16")
    assert ExperimentConfig.from_dict(experiment_preset("smoke").to_dict()).precision == "fp32"
    # Each trainer records the precision it ran at: the smoke study ran the fp32 default everywhere.
    for run in ("generator_claim", "generator_lefusion", "joint", "real_only", "smile"):
        assert json.loads((out / "runs" / run / "config.json").read_text())["precision"] == "fp32"
    with pytest.raises(SystemExit) as exc:  # argparse refuses the choice in one line
        main(["experiment", "-c", str(out / "config.json"), "--out", str(tmp_path / "x"), "--precision", "fp16"])
    assert exc.value.code == 2 and "--precision" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_2p5d_study_trains_its_arms_on_neighbours_and_its_joint_run_on_single_slices(smoke_study, tmp_path):
    from dataclasses import replace

    from claim.segmentation.checkpoint import load_segmenter

    root, _, _ = smoke_study
    base = experiment_preset("smoke")
    config = replace(base, segmenter_config=base.segmenter_config.replace(context_slices=1))
    out = tmp_path / "study"
    metrics = run_experiment(root / "split/train", root / "split/test", out, config, seed=0, threads=1, progress=False)
    assert set(metrics["arms"]) == set(ARMS)
    for arm in ARMS:
        model, seg = load_segmenter(out / "runs" / arm / "segmenter.pt")
        assert seg.context_slices == 1 and model.segmenter.input_block.conv1.conv.in_channels == 3
    joint_model, joint_seg = load_segmenter(out / "runs" / "joint" / "segmenter.pt")
    assert joint_seg.context_slices == 0 and joint_model.segmenter.input_block.conv1.conv.in_channels == 1
    saved = json.loads((out / "config.json").read_text())["config"]
    assert ExperimentConfig.from_dict(saved).segmenter_config.context_slices == 1


def test_workers_give_the_same_study_and_record_its_wall_time(smoke_study, tmp_path):
    from claim.cli import main

    root, out, metrics = smoke_study
    again = tmp_path / "workers"
    assert main(["experiment", "-c", str(out / "config.json"), "--out", str(again), "--threads", "1",
                 "--workers", "2"]) == 0
    repeated = json.loads((again / "metrics.json").read_text())
    # Each stage computed what it computes alone (one thread each): the same Dice, fidelity and realism.
    assert json.dumps(repeated["arms"]) == json.dumps(metrics["arms"])
    assert repeated["fidelity"] == metrics["fidelity"]
    assert repeated["realism"]["sources"] == metrics["realism"]["sources"]
    timing = repeated["timing"]
    state = json.loads((again / "state.json").read_text())
    assert timing["total_s"] == state["wall_s"] and timing["stage_sum_s"] > 0
    assert {record["threads"] for record in state["stages"].values()} == {1}
    assert set(timing["stages_s"]) == set(metrics["timing"]["stages_s"])
    assert timing["peak_rss_mb"] > 0
