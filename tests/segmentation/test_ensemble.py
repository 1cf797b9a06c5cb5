"""An ensemble of segmenters (``members``): each member is exactly a single run, predictions average their softmax."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.runtime import torch_threads
from claim.segmentation.checkpoint import load_segmenter, read_checkpoint
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import training_slices
from claim.segmentation.net import CascadeSegmenter, SegmenterEnsemble
from claim.segmentation.postprocess import anatomical_postprocess
from claim.segmentation.predict import predict_ensemble, predict_patient, predict_probabilities
from claim.segmentation.train import SegmenterTrainer, _member_workers, member_dir, train_segmenter
from claim.segmentation.trainer import validation_metrics
from tests.segmentation.conftest import TEST_CONFIG

PAIR = replace(TEST_CONFIG, members=2)


@pytest.fixture(scope="module")
def pair_run(seg_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pair") / "run"
    return train_segmenter([seg_data_dir], out, PAIR, seed=4, progress=False), out


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_members_are_the_single_runs_of_consecutive_seeds_on_one_validation_set(pair_run, seg_data_dir, tmp_path):
    _, out = pair_run
    first = read_checkpoint(member_dir(out, 0) / "segmenter.pt")
    alone0 = train_segmenter([seg_data_dir], tmp_path / "s4", TEST_CONFIG, seed=4, progress=False)
    alone1 = train_segmenter([seg_data_dir], tmp_path / "s5", TEST_CONFIG, seed=5, progress=False,
                             val_patients=first["val_patients"])
    _same_weights(first["model"], read_checkpoint(alone0.checkpoint)["model"])
    second = read_checkpoint(member_dir(out, 1) / "segmenter.pt")
    _same_weights(second["model"], read_checkpoint(alone1.checkpoint)["model"])
    assert second["seed"] == 5 and second["val_patients"] == first["val_patients"] != []
    # Without the shared validation patients, seed 5 would draw its own: the members would not be comparable.
    assert json.loads((out / "config.json").read_text())["member_seeds"] == [4, 5]

    ensemble = read_checkpoint(out / "segmenter.pt")
    _same_weights(ensemble["model"], {**{f"members.0.{k}": v for k, v in first["model"].items()},
                                      **{f"members.1.{k}": v for k, v in second["model"].items()}})
    assert ensemble["member_steps"] == [first["step"], second["step"]]


def test_ensemble_predicts_the_mean_of_its_members_softmax(pair_run, seg_data_dir):
    result, out = pair_run
    model, config = load_segmenter(out / "segmenter.pt")
    assert isinstance(model, SegmenterEnsemble) and config == PAIR and not model.training
    members = [load_segmenter(member_dir(out, k) / "segmenter.pt") for k in range(2)]
    assert all(isinstance(m, CascadeSegmenter) and c.members == 1 for m, c in members)
    patient = read_dataset(seg_data_dir)[0]
    mean = sum(predict_probabilities(m, c, patient.images) for m, c in members) / 2
    np.testing.assert_allclose(predict_probabilities(model, config, patient.images), mean, rtol=0, atol=1e-6)
    expected, _ = anatomical_postprocess(mean.argmax(axis=1).astype(np.uint8))
    prediction = predict_patient(model, config, patient.images)
    np.testing.assert_array_equal(prediction.label_maps, expected)
    np.testing.assert_array_equal(predict_ensemble(members, patient.images), expected)
    np.testing.assert_array_equal(predict_ensemble([(model, config)], patient.images), expected)
    centres = [predict_patient(m, c, patient.images).roi_centre for m, c in members]
    np.testing.assert_allclose(prediction.roi_centre, np.mean(centres, axis=0))
    # The run reports the ensemble's own validation score, as the log records it.
    val = [p for p in read_dataset(seg_data_dir) if p.patient_id in set(read_checkpoint(result.checkpoint)
                                                                           ["val_patients"])]
    assert result.best_metrics == pytest.approx(validation_metrics(model, config, val), nan_ok=True)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e.get("member") for e in log] == [0, 1, None] and log[-1]["ensemble"] == 2


def test_killed_ensemble_resumes_to_the_same_members(pair_run, seg_data_dir, tmp_path, monkeypatch):
    _, done = pair_run
    calls = {"n": 0}
    real_step = SegmenterTrainer.step

    def counted(die_at: int | None):
        def step(self, s, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == die_at:
                raise KeyboardInterrupt
            return real_step(self, s, *args, **kwargs)
        return step

    # Killed in member 1's third step, after its step-2 checkpoint (member 0 ran its three steps).
    monkeypatch.setattr(SegmenterTrainer, "step", counted(2 * PAIR.steps))
    with pytest.raises(KeyboardInterrupt):
        train_segmenter([seg_data_dir], tmp_path / "b", PAIR, seed=4, progress=False)
    assert (member_dir(tmp_path / "b", 0) / "segmenter.pt").is_file() and not (tmp_path / "b" / "segmenter.pt").exists()
    calls["n"] = 0
    monkeypatch.setattr(SegmenterTrainer, "step", counted(None))
    with pytest.raises(ClaimError, match="--resume"):
        train_segmenter([seg_data_dir], tmp_path / "b", PAIR, seed=4, progress=False)
    train_segmenter([seg_data_dir], tmp_path / "b", PAIR, seed=4, progress=False, resume=True)
    assert calls["n"] == 1  # member 1's last step only: nothing already trained is trained again
    _same_weights(read_checkpoint(tmp_path / "b" / "segmenter.pt")["model"],
                  read_checkpoint(done / "segmenter.pt")["model"])


def test_members_are_checked_and_a_trainer_trains_one_network(seg_data_dir):
    for bad in (0, 9, 1.5, True):
        with pytest.raises(ValueError, match="members"):
            SegmenterConfig(members=bad)
    patients = read_dataset(seg_data_dir)
    with pytest.raises(ValueError, match="one segmenter"):
        SegmenterTrainer(PAIR, training_slices(patients, PAIR), [], seed=0)
    assert segmenter_preset("standard").members == 2


def test_members_flag_is_recorded_and_refused_out_of_range(seg_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(out), "--preset", "tiny",
                 "--steps", "1", "--members", "2"]) == 0
    assert "ensemble of 2 segmenters" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["config"]["members"] == 2
    model, _ = load_segmenter(out / "segmenter.pt")
    assert isinstance(model, SegmenterEnsemble) and len(model.members) == 2
    pred = tmp_path / "pred"
    assert main(["segment", "--model", str(out / "segmenter.pt"), "--data", str(seg_data_dir), "--out",
                 str(pred)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(tmp_path / "x"), "--preset", "tiny",
              "--members", "0"])
    assert "--members: 0 is out of range" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_resume_refuses_another_member_count_or_seed(pair_run, seg_data_dir, tmp_path):
    _, ensemble = pair_run
    single = tmp_path / "single"
    train_segmenter([seg_data_dir], single, TEST_CONFIG, seed=0, progress=False)
    before = read_checkpoint(ensemble / "segmenter.pt")["model"]
    for out, config, seed, message in ((single, PAIR, 0, "has 1 member"), (ensemble, TEST_CONFIG, 4, "has 2 member"),
                                       (ensemble, replace(PAIR, members=3), 4, "has 2 member"),
                                       (ensemble, PAIR, 5, "--seed 4")):
        with pytest.raises(ClaimError, match=message):
            train_segmenter([seg_data_dir], out, config, seed=seed, progress=False, resume=True)
    assert not (single / "member0").exists()
    _same_weights(read_checkpoint(ensemble / "segmenter.pt")["model"], before)  # nothing was written over


def test_a_saved_ensemble_config_trains_the_same_ensemble_again(seg_data_dir, tmp_path):
    first, again = tmp_path / "a", tmp_path / "b"
    assert main(["train-segmenter", "--data", str(seg_data_dir), "--out", str(first), "--preset", "tiny",
                 "--steps", "2", "--members", "2", "--seed", "7"]) == 0
    assert main(["train-segmenter", "-c", str(first / "config.json"), "--out", str(again)]) == 0
    saved = json.loads((again / "config.json").read_text())
    assert saved["config"]["members"] == 2 and saved["member_seeds"] == [7, 8] and saved["precision"] == "fp32"
    # How many members ran at once depends on the machine: the saved run records it, and -c does not impose it.
    assert saved["member_workers_requested"] is None and saved["member_workers"] == 1
    _same_weights(read_checkpoint(first / "segmenter.pt")["model"], read_checkpoint(again / "segmenter.pt")["model"])


def test_members_trained_at_once_in_workers_equal_the_members_trained_in_turn(pair_run, seg_data_dir, tmp_path):
    _, in_turn = pair_run  # trained one after another in this process, with one thread
    out = tmp_path / "at_once"
    with torch_threads(2):  # the default then trains both members at once, in two workers of one thread each
        result = train_segmenter([seg_data_dir], out, PAIR, seed=4, progress=False)
    saved = json.loads((out / "config.json").read_text())
    assert saved["member_workers"] == 2 and saved["member_threads"] == 1
    for k in range(2):
        _same_weights(read_checkpoint(member_dir(out, k) / "segmenter.pt")["model"],
                      read_checkpoint(member_dir(in_turn, k) / "segmenter.pt")["model"])
    _same_weights(read_checkpoint(out / "segmenter.pt")["model"], read_checkpoint(in_turn / "segmenter.pt")["model"])
    assert result.best_metrics == pytest.approx(read_checkpoint(in_turn / "segmenter.pt")["best"]["metrics"],
                                                nan_ok=True)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e.get("member") for e in log] == [0, 1, None] and all(e["seconds"] > 0 for e in log)


def test_a_member_failing_in_a_worker_is_one_error_after_the_other_member_finished(pair_run, seg_data_dir,
                                                                                     tmp_path, caplog):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(pair_run[1], out)
    before = read_checkpoint(out / "segmenter.pt")["model"]
    (member_dir(out, 0) / "last.pt").write_bytes(b"not a checkpoint")  # member 0 cannot resume; member 1 can
    with torch_threads(2), pytest.raises(ClaimError, match="member0") as caught:
        train_segmenter([seg_data_dir], str(out), replace(PAIR, steps=PAIR.steps + 1), seed=4, progress=False,
                        resume=True, member_workers=2)  # a str, as the CLI passes it
    assert "\n" not in str(caught.value)
    assert read_checkpoint(member_dir(out, 1) / "last.pt")["step"] == PAIR.steps + 1  # ran beside the failure
    _same_weights(read_checkpoint(out / "segmenter.pt")["model"], before)  # the ensemble is not rewritten
    # The members started in turn with one thread each and resumed in two workers of one thread: the same
    # computation, so no warning; with two threads each they would not be.
    assert "resuming the members" not in caplog.text
    assert json.loads((out / "config.json").read_text())["member_workers_requested"] == 2


def test_a_resume_with_another_thread_count_per_member_warns(pair_run, seg_data_dir, tmp_path, caplog):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(pair_run[1], out)  # members trained with one thread each
    with torch_threads(2):  # in turn, so each member now gets both threads
        train_segmenter([seg_data_dir], out, PAIR, seed=4, progress=False, resume=True, member_workers=1)
    assert "resuming the members with 2 torch thread(s) each, where the run started with 1" in caplog.text
    assert json.loads((out / "config.json").read_text())["member_threads"] == 2


def test_member_workers_default_to_the_cpu_threads_and_never_run_under_accelerate_launch():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with torch_threads(2):
        assert _member_workers(None, 2, cpu, 1) == 2 and _member_workers(None, 3, cpu, 1) == 2
        assert _member_workers(None, 2, cuda, 1) == 1 and _member_workers(None, 2, cpu, 2) == 1
        assert _member_workers(4, 2, cpu, 1) == 2 and _member_workers(1, 2, cpu, 1) == 1
    with torch_threads(1):
        assert _member_workers(None, 2, cpu, 1) == 1
    with pytest.raises(ClaimError, match="accelerate launch"):
        _member_workers(2, 2, cpu, 2)
    for bad in (0, "2", True, 1.0):
        with pytest.raises(ClaimError, match="--member-workers must be an integer >= 1"):
            train_segmenter([], "unused", PAIR, member_workers=bad)
