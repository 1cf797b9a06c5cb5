"""End to end: a tiny joint run writes both checkpoints and its log, is deterministic, resumes exactly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from claim.cli import main
from claim.errors import ClaimError
from claim.generator.checkpoint import load_generator, read_generator_checkpoint
from claim.joint.config import JointConfig
from claim.joint.train import STATE_NAME, train_joint
from claim.segmentation.net import CascadeSegmenter
from claim.segmentation.train import load_segmenter
from claim.training.checkpoint import save_checkpoint
from tests.joint.conftest import TINY_G, TINY_J, TINY_S


def _run(data, out, steps, resume=False):
    joint = TINY_J if steps == TINY_J.steps else JointConfig(**{**TINY_J.to_dict(), "steps": steps})
    return train_joint(data, out, joint=joint, generator=TINY_G, segmenter=TINY_S, seed=3, resume=resume,
                       progress=False)


@pytest.fixture(scope="module")
def full_run(joint_dir, tmp_path_factory):
    return _run(joint_dir, tmp_path_factory.mktemp("joint_full"), TINY_J.steps)


def test_run_writes_checkpoints_log_and_usable_generator(full_run):
    run = full_run.generator_checkpoint.parent
    assert full_run.segmenter_checkpoint == run / "segmenter.pt"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, TINY_J.steps + 1))
    assert [e["phase"] for e in log] == ["generator"] * 2 + ["segmenter"] + ["joint"] * 3
    joint = [e for e in log if e["phase"] == "joint"]
    assert all("consistency_loss" in e and "segmenter_loss" in e and "diffusion_loss" in e for e in joint)
    assert joint[0]["refreshed"] > 0 and joint[0]["buffer"] > 0
    assert full_run.history == log
    loaded = load_generator(full_run.generator_checkpoint)  # what `claim generate` uses
    assert loaded.config == TINY_G and loaded.step == 5  # 2 warm-up + 3 joint G updates
    model, config = load_segmenter(full_run.segmenter_checkpoint)
    assert config.filters == TINY_S.filters
    assert (run / "config.json").is_file()


def test_same_seed_same_run_and_exact_resume(full_run, joint_dir, tmp_path):
    part = _run(joint_dir, tmp_path, 4)
    rest = _run(joint_dir, tmp_path, TINY_J.steps, resume=True)
    full_log = full_run.history
    assert part.history == [{**e, "seconds": p["seconds"]} for e, p in zip(full_log[:4], part.history, strict=True)]
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in rest.history]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in full_log[4:]]
    for name in ("generator.pt", "segmenter.pt"):
        a = torch.load(full_run.generator_checkpoint.parent / name, weights_only=False)
        b = torch.load(tmp_path / name, weights_only=False)
        for key in ("model", "ema") if name == "generator.pt" else ("model",):
            for param, value in a[key].items():
                torch.testing.assert_close(b[key][param], value, rtol=1e-5, atol=1e-6)


def test_a_state_from_before_the_matched_condition_is_not_resumed_under_it(joint_dir, tmp_path):
    _run(joint_dir, tmp_path, 4)
    state = torch.load(tmp_path / STATE_NAME, weights_only=False)
    assert state["run_config"]["hist_rule"] == "matched"
    del state["run_config"]["hist_rule"]  # as written before the rule existed: conditions drawn uniformly
    save_checkpoint(tmp_path / STATE_NAME, state)
    with pytest.raises(ClaimError, match="hist_rule"):
        _run(joint_dir, tmp_path, TINY_J.steps, resume=True)


def test_existing_run_needs_resume(full_run, joint_dir):
    with pytest.raises(ClaimError, match="earlier claim output"):
        _run(joint_dir, full_run.generator_checkpoint.parent, TINY_J.steps)


def test_no_normal_patients_is_a_clear_error(joint_dir, tmp_path):
    with pytest.raises(ClaimError, match="no normal patient"):
        train_joint(joint_dir, tmp_path / "run", joint=TINY_J, generator=TINY_G, segmenter=TINY_S,
                    train_patients=["Phantom_P002", "Phantom_P004"], progress=False)
    only_scar = tmp_path / "scar_only"
    for case in ("Phantom_P002", "Phantom_P004"):
        shutil.copytree(joint_dir / case, only_scar / case)
    code = main(["train-joint", "--data", str(only_scar), "--out", str(tmp_path / "cli"), "--preset", "tiny"])
    assert code == 2


def test_config_rejects_runs_without_joint_steps():
    with pytest.raises(ValueError, match="no joint step"):
        JointConfig(steps=4, generator_warmup=2, segmenter_warmup=2)
    assert TINY_J.phase(0) == "generator" and TINY_J.phase(2) == "segmenter" and TINY_J.phase(3) == "joint"


def test_init_generator_fine_tunes_a_checkpoint(full_run, joint_dir, tmp_path):
    result = train_joint(joint_dir, tmp_path / "ft", joint=TINY_J, segmenter=TINY_S, seed=1,
                         init_generator=full_run.generator_checkpoint, progress=False,
                         train_patients=["Phantom_N001", "Phantom_P002", "Phantom_P004"])
    loaded = load_generator(result.generator_checkpoint)
    assert loaded.config == TINY_G and loaded.step == 5 + 5  # the checkpoint's 5 updates, then 5 more
    assert "infarct_dice" in result.history[-1]["val"]  # the held-out patient N003, scored at the end
    assert all("val" not in e for e in result.history[:-1])
    with pytest.raises(ClaimError, match="config differs"):
        train_joint(joint_dir, tmp_path / "bad", joint=TINY_J, generator=TINY_G.__class__(), segmenter=TINY_S,
                    init_generator=full_run.generator_checkpoint, progress=False)


def test_cli_runs_and_resumes(joint_dir, tmp_path):
    args = ["train-joint", "--data", str(joint_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
            "--generator-warmup", "1", "--segmenter-warmup", "1", "--t-max", "50", "--lambda", "0.5"]
    assert main([*args, "--steps", "3"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in log] == ["generator", "segmenter", "joint", "joint"]
    assert load_generator(tmp_path / "run" / "generator.pt").config.crop_size == 48


def test_resuming_a_state_that_does_not_fit_the_models_is_one_clear_error(full_run, joint_dir, tmp_path):
    from claim.errors import InputError
    from claim.joint.train import STATE_FORMAT, STATE_NAME
    from claim.training.checkpoint import read_checkpoint, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(full_run.generator_checkpoint.parent, run)
    state = read_checkpoint(run / STATE_NAME, fmt=STATE_FORMAT, what="joint state")
    first = next(iter(state["segmenter"]["model"]))
    del state["segmenter"]["model"][first]  # as a state saved by a claim whose segmenter had other layers
    del state["content_sha256"]
    save_checkpoint(run / STATE_NAME, state)
    with pytest.raises(InputError, match="does not fit"):
        _run(joint_dir, run, TINY_J.steps, resume=True)


@pytest.mark.parametrize("bound", ["real", "match"])
def test_histogram_guard_and_real_bound_enter_the_joint_loss(joint_dir, tmp_path, bound):
    joint = TINY_J.replace(lambda_consistency=1.0, lambda_histogram=0.5, consistency_bound=bound)
    result = train_joint(joint_dir, tmp_path / "guarded", joint=joint, generator=TINY_G, segmenter=TINY_S, seed=3,
                         progress=False)
    joint_steps = [e for e in result.history if e["phase"] == "joint"]
    assert joint_steps and all({"histogram_loss", "real_consistency_loss", "consistency_loss"} <= set(e)
                               for e in joint_steps)
    assert all(0.0 <= e["histogram_loss"] <= 2.0 for e in joint_steps)
    saved = json.loads((tmp_path / "guarded" / "config.json").read_text())
    assert saved["joint"]["lambda_histogram"] == 0.5 and saved["joint"]["consistency_bound"] == bound
    with pytest.raises(ValueError, match="consistency_bound"):
        TINY_J.replace(consistency_bound="soft")
    with pytest.raises(ValueError, match="lambda_histogram"):
        TINY_J.replace(lambda_histogram=-1.0)
    with pytest.raises(ValueError, match="hist_rule"):
        TINY_J.replace(hist_rule="nearest")


def test_quantile_guard_enters_the_joint_loss_and_changes_the_generator(joint_dir, tmp_path, monkeypatch):
    joint = TINY_J.replace(lambda_consistency=1.0, lambda_histogram=1.0)
    runs = {distance: train_joint(joint_dir, tmp_path / distance, joint=joint.replace(histogram_distance=distance),
                                  generator=TINY_G, segmenter=TINY_S, seed=3, progress=False)
            for distance in ("soft", "quantile")}
    steps = {d: [e for e in r.history if e["phase"] == "joint"] for d, r in runs.items()}
    # The same estimate feeds S in both runs until G's weights part (after the first joint update).
    assert steps["soft"][0]["consistency_loss"] == steps["quantile"][0]["consistency_loss"]
    assert all(e["histogram_loss"] > 0 for e in steps["quantile"])
    weights = [read_generator_checkpoint(r.generator_checkpoint)["model"] for r in runs.values()]
    assert any(not torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))
    saved = json.loads((tmp_path / "quantile" / "config.json").read_text())
    assert saved["joint"]["histogram_distance"] == "quantile" and saved["joint"]["feedback_start"] == "canvas"
    # The feedback read from G's own painting: each joint step hands its painting to the feedback as the start.
    import claim.joint.train as joint_train

    paintings, starts = [], []
    real_paint, real_feedback = joint_train.painted_start, joint_train.generator_feedback
    monkeypatch.setattr(joint_train, "painted_start", lambda *a, **k: paintings.append(real_paint(*a, **k)) or
                        paintings[-1])
    monkeypatch.setattr(joint_train, "generator_feedback", lambda *a, **k: starts.append(k["start"]) or
                        real_feedback(*a, **k))
    painted = train_joint(joint_dir, tmp_path / "painted", joint=joint.replace(feedback_start="painted"),
                          generator=TINY_G, segmenter=TINY_S, seed=3, progress=False)
    n_joint = sum(e["phase"] == "joint" for e in painted.history)
    assert len(paintings) == len(starts) == n_joint and all(a is b for a, b in zip(paintings, starts, strict=True))
    first = [e for e in painted.history if e["phase"] == "joint"][0]
    assert first["consistency_loss"] != steps["soft"][0]["consistency_loss"]
    again = read_generator_checkpoint(painted.generator_checkpoint)["model"]
    assert any(not torch.equal(a, b) for a, b in zip(weights[0].values(), again.values(), strict=True))
    assert json.loads((tmp_path / "painted" / "config.json").read_text())["joint"]["feedback_start"] == "painted"
    with pytest.raises(ValueError, match="feedback_start"):
        TINY_J.replace(feedback_start="sampled")
    with pytest.raises(ValueError, match="consistency_border_px"):
        TINY_J.replace(consistency_border_px=-1)
    # The standard presets read G's painting; a config saved before the option loads as the canvas run it was.
    from claim.experiment.config import experiment_preset
    from claim.joint.config import JointConfig, joint_preset

    assert joint_preset("standard").feedback_start == "painted"
    study_joint = experiment_preset("standard").joint()
    assert (study_joint.feedback_start, study_joint.histogram_distance, study_joint.consistency_bound) == \
        ("painted", "soft", "real")
    old_config = {k: v for k, v in study_joint.to_dict().items() if k != "feedback_start"}
    assert JointConfig.from_dict(old_config).feedback_start == "canvas"
    assert TINY_J.histogram_distance == "soft"  # the default, as every run before the option measured
    with pytest.raises(ValueError, match="histogram_distance"):
        TINY_J.replace(histogram_distance="emd")


def test_border_ring_leaves_both_consistency_views(joint_dir, tmp_path):
    joint = TINY_J.replace(lambda_consistency=1.0, lambda_histogram=0.5, consistency_bound="real")
    runs = {px: train_joint(joint_dir, tmp_path / f"ring{px}", joint=joint.replace(consistency_border_px=px),
                            generator=TINY_G, segmenter=TINY_S, seed=3, progress=False) for px in (0, 1)}
    first = {px: next(e for e in r.history if e["phase"] == "joint") for px, r in runs.items()}
    # The ring draws nothing at random: the same crops, both the synthetic and the real view lose their ring.
    assert first[0]["histogram_loss"] == first[1]["histogram_loss"]
    assert first[0]["consistency_loss"] != first[1]["consistency_loss"]
    assert first[0]["real_consistency_loss"] != first[1]["real_consistency_loss"]


def test_feature_term_enters_the_joint_loss_and_changes_the_generator(joint_dir, tmp_path):
    joint = TINY_J.replace(lambda_consistency=1.0, lambda_histogram=0.5, consistency_bound="real")
    runs = {}
    for name, weight in (("plain", 0.0), ("features", 1.0)):
        runs[name] = train_joint(joint_dir, tmp_path / name, joint=joint.replace(lambda_feature=weight),
                                 generator=TINY_G, segmenter=TINY_S, seed=3, progress=False)
    joint_steps = [e for e in runs["features"].history if e["phase"] == "joint"]
    assert joint_steps and all(e["feature_loss"] > 0 for e in joint_steps)
    assert not any("feature_loss" in e for e in runs["plain"].history)
    # The same run with the bound alone draws the same real crops: it differs only by the feature term.
    plain = [e["real_consistency_loss"] for e in runs["plain"].history if e["phase"] == "joint"]
    assert plain[0] == joint_steps[0]["real_consistency_loss"]
    weights = [read_generator_checkpoint(r.generator_checkpoint)["model"] for r in runs.values()]
    assert any(not torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))
    saved = json.loads((tmp_path / "features" / "config.json").read_text())
    assert saved["joint"]["lambda_feature"] == 1.0
    with pytest.raises(ValueError, match="lambda_feature"):
        TINY_J.replace(lambda_feature=-0.5)


def test_a_segmenter_with_roi_jitter_trains_jointly_on_synthetic_rois_of_its_own_size(joint_dir, tmp_path):
    # An ensemble recipe (members=2) still gives G one S to train with and backpropagate through.
    segmenter = TINY_S.replace(roi_jitter=4, members=2)
    result = train_joint(joint_dir, tmp_path / "jittered", joint=TINY_J, generator=TINY_G, segmenter=segmenter,
                         seed=3, progress=False)
    joint = [e for e in result.history if e["phase"] == "joint"]
    assert joint[0]["buffer"] > 0
    assert all(np.isfinite(e["segmenter_loss"]) for e in joint)
    model, config = load_segmenter(result.segmenter_checkpoint)
    assert config.roi_jitter == 4 and config.members == 1 and isinstance(model, CascadeSegmenter)
    # The buffer keeps S's training windows, as for real slices, and every step cuts its ROIs from them.
    state = torch.load(result.segmenter_checkpoint.parent / STATE_NAME, weights_only=False)
    assert state["buffer"]["images"].shape[-1] == segmenter.training_window == segmenter.crop_size + 8
