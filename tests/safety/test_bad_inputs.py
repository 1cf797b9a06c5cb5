"""Every row of the data-safety table: what used to overwrite, poison or crash, and what happens now."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from claim.data.layouts import read_dataset
from claim.output import MANIFEST_NAME
from claim.training.checkpoint import HASH_KEY
from tests.safety.conftest import copy_tree, flip_bytes, png_copy, run_cli, snapshot


def test_segment_never_writes_over_ground_truth(world, tmp_path, capsys):
    gt = copy_tree(world.emidec, tmp_path / "gt")
    (gt / MANIFEST_NAME).unlink()  # a user's labelled folder: claim never wrote it
    before = snapshot(gt)
    code, err = run_cli(["segment", "--model", world.segmenter, "--data", world.emidec, "--out", gt], capsys)
    assert code == 2 and "claim did not write" in err
    assert snapshot(gt) == before  # not one label pixel replaced
    # --overwrite replaces claim's own output only, never the user's files.
    code, err = run_cli(["segment", "--model", world.segmenter, "--data", world.emidec, "--out", gt, "--overwrite"],
                        capsys)
    assert code == 2 and snapshot(gt) == before


def test_16_bit_png_sources_round_trip(world, tmp_path, capsys):
    out = tmp_path / "synthetic"
    code, _ = run_cli(["generate", "--model", world.generator, "--data", world.png16, "--masks", world.masks16,
                       "--out", out, "--sampler", "ddim:3", "--limit", "2"], capsys)
    assert code == 0
    entries = json.loads((out / "generation.json").read_text())
    painted = changed = saturated = 0
    for entry in entries:
        with Image.open(out / entry["image"]) as img:
            synthetic = np.asarray(img)
        with Image.open(entry["source_image"]) as img:
            source = np.asarray(img)
        assert synthetic.dtype == np.uint16 == source.dtype  # kept at 16 bits, not clipped to 0..255
        diff = synthetic != source
        changed += int(diff.sum())
        painted += int(diff.any())
        saturated += int((synthetic[diff] >= 255).sum() if source.max() <= 255 else (synthetic[diff] == 65535).sum())
        assert synthetic.max() <= 2 * max(int(source.max()), 1)  # the source's intensity range, not 8-bit's
    assert painted and changed
    assert saturated / changed < 0.05


@pytest.mark.parametrize("kind", ["generator", "segmenter"])
def test_corrupted_checkpoints_are_refused(world, tmp_path, capsys, kind):
    broken = flip_bytes(shutil.copy(getattr(world, kind), tmp_path / f"{kind}.pt"))
    if kind == "generator":
        args = ["generate", "--model", broken, "--data", world.png, "--masks", world.masks, "--out", tmp_path / "o"]
    else:
        args = ["segment", "--model", broken, "--data", world.emidec, "--out", tmp_path / "o"]
    code, err = run_cli(args, capsys)
    assert code == 2 and broken.name in err
    assert "hash" in err or "not a readable" in err
    assert not (tmp_path / "o").exists()


def test_resume_from_a_corrupted_checkpoint_is_refused(world, tmp_path, capsys):
    run = copy_tree(world.generator.parent, tmp_path / "run")
    flip_bytes(run / "generator.pt", seed=3)
    code, err = run_cli(["train-generator", "--data", world.emidec, "--out", run, "--preset", "tiny", "--steps", "4",
                         "--resume"], capsys)
    assert code == 2 and "generator.pt" in err


def test_non_finite_weights_and_empty_centres_are_refused(world, tmp_path, capsys):
    payload = torch.load(world.generator, weights_only=False)
    name = next(iter(payload["ema"]))
    payload["ema"][name] = payload["ema"][name] * float("nan")
    payload.pop(HASH_KEY)
    torch.save(payload, tmp_path / "nan.pt")
    payload = torch.load(world.generator, weights_only=False)
    payload["hist_centres"] = []
    payload.pop(HASH_KEY)
    torch.save(payload, tmp_path / "empty.pt")
    for name, expected in (("nan.pt", "non-finite"), ("empty.pt", "histogram centres")):
        code, err = run_cli(["generate", "--model", tmp_path / name, "--data", world.png, "--masks", world.masks,
                             "--out", tmp_path / "o"], capsys)
        assert code == 2 and expected in err and name in err


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--guidance", "nan", "not a finite number"),
    ("--limit", "-1", "out of range"),
    ("--sampler", "ddim:1000", "diffusion steps"),
])
def test_generate_flags_are_checked(world, tmp_path, capsys, flag, value, expected):
    code, err = run_cli(["generate", "--model", world.generator, "--data", world.png, "--masks", world.masks,
                         "--out", tmp_path / "o", flag, value], capsys)
    assert code == 2 and expected in err and (flag in err or value in err)
    assert not (tmp_path / "o").exists()


def test_negative_steps_write_no_checkpoint(world, tmp_path, capsys):
    code, err = run_cli(["train-generator", "--data", world.emidec, "--out", tmp_path / "run", "--steps", "-5"], capsys)
    assert code == 2 and "--steps" in err and not (tmp_path / "run").exists()


def test_generation_json_records_what_ran(world, tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert run_cli(["generate", "--model", world.generator, "--data", world.png, "--masks", world.masks, "--out", out,
                    "--sampler", "ddim:4", "--seed", "3", "--guidance", "1.5"], capsys)[0] == 0
    entry = json.loads((out / "generation.json").read_text())[0]
    assert entry["seed"] == 3 and entry["guidance"] == 1.5 and entry["sampler_run"] == "ddim:4"
    assert entry["nfe_per_batch"] == 4 * 2  # guidance != 1 evaluates the network twice per step
    assert entry["model"] == str(world.generator) and len(entry["model_sha256"]) == 64
    assert entry["claim_version"]


def test_default_checkpoint_cadence_leaves_something_to_resume(world, tmp_path, capsys):
    from claim.training import default_checkpoint_every

    assert default_checkpoint_every(400) == 100 and default_checkpoint_every(2000) == 500
    assert default_checkpoint_every(3) == 1
    run = tmp_path / "run"
    assert run_cli(["train-generator", "--data", world.emidec, "--out", run, "--preset", "tiny", "--steps", "8"],
                   capsys)[0] == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["checkpoint_every"] == 2


@pytest.mark.parametrize("command", ["masks", "generate", "aha", "segment"])
def test_rerun_into_a_used_out_is_refused_or_replaces_whole(world, tmp_path, capsys, command):
    out = tmp_path / "out"
    base = {
        "masks": ["masks", "--data", world.png, "--out", out],
        "generate": ["generate", "--model", world.generator, "--data", world.png, "--masks", world.masks, "--out", out,
                     "--sampler", "ddim:2"],
        "aha": ["aha", "--data", world.png, "--out", out],
        "segment": ["segment", "--model", world.segmenter, "--data", world.png, "--out", out],
    }[command]
    first = {"masks": ["--per-patient", "2"], "generate": [], "aha": [], "segment": []}[command]
    second = {"masks": ["--seed", "9"], "generate": ["--limit", "1"], "aha": ["--no-bullseye"], "segment": []}[command]
    assert run_cli(base + first, capsys)[0] == 0
    before = snapshot(out)
    code, err = run_cli(base + second, capsys)
    assert code == 2 and "--overwrite" in err and snapshot(out) == before
    assert run_cli(base + second + ["--overwrite"], capsys)[0] == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    assert manifest["files"] == on_disk  # nothing of the first run is left
    if command == "generate":
        listed = {e["image"] for e in json.loads((out / "generation.json").read_text())}
        assert {f for f in on_disk if f.startswith("images/")} == listed


def test_study_with_changed_data_is_refused(tmp_path, capsys):
    from claim.experiment.config import experiment_preset
    from claim.experiment.split import split_dataset
    from claim.experiment.study import run_experiment
    from claim.phantom import write_phantom_cohort
    from tests.conftest import SMALL

    write_phantom_cohort(tmp_path / "phantom", 6, seed=2, config=SMALL, progress=False)
    split_dataset(tmp_path / "phantom", tmp_path / "split", test_pathological=1, test_normal=1, seed=0)
    study = tmp_path / "study"
    preset = experiment_preset("smoke")
    # A finished stage is enough to show reuse: run, then remove a test patient and try again.
    run_experiment(tmp_path / "split/train", tmp_path / "split/test", study, preset, threads=1, progress=False)
    removed = sorted(p for p in (tmp_path / "split/test").iterdir() if p.is_dir())[0]
    shutil.rmtree(removed)
    code, err = run_cli(["experiment", "--train-data", tmp_path / "split/train", "--test-data",
                         tmp_path / "split/test", "--out", study, "--preset", "smoke", "--threads", "1"], capsys)
    assert code == 2 and "data" in err and "--overwrite" in err


def test_resume_with_other_data_is_refused(world, tmp_path, capsys):
    run = copy_tree(world.generator.parent, tmp_path / "run")
    other = copy_tree(world.emidec, tmp_path / "other")
    case = sorted(p for p in other.iterdir() if p.is_dir())[0]
    shutil.rmtree(case)
    code, err = run_cli(["train-generator", "-c", run / "config.json", "--data", other, "--out", run, "--steps", "4",
                         "--resume"], capsys)
    assert code == 2 and "different data" in err


def test_filesystem_problems_are_one_line(world, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["aha", "--data", world.png, "--out", a_file], "existing file"),
        (["aha", "--data", world.png, "--out", a_file / "sub"], "Not a directory"),
        (["aha", "--data", world.png, "--out", "/sys/claim-test-out"], "/sys/claim-test-out: cannot create"),
    ]
    for args, expected in cases:
        code, err = run_cli(args, capsys)
        assert code in (1, 2) and expected in err, (args, err)
    immutable = tmp_path / "immutable"
    immutable.mkdir()
    if subprocess.run(["chattr", "+i", str(immutable)], capture_output=True).returncode == 0:
        try:
            code, err = run_cli(["aha", "--data", world.png, "--out", immutable / "out"], capsys)
            assert code == 2 and "immutable/out: cannot create the output folder" in err
        finally:
            subprocess.run(["chattr", "-i", str(immutable)], check=False)


@pytest.mark.parametrize(("args", "expected"), [
    (["--batch-size", "0"], "--batch-size"),
    (["--val-every", "0"], "--val-every"),
    (["--synthetic-fraction", "1.5"], "--synthetic-fraction"),
])
def test_segmenter_flags_are_checked(world, tmp_path, capsys, args, expected):
    code, err = run_cli(["train-segmenter", "--data", world.emidec, "--out", tmp_path / "run", *args], capsys)
    assert code == 2 and expected in err


@pytest.mark.parametrize(("content", "expected"), [
    ([1, 2, 3], "JSON object"),
    ("nan", "finite shares"),
    ("short", "needs 21 values"),
])
def test_bad_priors_are_refused(world, tmp_path, capsys, content, expected):
    from claim.smile.prior import default_prior

    record = default_prior().to_json()
    if content == "nan":
        record["burden_quantiles"][3] = float("nan")
    elif content == "short":
        record["burden_quantiles"] = record["burden_quantiles"][:5]
    else:
        record = content
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps(record))
    joint = ["train-joint", "--data", world.emidec, "--out", tmp_path / "j", "--preset", "tiny", "--prior", prior]
    for args in (["masks", "--data", world.png, "--out", tmp_path / "m", "--prior", prior], joint):
        code, err = run_cli(args, capsys)
        assert code == 2 and expected in err and "prior.json" in err


def test_fit_prior_never_overwrites_and_outputs_are_not_private(world, tmp_path, capsys):
    target = tmp_path / "notes.json"
    target.write_text("my notes")
    code, err = run_cli(["masks", "--fit-prior", world.png, "-o", target], capsys)
    assert code == 2 and "--overwrite" in err and target.read_text() == "my notes"
    assert run_cli(["masks", "--fit-prior", world.png, "-o", tmp_path / "prior.json"], capsys)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "prior.json", world.masks / "masks.json", world.masks / MANIFEST_NAME):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_files_without_slice_names_are_reported(world, tmp_path, capsys, caplog):
    data = tmp_path / "flat"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for k, path in enumerate(sorted((world.png / "images").glob("*.png"))[:3]):
        shutil.copy(path, data / "images" / f"foo{k}.png")
        labels = np.asarray(Image.open(world.png / "labels" / path.name))
        if k == 0:
            labels = np.where(labels == 1, 2, labels).astype(np.uint8)  # no cavity: no orientation can be found
        Image.fromarray(labels).save(data / "labels" / f"foo{k}.png")
    with caplog.at_level("WARNING"):
        patients = read_dataset(data)
    assert len(patients) == 3 and "lack '_slice<k>'" in caplog.text and "one-slice patient" in caplog.text
    for command in ("aha", "masks"):
        code, err = run_cli([command, "--data", data, "--out", tmp_path / command], capsys)
        assert code == 2 and "patient foo0" in err and "foo0.png" in err, err


def test_readers_skip_staging_and_temporary_files(world, tmp_path):
    data = png_copy(read_dataset(world.emidec)[:1], tmp_path / "data")
    (data / "images" / ".tmp-broken-x.png").write_bytes(b"half a png")
    (tmp_path / ".data.claim-staging").mkdir()
    assert len(read_dataset(data)) == 1


def test_a_full_disk_is_one_line_and_leaves_no_output(world, tmp_path, capsys, monkeypatch):
    import errno

    import claim.output

    def full(path, *_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(claim.output, "write_json", full)
    out = tmp_path / "out"
    code, err = run_cli(["aha", "--data", world.png, "--out", out], capsys)
    assert code == 1 and "No space left on device" in err and ".claim-output.json" in err
    assert not out.exists() and not any(tmp_path.iterdir())  # the staging folder is gone too
