"""Model selection reads validation patients only: the design choice ignores test scores, a checkpoint validated
on a test patient is refused, and every study records each segmenter's selected step and validation scores."""

from __future__ import annotations

import json
import math

import pytest

from claim.errors import ClaimError
from claim.experiment.config import ARMS, experiment_preset
from claim.experiment.selection import (
    JOINT_HYPERPARAMETERS,
    choose_on_validation,
    nested_choice,
    selection_record,
    study_selection,
    validation_of,
)
from claim.joint.config import JointConfig
from claim.segmentation.checkpoint import read_checkpoint, save_checkpoint
from claim.segmentation.config import SegmenterConfig


def _checkpoint(path, val_patients, infarct, myocardium=0.5, step=40):
    save_checkpoint(path, SegmenterConfig(), {}, step=step + 10, seed=0, val_patients=val_patients,
                    best={"step": step, "metrics": {"infarct_dice": infarct, "myocardium_dice": myocardium}})
    return path


def test_the_design_choice_follows_validation_and_ignores_test_scores():
    candidates = {
        "a": {"validation": {"infarct_dice": 0.30, "myocardium_dice": 0.7}, "infarct_dice": 0.60},  # best on test
        "b": {"validation": {"infarct_dice": 0.35, "myocardium_dice": 0.6}, "infarct_dice": 0.20},
        "c": {"validation": {"infarct_dice": 0.35, "myocardium_dice": 0.5}, "infarct_dice": 0.90},
    }
    assert choose_on_validation(candidates) == "b"  # best validation infarct Dice, tie broken by myocardium
    # Changing any test score never changes the choice.
    for name in candidates:
        changed = {k: {**v, "infarct_dice": 1.0 if k == name else 0.0} for k, v in candidates.items()}
        assert choose_on_validation(changed) == "b"
    # No scar on the validation patients (NaN): ranked by myocardium Dice below any finite infarct Dice.
    assert choose_on_validation({"x": {"validation": {"infarct_dice": math.nan, "myocardium_dice": 0.9}},
                                 "y": {"validation": {"infarct_dice": 0.01, "myocardium_dice": 0.1}}}) == "y"
    with pytest.raises(ClaimError, match="no validation record"):
        choose_on_validation({"a": {"infarct_dice": 0.5}})
    with pytest.raises(ClaimError):
        choose_on_validation({})


def test_each_fold_chooses_on_its_own_validation_patients():
    def candidate(validation, *scores, fold):
        return {"validation": {"infarct_dice": validation}, "test": {f"f{fold}p{i}": v for i, v in enumerate(scores)}}

    folds = [
        {"a": candidate(0.4, 0.1, 0.2, fold=1), "b": candidate(0.3, 0.9, 0.9, fold=1)},
        {"a": candidate(0.2, 0.8, 0.8, fold=2), "b": candidate(0.5, 0.3, 0.4, fold=2)},
    ]
    chosen, pooled = nested_choice(folds)
    assert chosen == ["a", "b"]  # by each fold's validation, against what the test scores would favour
    assert pooled == {"f1p0": 0.1, "f1p1": 0.2, "f2p0": 0.3, "f2p1": 0.4}
    # The unchosen candidates' test scores never matter.
    folds[0]["b"]["test"] = {"f1p0": 1.0, "f1p1": 1.0}
    assert nested_choice(folds) == (chosen, pooled)
    with pytest.raises(ClaimError, match="more than one fold"):
        nested_choice([folds[0], {"a": candidate(0.9, 0.5, fold=1)}])


def test_a_checkpoint_validated_on_a_test_patient_is_refused(tmp_path):
    path = _checkpoint(tmp_path / "segmenter.pt", ["P1", "P2"], 0.4)
    record = validation_of(path, test_ids={"P3"})
    assert record == {"step": 40, "validation": {"infarct_dice": 0.4, "myocardium_dice": 0.5},
                      "val_patients": ["P1", "P2"]}
    with pytest.raises(ClaimError, match=r"read test patients \['P2'\]"):
        validation_of(path, test_ids={"P2", "P9"})


def test_selection_record_needs_one_validation_set(tmp_path):
    a = _checkpoint(tmp_path / "a.pt", ["P1", "P2"], 0.4)
    b = _checkpoint(tmp_path / "b.pt", ["P2", "P1"], 0.5, step=20)
    joint = JointConfig(lambda_histogram=1.0, consistency_bound="real")
    record = selection_record({"real_only": a, "claim": b}, test_ids=["P3"], joint=joint)
    assert record["validation_patients"] == ["P1", "P2"]
    assert record["segmenters"]["claim"] == {"step": 20, "validation": {"infarct_dice": 0.5,
                                                                        "myocardium_dice": 0.5}}
    assert record["joint"]["consistency_bound"] == "real" and set(record["joint"]) == set(JOINT_HYPERPARAMETERS)
    c = _checkpoint(tmp_path / "c.pt", ["P1", "P4"], 0.5)
    with pytest.raises(ClaimError, match="different patients"):
        selection_record({"a": a, "c": c}, test_ids=[], joint=joint)


@pytest.mark.slow
def test_a_study_records_its_selection_on_validation_patients(smoke_study):
    _, out, metrics = smoke_study
    roles = json.loads((out / "prepare.json").read_text())
    selection = metrics["model_selection"]
    assert selection["validation_patients"] == sorted(roles["val"])
    assert set(selection["segmenters"]) == set(ARMS)
    for arm, record in selection["segmenters"].items():
        payload = read_checkpoint(out / "runs" / arm / "segmenter.pt")
        assert record["step"] == payload["best"]["step"] <= metrics["budget"]["segmenter_steps_per_arm"]
        for key, value in payload["best"]["metrics"].items():  # metrics.json writes NaN as null
            assert record["validation"][key] == (None if math.isnan(value) else pytest.approx(value)), key
    assert selection["joint"]["lambda_consistency"] == metrics["config"]["joint_config"]["lambda_consistency"]
    assert "Model selection (validation patients only)" in (out / "report.html").read_text()
    assert "not chosen by a screen" in selection["joint_selection"]  # the smoke preset's own settings


@pytest.mark.slow
def test_a_study_whose_validation_patient_is_tested_is_refused(smoke_study, tmp_path):
    _, out, _ = smoke_study
    roles = json.loads((out / "prepare.json").read_text())
    fake = tmp_path / "study"
    for arm in ARMS:
        (fake / "runs" / arm).mkdir(parents=True)
        (fake / "runs" / arm / "segmenter.pt").symlink_to(out / "runs" / arm / "segmenter.pt")
    (fake / "prepare.json").write_text(json.dumps({**roles, "test": roles["test"] + roles["val"][:1]}))
    with pytest.raises(ClaimError, match="read test patients"):
        study_selection(fake, experiment_preset("smoke"))
    (fake / "prepare.json").write_text(json.dumps(roles))
    standard = study_selection(fake, experiment_preset("standard"))  # the screened settings say where they came from
    assert standard["joint_selection"].startswith("the standard preset's") and "not nested" in standard[
        "joint_selection"]
