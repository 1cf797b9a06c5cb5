"""The cross-validated study: folds, no leakage from a fold's test patients, every patient tested once, pooling,
segmenter seeds, resume, and the CLI contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.experiment.config import ARMS, experiment_preset
from claim.experiment.crossval import FOLDS_FILE, assign_folds, fold_dir, run_crossval
from claim.phantom import write_phantom_cohort
from claim.report.crossval import write_crossval_report
from tests.conftest import SMALL

pytestmark = pytest.mark.slow

CONFIG = experiment_preset("smoke", folds=2, segmenter_seeds=2)


@pytest.fixture(scope="session")
def smoke_crossval(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "smoke_crossval"
    out = root / "cv"
    if (out / "metrics.json").exists():
        return root, out, json.loads((out / "metrics.json").read_text())
    write_phantom_cohort(root / "phantom", 8, seed=2, config=SMALL, progress=False)
    metrics = run_crossval(root / "phantom", out, CONFIG, seed=0, threads=1, progress=False)
    return root, out, metrics


def test_folds_are_stratified_balanced_and_seeded():
    pathological = [f"P{i:02d}" for i in range(10)]
    normal = [f"N{i:02d}" for i in range(5)]
    folds = assign_folds(pathological, normal, 3, seed=0)
    assert set(folds) == set(pathological + normal) and set(folds.values()) == {1, 2, 3}
    sizes = [sum(1 for f in folds.values() if f == k) for k in (1, 2, 3)]
    assert max(sizes) - min(sizes) <= 1
    for group in (pathological, normal):
        counts = [sum(1 for p in group if folds[p] == k) for k in (1, 2, 3)]
        assert max(counts) - min(counts) <= 1
    assert assign_folds(pathological, normal, 3, seed=0) == folds
    assert assign_folds(pathological, normal, 3, seed=1) != folds


def test_every_patient_is_tested_exactly_once(smoke_crossval):
    root, out, metrics = smoke_crossval
    everyone = {p.patient_id for p in read_dataset(root / "phantom")}
    tested = [pid for fold in metrics["per_fold"] for pid in fold["test_patients"]]
    assert sorted(tested) == sorted(everyone)  # no patient twice, none missing
    assignment = json.loads((out / FOLDS_FILE).read_text())["assignment"]
    for fold in metrics["per_fold"]:
        assert all(assignment[pid] == fold["fold"] for pid in fold["test_patients"])
    pathological = sorted(p for p in everyone if "_P" in p)
    assert metrics["test_pathological"] == pathological
    for arm in ARMS:
        assert sorted(metrics["arms"][arm]["per_patient"]) == pathological
        assert metrics["arms"][arm]["n_patients"] == len(pathological)


def _strings_in(path: Path) -> str:
    if path.suffix in (".json", ".jsonl"):
        return path.read_text()
    return ""


def test_no_test_patient_reaches_any_model_of_its_fold(smoke_crossval):
    """Every stage's inputs and records (data copies, masks, prior, generators, joint run, synthetic patients,
    segmenters and their seeds) are free of the fold's test patients: no file name and no record under those
    stages names one, and every training folder a run read holds none."""
    _, out, _ = smoke_crossval
    for fold in (1, 2):
        base = fold_dir(out, fold)
        test_ids = {p.patient_id for p in read_dataset(base / "data" / "test")}
        assert test_ids
        study = base / "study"
        roles = json.loads((study / "prepare.json").read_text())
        assert set(roles["test"]) == test_ids
        for role in ("fit", "val", "canvases", "donors"):
            assert not set(roles[role]) & test_ids, role
        # Model selection (each segmenter's best checkpoint) read the fold's validation patients only.
        selection = json.loads((base / "study" / "metrics.json").read_text())["model_selection"]
        assert selection["validation_patients"] == sorted(roles["val"])
        assert len(selection["segmenters"]) == len(ARMS) * CONFIG.segmenter_seeds
        for stage in (base / "data" / "train", study / "data", study / "masks", study / "runs", study / "synthetic"):
            assert stage.is_dir()
            for path in stage.rglob("*"):
                text = str(path.relative_to(stage)) + (_strings_in(path) if path.is_file() else "")
                leaked = [pid for pid in test_ids if pid in text]
                assert not leaked, f"fold {fold}: {path} names test patients {leaked}"
        runs = sorted((study / "runs").iterdir())
        assert {r.name for r in runs} >= {"generator_lefusion", "generator_claim", "joint",
                                          *ARMS, *(f"{arm}_seed2" for arm in ARMS)}
        for run in runs:
            record = json.loads((run / "config.json").read_text())
            for key in ("real_dirs", "data"):
                for folder in ([record[key]] if isinstance(record.get(key), str) else record.get(key, [])):
                    assert not {p.patient_id for p in read_dataset(Path(folder))} & test_ids, (run, folder)


def test_segmenter_seeds_train_distinct_models_on_the_same_data(smoke_crossval):
    _, out, metrics = smoke_crossval
    runs = fold_dir(out, 1) / "study" / "runs"
    first = json.loads((runs / "smile" / "config.json").read_text())
    second = json.loads((runs / "smile_seed2" / "config.json").read_text())
    assert first["seed"] != second["seed"]
    for key in ("train_patients", "val_patients", "synthetic_dirs", "data_identity"):
        assert first[key] == second[key]
    assert metrics["cross_validation"]["segmenter_seeds"] == 2
    assert "softmax" in metrics["cross_validation"]["ensemble"]


def test_pooled_metrics_folds_and_report(smoke_crossval, tmp_path):
    _, out, metrics = smoke_crossval
    assert [f["model_selection"]["validation_patients"] for f in metrics["per_fold"]] == [
        json.loads((fold_dir(out, k) / "study" / "metrics.json").read_text())["model_selection"]["validation_patients"]
        for k in (1, 2)]
    assert "Model selection (validation patients only)" in (out / "report.html").read_text()
    assert metrics["cross_validation"]["folds"] == 2 and len(metrics["per_fold"]) == 2
    for arm in ("lefusion", "smile", "claim"):
        ci = metrics["arms"][arm]["ci95_minus_real_only"]["infarct_dice"]
        diffs = [metrics["arms"][arm]["per_patient"][p]["infarct_dice"]
                 - metrics["arms"]["real_only"]["per_patient"][p]["infarct_dice"]
                 for p in metrics["test_pathological"]]
        assert ci["n"] == len(diffs) and math.isclose(ci["mean"], sum(diffs) / len(diffs), abs_tol=1e-12)
        assert ci["low"] <= ci["mean"] <= ci["high"]
        detect = metrics["detectable"][arm]["infarct_dice"]
        assert detect["n"] == len(diffs) and detect["bootstrap_half_width"] >= 0
    # The pooled mean of an arm is the patient-weighted mean of the fold means.
    for arm in ARMS:
        weighted = sum(f["arms"][arm]["infarct_dice"] * len(f["test_pathological"]) for f in metrics["per_fold"])
        assert math.isclose(metrics["arms"][arm]["infarct_dice"], weighted / len(metrics["test_pathological"]),
                            abs_tol=1e-9)
    assert metrics["timing"]["total_s"] > 0 and metrics["timing"]["peak_rss_mb"] > 0
    html = (out / "report.html").read_text()
    assert "2-fold cross-validation" in html and html.count("<img") >= 2
    assert "What this study can detect" in html and "folds/fold1/study/report.html" in html
    assert (fold_dir(out, 1) / "study" / "report.html").exists()
    # One segmenter seed per arm: the report says its intervals leave out training noise (not with several).
    assert "leave out training noise" not in html
    one_seed = json.loads(json.dumps(metrics))
    one_seed["cross_validation"]["segmenter_seeds"] = 1
    assert "leave out training noise" in write_crossval_report(out, one_seed, tmp_path / "one_seed.html").read_text()


def test_realism_over_all_folds(smoke_crossval):
    _, out, metrics = smoke_crossval
    realism = metrics["realism"]
    assert set(realism["sources"]) == {"lefusion", "smile", "claim", "blobs_masks"}
    # Each fold's synthetic patients against that fold's held-out real scars only, then averaged over folds.
    assert len(realism["per_fold"]) == 2
    for k, record in enumerate(realism["per_fold"], start=1):
        held_out = [p for p in metrics["per_fold"][k - 1]["test_pathological"]]
        assert record["real"]["patients"] == len(held_out)
        synthetic = len(list((fold_dir(out, k) / "study" / "synthetic" / "smile").glob("*_smile*")))
        assert record["sources"]["smile"]["patients"] == synthetic
    assert realism["real"]["patients"] == len(metrics["test_pathological"])
    assert realism["sources"]["smile"]["patients"] == sum(r["sources"]["smile"]["patients"]
                                                         for r in realism["per_fold"])
    folds_auc = [r["sources"]["smile"]["image_c2st"]["auc"] for r in realism["per_fold"]]
    if all(a is not None for a in folds_auc):
        assert math.isclose(realism["sources"]["smile"]["image_c2st"]["auc"], sum(folds_auc) / 2)
    assert "_bootstrap_draws" not in (out / "realism" / "realism.json").read_text()
    assert "image_c2st" in realism["sources"]["claim"] and "mask_c2st" not in realism["sources"]["claim"]
    assert "image_c2st" not in realism["sources"]["blobs_masks"] and "mask_c2st" in realism["sources"]["blobs_masks"]
    assert {"image_c2st", "mask_c2st", "intensity_floor", "frequency_dice_ceiling"} <= set(realism["real_vs_real"])
    assert (out / "realism" / "gallery.png").stat().st_size > 1000
    assert "Realism: synthetic scar against real scar" in (out / "report.html").read_text()
    assert "realism" in metrics["timing"]["folds_s"]


def test_rerun_resumes_and_another_seed_is_refused(smoke_crossval):
    root, out, metrics = smoke_crossval
    again = run_crossval(root / "phantom", out, CONFIG, seed=0, threads=1, progress=False)
    assert again["arms"] == metrics["arms"]
    with pytest.raises(ClaimError, match="another configuration, seed or data"):
        run_crossval(root / "phantom", out, CONFIG, seed=1, threads=1, progress=False)


def test_identity_is_recorded_before_the_first_fold_ends(smoke_crossval, tmp_path):
    root, _, _ = smoke_crossval
    out = tmp_path / "cv"
    # A bad fold count fails before anything is written ...
    with pytest.raises(ClaimError, match="every fold must test"):
        run_crossval(root / "phantom", out, CONFIG.replace(folds=9), seed=0, progress=False)
    assert not out.exists()
    # ... and a run killed in its first fold has already recorded who it is, so another seed is refused.
    from claim.experiment import crossval

    calls = []

    def killed(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt

    original = crossval._CrossValidation._fold_data
    crossval._CrossValidation._fold_data = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            run_crossval(root / "phantom", out, CONFIG, seed=0, progress=False)
    finally:
        crossval._CrossValidation._fold_data = original
    assert calls and json.loads((out / "state.json").read_text())["identity"]["seed"] == 0
    with pytest.raises(ClaimError, match="another configuration, seed or data"):
        run_crossval(root / "phantom", out, CONFIG, seed=1, progress=False)


def test_realism_settings_are_not_the_study_identity(smoke_crossval):
    """A study recorded before the realism fields existed, or with other realism settings, is the same study:
    its folds are reused and only the realism measure is taken again."""
    root, out, metrics = smoke_crossval
    state = json.loads((out / "state.json").read_text())
    for key in ("realism_repeats", "realism_steps"):
        state["identity"]["config"].pop(key, None)
    (out / "state.json").write_text(json.dumps(state))
    before = (out / "realism" / "realism.json").stat().st_mtime_ns
    again = run_crossval(root / "phantom", out, CONFIG.replace(realism_steps=12), seed=0, threads=1,
                         progress=False)
    assert again["arms"] == metrics["arms"]  # nothing retrained
    assert (out / "realism" / "realism.json").stat().st_mtime_ns != before
    assert again["realism"]["protocol"]["c2st"]["steps"] == 12
    run_crossval(root / "phantom", out, CONFIG, seed=0, threads=1, progress=False)  # back to the fixture's


def test_a_study_recorded_before_a_nested_field_existed_resumes(smoke_crossval):
    """A field added to a nested config since a study was written (e.g. the segmenter's ``lr_warmup``) takes the
    default those studies ran with: the study and its folds are the same study, nothing is retrained."""
    root, out, metrics = smoke_crossval
    states = [out / "state.json", *sorted((out / "folds").glob("fold*/study/state.json"))]
    for path in states:
        state = json.loads(path.read_text())
        state["identity"]["config"]["segmenter_config"].pop("lr_warmup")
        path.write_text(json.dumps(state))
    before = {path: path.stat().st_mtime_ns for path in (out / "folds").rglob("segmenter.pt")}
    again = run_crossval(root / "phantom", out, CONFIG, seed=0, threads=1, progress=False)
    assert again["arms"] == metrics["arms"]
    assert before and all(path.stat().st_mtime_ns == mtime for path, mtime in before.items())


def test_cli_folds_contract(smoke_crossval, tmp_path, capsys):
    root, out, _ = smoke_crossval
    data = str(root / "phantom")
    assert main(["experiment", "--train-data", data, "--test-data", data, "--folds", "2", "-o",
                 str(tmp_path / "a")]) == 2
    assert "give one or the other" in capsys.readouterr().err
    assert main(["experiment", "--train-data", data, "-o", str(tmp_path / "b"), "--preset", "quick"]) == 2
    assert "--test-data DIR or --folds K" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--train-data", data, "-o", str(tmp_path / "c"), "--folds", "1"])
    assert exit_info.value.code == 2 and "--folds" in capsys.readouterr().err
    assert main(["experiment", "--train-data", data, "-o", str(tmp_path / "d"), "--folds", "9"]) == 2
    assert "every fold must test" in capsys.readouterr().err
    # The saved config reruns the cross-validated study (finished: nothing retrained).
    assert main(["experiment", "-c", str(out / "config.json"), "-o", str(out)]) == 0
    assert "infarct Dice" in capsys.readouterr().out


def test_standard_preset_is_cross_validated():
    standard = experiment_preset("standard")
    assert standard.folds == 3 and experiment_preset("quick").folds == 0


def test_interim_metrics_pool_the_finished_folds(smoke_crossval):
    from claim.experiment.crossval import pooled_metrics

    _, out, metrics = smoke_crossval
    state = json.loads((out / "state.json").read_text())
    assignment = json.loads((out / FOLDS_FILE).read_text())["assignment"]
    interim = pooled_metrics(out, CONFIG, 0, state, assignment, folds=[2])
    assert interim["cross_validation"]["complete"] is False and interim["cross_validation"]["folds_pooled"] == [2]
    fold2 = metrics["per_fold"][1]
    assert interim["test_pathological"] == fold2["test_pathological"]
    assert math.isclose(interim["arms"]["smile"]["infarct_dice"], fold2["arms"]["smile"]["infarct_dice"])
    assert metrics["cross_validation"]["complete"] is True
    from claim.report.crossval import build_crossval_report

    assert "interim: folds [2] finished" in build_crossval_report(out, interim).render()


def test_cross_validated_gallery_shows_a_canvas_once():
    from types import SimpleNamespace

    from claim.experiment.realism import _interleaved

    fold1 = [SimpleNamespace(group=g) for g in ("N020", "N023")]
    fold2 = [SimpleNamespace(group=g) for g in ("N020", "N013", "N014")]
    assert [ex.group for ex in _interleaved([fold1, fold2])] == ["N020", "N023", "N013", "N014"]
    assert len(_interleaved([fold2, fold2, fold2], n=2)) == 2
