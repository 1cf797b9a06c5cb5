"""`claim augment`: one command from a labelled folder to real + synthetic patients; ownership, resume, nnU-Net."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from scipy import ndimage

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.write import write_patient
from claim.errors import ClaimError, InputError
from claim.generator.inpaint import KEEP_DISTANCE_PX
from claim.labels import infarct_mask
from claim.phantom import write_phantom_cohort
from claim.stages.augment import AUGMENT_FILE, PREVIEW_FILE, AugmentConfig, run_augment
from claim.training.checkpoint import HASH_KEY, save_checkpoint
from tests.conftest import EMIDEC_SLICES, SMALL

# A seconds-long budget: the tiny generator for 3 steps, a 2-call sampler.
FAST = AugmentConfig(generator_preset="tiny", generator_steps=3, sampler="ddim:2", per_patient=2)


def _digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_phantom_cohort(root, 4, seed=11, config=SMALL, progress=False)  # 2 normal, 2 pathological (EMIDEC)
    return root


@pytest.fixture(scope="module")
def augmented(cohort, tmp_path_factory):
    before = _digest(cohort)
    out = tmp_path_factory.mktemp("aug") / "out"
    result = run_augment(cohort, out, FAST, progress=False)
    assert _digest(cohort) == before  # inputs are never modified
    return result


def test_output_holds_real_and_synthetic_patients_in_the_input_layout(cohort, augmented):
    out = augmented.out_dir
    real = {p.patient_id: p for p in read_dataset(cohort)}
    written = {p.patient_id: p for p in read_dataset(out)}
    normals = sorted(pid for pid, p in real.items() if not p.has_infarct)
    synthetic = {f"{pid}_smile{k}" for pid in normals for k in (1, 2)}
    assert set(written) == set(real) | synthetic
    assert (augmented.n_real, augmented.n_synthetic) == (4, 4)
    # Real patients are copied byte for byte.
    for pid in real:
        for sub in ("Images", "Contours"):
            name = f"{pid}/{sub}/{pid}.nii.gz"
            assert (out / name).read_bytes() == (cohort / name).read_bytes()
    for case in augmented.record["synthetic_cases"]:
        source, patient = real[case["source_patient"]], written[case["id"]]
        scar = infarct_mask(patient.label_maps)
        assert scar.any() and not infarct_mask(source.label_maps).any()
        assert case["id"].startswith(case["source_patient"] + "_smile")
        far = np.stack([ndimage.distance_transform_edt(~s) > KEEP_DISTANCE_PX for s in scar])
        np.testing.assert_array_equal(patient.images[far], source.images[far])  # painted only near the scar
        assert not np.array_equal(patient.images[scar], source.images[scar])
        assert all((out / f).is_file() for f in case["files"])
        assert case["mask"]["pattern"] == "ischemic" and 0 < case["mask"]["achieved_burden"] < 1


def test_record_names_model_prior_sampler_and_seeds(augmented):
    record = json.loads((augmented.out_dir / AUGMENT_FILE).read_text())
    model = augmented.out_dir / record["model"]["path"]
    assert record["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert record["model"]["trained_here"] and record["model"]["step"] == 3
    # Two pathological patients are too few to fit a prior: the shipped one is used, and said so.
    assert not record["prior"]["fitted_on_data"] and record["prior"]["n_patients"] > 2
    assert record["sampler"] == {"name": "ddim:2", "nfe_per_image": 2}
    seeds = sorted(tuple(c["mask"]["seed"]) for c in record["synthetic_cases"])
    assert seeds == [(0, 0, 1), (0, 0, 2), (0, 1, 1), (0, 1, 2)]
    # The generator trained here stores its centres' scan levels: every canvas gets a condition that suits it.
    assert {c["hist_rule"] for c in record["synthetic_cases"]} == {"matched"}
    assert (augmented.out_dir / PREVIEW_FILE).is_file() and record["preview"] == PREVIEW_FILE


def test_same_model_and_seed_give_the_same_files(cohort, augmented, tmp_path):
    model = augmented.out_dir / augmented.record["model"]["path"]
    again = run_augment(cohort, tmp_path / "again", FAST, model=model, progress=False)
    for case in augmented.record["synthetic_cases"]:
        for name in case["files"]:
            assert (again.out_dir / name).read_bytes() == (augmented.out_dir / name).read_bytes()


def test_refuses_foreign_or_existing_outputs(cohort, augmented, tmp_path):
    with pytest.raises(InputError, match="inside the input"):
        run_augment(cohort, cohort / "out", FAST, progress=False)
    foreign = tmp_path / "users_folder"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        run_augment(cohort, foreign, FAST, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    with pytest.raises(ClaimError, match="--resume"):
        run_augment(cohort, augmented.out_dir, FAST, progress=False)
    with pytest.raises(ClaimError, match="per_patient: 2 -> 3"):
        run_augment(cohort, augmented.out_dir, FAST.replace(per_patient=3), resume=True, progress=False)


def test_resume_finishes_an_interrupted_run_with_the_same_files(cohort, augmented, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(augmented.out_dir, out)
    # Interrupt after the first painted patient: the second shard, the final files and the record are gone.
    work = out / ".claim-augment"
    (work / "painted" / "generation_shard1of2.json").unlink()
    (out / AUGMENT_FILE).unlink()
    for case in augmented.record["synthetic_cases"]:
        shutil.rmtree(out / case["id"])
    result = run_augment(cohort, out, FAST, resume=True, progress=False)
    assert result.n_synthetic == 4
    for case in augmented.record["synthetic_cases"]:
        for name in case["files"]:
            assert (out / name).read_bytes() == (augmented.out_dir / name).read_bytes()


def test_resume_after_an_interruption_past_training_gives_the_same_files(cohort, augmented, tmp_path, monkeypatch):
    import claim.stages.augment as stage

    out = tmp_path / "out"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(stage, "_draw_masks", stop)
        with pytest.raises(KeyboardInterrupt):
            run_augment(cohort, out, FAST, progress=False)
    checkpoint = out / ".claim-augment" / "generator" / "generator.pt"
    assert checkpoint.is_file() and not (out / AUGMENT_FILE).exists()
    trained = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    result = run_augment(cohort, out, FAST, resume=True, progress=False)
    assert result.record["model"]["sha256"] == trained  # trained once, not again
    for case in augmented.record["synthetic_cases"]:
        for name in case["files"]:
            assert (out / name).read_bytes() == (augmented.out_dir / name).read_bytes()


def test_refuses_a_missing_model_and_a_changed_resume(cohort, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="not found"):  # stops before anything is written
        run_augment(cohort, out, FAST, model=tmp_path / "missing.pt", progress=False)
    assert not out.exists()
    first = run_augment(cohort, out, FAST.replace(generator_steps=2, per_patient=1), progress=False)
    assert first.record["model"]["step"] == 2
    with pytest.raises(ClaimError, match="generator_steps: 2 -> 3"):
        run_augment(cohort, out, FAST.replace(per_patient=1), resume=True, progress=False)


def test_precision_auto_follows_the_hardware_and_every_step_records_what_ran(cohort, tmp_path, monkeypatch):
    # augment trained and painted in fp32 whatever the machine; auto now takes bf16 where it is fast.
    import claim.runtime

    config = FAST.replace(per_patient=1)
    monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda: False)  # a CPU without fast bf16
    with pytest.raises(ClaimError, match="--precision bf16: cpu here has no fast bf16"):
        run_augment(cohort, tmp_path / "refused", config.replace(precision="bf16"), progress=False)
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    for fast_bf16, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda fast=fast_bf16: fast)
        out = tmp_path / expected
        result = run_augment(cohort, out, config, progress=False)
        assert result.record["precision"] == expected and result.record["config"]["precision"] == "auto"
        work = out / ".claim-augment"
        assert json.loads((work / "generator" / "config.json").read_text())["precision"] == expected
        painted = [json.loads(f.read_text()) for f in (work / "painted").glob("generation_shard*.json")]
        assert painted and all(r["precision"] == expected for records in painted for r in records)


def test_a_run_begun_before_precision_existed_resumes_as_the_fp32_run_it_was(cohort, tmp_path, monkeypatch):
    import claim.runtime

    out = tmp_path / "old"
    config = FAST.replace(per_patient=1, precision="fp32")
    run_augment(cohort, out, config, progress=False)
    record = out / ".claim-augment" / "run.json"
    saved = json.loads(record.read_text())
    del saved["settings"]["precision"]  # as an earlier version wrote it
    record.write_text(json.dumps(saved))
    del saved["settings"]["precision_run"]
    record.write_text(json.dumps(saved))
    # What matters is the precision that runs: auto resumes it where auto resolves to fp32, and is refused elsewhere.
    monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda: True)
    with pytest.raises(ClaimError, match="precision_run: 'fp32' -> 'bf16'"):
        run_augment(cohort, out, config.replace(precision="auto"), resume=True, progress=False)
    monkeypatch.setattr(claim.runtime, "_cpu_has_bf16", lambda: False)
    assert run_augment(cohort, out, config.replace(precision="auto"), resume=True,
                       progress=False).record["precision"] == "fp32"
    assert run_augment(cohort, out, config, resume=True, progress=False).record["precision"] == "fp32"


def test_a_segmenter_trained_on_the_output_validates_on_real_patients_only(cohort, augmented, tmp_path):
    # Before, augment's synthetic patients were ordinary patients of the folder: they could be drawn for validation,
    # and a validation patient's own painted copies trained.
    from claim.segmentation.patients import split_patients
    from claim.segmentation.train import train_segmenter
    from tests.segmentation.conftest import TEST_CONFIG

    config = TEST_CONFIG.replace(steps=1, val_fraction=0.5)
    real = read_dataset(cohort)
    normal = sorted(p.patient_id for p in real if not p.has_infarct)
    synthetic = {c["id"]: c["source_patient"] for c in augmented.record["synthetic_cases"]}
    for seed in range(4):
        run = tmp_path / f"seed{seed}"
        train_segmenter([augmented.out_dir], run, config, seed=seed, progress=False)
        described = json.loads((run / "config.json").read_text())
        # The split is the one the folder had before it was augmented.
        assert described["val_patients"] == [p.patient_id for p in split_patients(real, 0.5, seed)[1]]
        assert set(described["train_patients"]) == {p.patient_id for p in real} - set(described["val_patients"])
        left_out = sorted(k for k, source in synthetic.items() if source in described["val_patients"])
        assert described["augment_synthetic_left_out"] == left_out
        assert described["augment_synthetic"] == sorted(set(synthetic) - set(left_out))
        assert described["n_synthetic_slices"] == sum(p.n_slices for p in read_dataset(augmented.out_dir)
                                                      if p.patient_id in described["augment_synthetic"])
    with pytest.raises(ClaimError, match=r"validation patients \['Phantom_N001_smile1'\] are synthetic"):
        train_segmenter([augmented.out_dir], tmp_path / "named", config, val_patients=[f"{normal[0]}_smile1"],
                        progress=False)
    # Given as --synthetic, its copied real patients (validation ones too) would train as synthetic.
    with pytest.raises(InputError, match="pass it as --data"):
        train_segmenter([cohort], tmp_path / "as_synthetic", config, synthetic_dirs=[augmented.out_dir],
                        progress=False)
    with pytest.raises(ClaimError, match="in a --data folder and a --synthetic folder"):
        train_segmenter([cohort], tmp_path / "twice", config, synthetic_dirs=[cohort], progress=False)
    # A run begun by a version that trained augment's synthetic patients as real ones is not resumed as this one.
    run = tmp_path / "seed0"
    payload = torch.load(run / "last.pt", weights_only=False)
    del payload["augment_synthetic"], payload[HASH_KEY]
    save_checkpoint(run / "last.pt", payload)
    with pytest.raises(ClaimError, match="treated claim augment's synthetic patients otherwise"):
        train_segmenter([augmented.out_dir], run, config.replace(steps=2), seed=0, progress=False, resume=True)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(augmented.out_dir, unfinished)
    (unfinished / AUGMENT_FILE).unlink()
    with pytest.raises(InputError, match="unfinished claim augment output"):
        train_segmenter([unfinished], tmp_path / "u", config, progress=False)


def test_split_and_the_study_refuse_an_augmented_folder_in_one_line(cohort, augmented, tmp_path, capsys):
    # Its synthetic patients would reach the test side, and its generator has seen the would-be test patients.
    out = augmented.out_dir
    for args in (["split", "--data", str(out), "-o", str(tmp_path / "split"), "--test-pathological", "1",
                  "--test-normal", "1"],
                 ["experiment", "--train-data", str(out), "--test-data", str(cohort), "--out", str(tmp_path / "s"),
                  "--preset", "smoke"],
                 ["experiment", "--train-data", str(out), "--folds", "2", "--out", str(tmp_path / "cv"),
                  "--preset", "smoke"],
                 ["train-generator", "--data", str(out), "-o", str(tmp_path / "g"), "--preset", "tiny"],
                 ["train-joint", "--data", str(out), "-o", str(tmp_path / "j"), "--preset", "tiny"],
                 ["augment", "--data", str(out), "-o", str(tmp_path / "a")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{out}: a claim augment output (real and synthetic patients)" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not any((tmp_path / name).exists() for name in ("split", "s", "cv", "g", "j", "a"))


def test_cli_one_line_errors_and_summary(cohort, augmented, tmp_path, capsys):
    model = str(augmented.out_dir / augmented.record["model"]["path"])
    with pytest.raises(SystemExit) as exc:  # a flag out of range: argparse's exit 2, one line
        main(["augment", "--data", str(cohort), "-o", str(tmp_path / "o"), "--per-patient", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--per-patient" in err and len(err.strip().splitlines()) == 1
    code = main(["augment", "--data", str(cohort), "-o", str(tmp_path / "cli"), "--model", model,
                 "--per-patient", "1", "--sampler", "dpm2:2", "--threads", "1"])
    assert code == 0
    assert "4 real + 2 synthetic patients (dpm2:2, " in capsys.readouterr().out


def test_mvo_channel_by_default_and_runs_recorded_before_it_resume_without_it(cohort, augmented, tmp_path, capsys):
    # Without the channel the generator cannot tell MVO from scar and paints both alike; with it (the default), MVO
    # is its own context channel. A run recorded before the option existed resumes as the run without it.
    work = augmented.out_dir / ".claim-augment"
    assert json.loads((work / "generator" / "config.json").read_text())["config"]["mvo_channel"] is True
    assert augmented.record["config"]["mvo_channel"] is None and augmented.record["model"]["mvo_channel"] is True
    out = tmp_path / "plain"
    plain = run_augment(cohort, out, FAST.replace(per_patient=1, mvo_channel=False), progress=False)
    assert plain.record["model"]["mvo_channel"] is False

    def as_recorded_before_the_option(folder):
        record = folder / ".claim-augment" / "run.json"
        saved = json.loads(record.read_text())
        for key in ("mvo_channel", "mvo_channel_run"):
            del saved["settings"][key]
        record.write_text(json.dumps(saved))

    as_recorded_before_the_option(out)
    with pytest.raises(ClaimError, match=r"mvo_channel_run: False -> True\); pass the run.s values"):
        run_augment(cohort, out, FAST.replace(per_patient=1), resume=True, progress=False)
    assert run_augment(cohort, out, FAST.replace(per_patient=1, mvo_channel=False), resume=True,
                       progress=False).record["model"]["mvo_channel"] is False
    # A model brings its own channels: asking for or against one with --model is refused before anything is written,
    # and a run painted with a model before the option existed resumes as it was.
    model = str(augmented.out_dir / augmented.record["model"]["path"])
    for flag in ("--mvo-channel", "--no-mvo-channel"):
        assert main(["augment", "--data", str(cohort), "-o", str(tmp_path / "m"), "--model", model, flag]) == 2
        err = capsys.readouterr().err
        assert "--mvo-channel" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    with pytest.raises(ClaimError, match="--mvo-channel"):
        run_augment(cohort, tmp_path / "m", FAST.replace(mvo_channel=True), model=model, progress=False)
    assert not (tmp_path / "m").exists()
    given = tmp_path / "given"
    args = ["augment", "--data", str(cohort), "-o", str(given), "--model", model, "--per-patient", "1",
            "--sampler", "ddim:2", "--threads", "1"]
    assert main(args) == 0
    as_recorded_before_the_option(given)
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    assert json.loads((given / "augment.json").read_text())["model"]["mvo_channel"] is True


@pytest.mark.slow  # trains a tiny generator, imports nnU-Net and runs its dataset check
@pytest.mark.realdata
def test_nnunet_output_of_real_slices_passes_nnunet_check(tmp_path):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    patients = read_dataset(EMIDEC_SLICES)
    chosen = [p for p in patients if "_N" in p.patient_id][:2] + [p for p in patients if "_P" in p.patient_id][:3]
    source = tmp_path / "real"
    for patient in chosen:
        write_patient(patient, source)
    out = tmp_path / "Dataset504_Augmented"
    result = run_augment(source, out, FAST.replace(output_format="nnunet", per_patient=1), progress=False)
    assert result.record["prior"]["fitted_on_data"]  # three patients with scar: the prior is fitted on them
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["numTraining"] == 7 == len(list((out / "imagesTr").glob("*_0000.nii.gz")))
    assert {p.patient_id for p in read_dataset(out)} >= {f"{p.patient_id}_smile1" for p in chosen[:2]}
    verify.verify_dataset_integrity(str(out), num_processes=1)


def test_orientation_is_validated_and_changes_the_masks(cohort, augmented, tmp_path):
    with pytest.raises(ClaimError, match="orientation"):
        FAST.replace(orientation="north")
    model = augmented.out_dir / augmented.record["model"]["path"]
    run_augment(cohort, tmp_path / "turned", FAST.replace(orientation="angle:150", per_patient=1),
                         model=model, progress=False)
    plain = run_augment(cohort, tmp_path / "plain", FAST.replace(per_patient=1), model=model, progress=False)
    labels = [name for case in plain.record["synthetic_cases"] for name in case["files"] if "Contours" in name
              or "labels" in name]
    assert labels and any((tmp_path / "turned" / n).read_bytes() != (tmp_path / "plain" / n).read_bytes()
                          for n in labels)
