"""``claim augment``: a user's labelled folder in, the same dataset plus synthetic scar patients out, in one command.

The stage chains what the other stages do, each step resumable inside ``OUT/.claim-augment/``:

1. ``generator/``: without ``--model``, the default generator trained on the folder's scar slices
   (``claim.generator.train.train_generator``, checkpoints every 250 steps);
2. ``prior.json``: the SMILE prior fitted on the folder's real scars (``claim.stages.masks.fit_prior_from_folder``),
   or the shipped EMIDEC prior when fewer than ``min_fit_patients`` patients have scar;
3. ``masks/``: ``per_patient`` SMILE masks on every normal patient (``claim.stages.masks.write_mask``);
4. ``painted/``: the masks painted by ``claim.stages.generate.generate_scars``, one shard per normal patient (a
   shard's record file marks it done);
5. ``OUT`` itself: the real patients (copied byte for byte, or converted to nnU-Net v2 raw) and the synthetic ones,
   ``preview.png`` and ``augment.json`` (written last: its presence means the run is complete).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from claim import __version__
from claim.aha.config import AhaConfig, geometry_for
from claim.aha.orientation import parse_orientation
from claim.aha.segments import Handedness
from claim.config import Config
from claim.data.augmented import AUGMENT_FILE, AUGMENT_WORK_DIR, refuse_augmented
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import (
    check_output_location,
    write_nnunet_dataset_json,
)
from claim.errors import ClaimError, InputError
from claim.generator.checkpoint import load_generator
from claim.generator.config import PRESETS, preset_config
from claim.generator.sampling import parse_sampler
from claim.generator.train import train_generator
from claim.output import OutputFolder, file_sha256, fingerprint, write_manifest
from claim.runtime import PRECISIONS, resolve_precision
from claim.smile.prior import Prior, default_prior, load_prior, save_prior
from claim.smile.sampler import SmileSampler
from claim.smile.spec import Pattern, SmileConfig
from claim.stages.augment_files import PREVIEW_FILE, write_preview, write_real, write_synthetic
from claim.stages.generate import generate_scars, generation_file_name
from claim.stages.masks import MASKS_FILE, fit_prior_from_folder, write_mask

__all__ = ["AUGMENT_FILE", "PREVIEW_FILE", "FORMATS", "AugmentConfig", "AugmentResult", "run_augment"]

FORMATS = ("same", "nnunet")


@dataclass(frozen=True)
class AugmentConfig(Config):
    """Options of ``claim augment``.

    Attributes:
        per_patient: synthetic patients drawn per normal patient (ids ``<patient>_smile1`` ...).
        pattern: SMILE scar pattern (``ischemic``, ``mixed``, ...).
        output_format: ``same`` (the input's layout) or ``nnunet`` (nnU-Net v2 raw: imagesTr, labelsTr, dataset.json).
        seed: one seed for the generator's training, the masks (mask k of normal patient i: ``[seed, i, k]``) and
            the painting.
        sampler: sampler name (None: the generator's default, few-step DPM-Solver++ for claim-mode models).
        generator_preset / generator_steps: the generator trained when no model is given. The default, 2,000 steps
            of ``standard``, takes about 12.5 min in bf16 on a 2-core AVX-512 BF16 CPU (README: expected wall time).
        orientation / handedness: the AHA angle origin of the masks (as ``claim aha --orientation``, ``file:PATH``
            included) and the direction of segments 1-6 on screen.
        min_fit_patients: fit the prior on the folder's scars from this many pathological patients on; below it,
            the shipped EMIDEC prior.
        mvo_channel: whether the generator trained here sees the MVO mask as one more context channel
            (``GeneratorConfig.mvo_channel``). None, the default, means yes: with it the generator paints MVO as the
            dark core real MVO is; without it the network cannot tell MVO from scar and paints the MVO label
            brighter than the blood pool (measured on EMIDEC: MVO at 0.59 against real 0.51 with it, 1.25
            without, in units of remote myocardium 0 and blood 1). Must stay None with a ``model``, which brings
            its own; ``augment.json``'s ``model`` block records the channel either way.
        precision: ``auto`` | ``fp32`` | ``bf16`` autocast of the generator's training and painting
            (``claim.runtime.resolve_precision``). ``auto``, the default: bf16 where the CPU or GPU runs it fast
            (generator training 1.6x faster on an AVX-512 BF16 CPU), fp32 elsewhere; ``augment.json`` records what ran.
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    per_patient: int = 1
    pattern: str = Pattern.ISCHEMIC.value
    output_format: str = "same"
    seed: int = 0
    sampler: str | None = None
    generator_preset: str = "standard"
    generator_steps: int = 2000
    min_fit_patients: int = 3
    orientation: str = "auto"
    handedness: str = "ccw"
    precision: str = "auto"
    mvo_channel: bool | None = None

    def __post_init__(self) -> None:
        if self.per_patient < 1:
            raise ClaimError(f"--per-patient must be at least 1, got {self.per_patient}")
        if self.pattern not in {p.value for p in Pattern}:
            raise ClaimError(f"--pattern {self.pattern!r} must be one of {[p.value for p in Pattern]}")
        if self.output_format not in FORMATS:
            raise ClaimError(f"--format {self.output_format!r} must be one of {FORMATS}")
        if self.seed < 0:
            raise ClaimError(f"--seed must be >= 0, got {self.seed}")
        parse_orientation(self.orientation)  # one-line error for a bad spec before any work
        Handedness(self.handedness)
        if self.sampler is not None:
            try:
                parse_sampler(self.sampler)
            except ValueError as exc:
                raise ClaimError(f"--sampler: {exc}") from exc
        if self.generator_preset not in PRESETS:
            raise ClaimError(f"generator preset {self.generator_preset!r} must be one of {sorted(PRESETS)}")
        if self.generator_steps < 1:
            raise ClaimError(f"--generator-steps must be at least 1, got {self.generator_steps}")
        if self.precision not in PRECISIONS:
            raise ClaimError(f"--precision {self.precision!r} must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class AugmentResult:
    """The output folder, its ``augment.json`` record, and how many real and synthetic patients it holds."""

    out_dir: Path
    record: dict[str, Any]

    @property
    def n_synthetic(self) -> int:
        return len(self.record["synthetic_cases"])

    @property
    def n_real(self) -> int:
        return int(self.record["real_cases"])


RUN_RECORD = "run.json"
# What a run begun before a setting existed did: resuming it with that value is the same run.
_SETTINGS_BEFORE_RECORDED = {"precision_run": "fp32", "mvo_channel_run": False}
# Settings whose request may change on resume as long as what it resolves to does not (``auto`` -> ``precision_run``,
# the MVO channel's default -> ``mvo_channel_run``).
_REQUESTS = {"precision", "mvo_channel"}


def _mvo_channel_run(config: AugmentConfig, model: Path | None) -> bool | None:
    """The MVO channel of the generator trained here (on unless asked otherwise); None where a model brings its own."""
    if model is not None:
        if config.mvo_channel is not None:
            raise ClaimError("--mvo-channel / --no-mvo-channel set up the generator claim augment trains; a --model "
                             "brings its own (claim train-generator --mvo-channel)")
        return None
    return True if config.mvo_channel is None else config.mvo_channel


def _claim(out_dir: Path, data_dir: Path, settings: dict[str, Any], *, resume: bool, overwrite: bool) -> Path:
    """Own ``out_dir`` (``claim.output``: nothing of anyone else's there; an earlier augment run only resumed with
    the same settings, or replaced with ``overwrite``) and return the hidden work folder."""
    check_output_location(out_dir, [data_dir])
    if resume and overwrite:
        raise ClaimError(f"{out_dir}: --resume continues a run and --overwrite replaces it; pass one")
    folder = OutputFolder(out_dir, "augment", resume=resume, overwrite=overwrite)
    state = folder.check()
    work, now = out_dir / AUGMENT_WORK_DIR, json.loads(json.dumps(settings, default=str))
    if state == "ours" and resume:
        record = work / RUN_RECORD
        recorded = json.loads(record.read_text()).get("settings", {}) if record.is_file() else {}
        # A run that painted with a given model never had a channel of its own to record.
        before = _SETTINGS_BEFORE_RECORDED | ({"mvo_channel_run": None} if recorded.get("model") else {})
        recorded = {**before, **recorded} if recorded else recorded
        changed = sorted(k for k in (set(recorded) | set(now)) - _REQUESTS if recorded.get(k) != now.get(k))
        if changed:
            shown = ", ".join(f"{k}: {recorded.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise ClaimError(f"{out_dir}: --resume with settings that differ from the run's ({shown}); "
                            "pass the run's values, or --overwrite to start again")
    elif state == "ours":
        folder.clear()  # --overwrite (check() refused it otherwise)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir, "augment", config=now, inputs=fingerprint([data_dir]), owns_folder=True)
    write_json(work / RUN_RECORD, {"stage": "augment", "claim_version": __version__, "settings": now})
    return work


def _state(work: Path) -> dict[str, Any]:
    path = work / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _mark(work: Path, **done: Any) -> None:
    write_json(work / "state.json", {**_state(work), **done})


def _train(data_dir: Path, work: Path, config: AugmentConfig, device: str, precision: str, mvo_channel: bool,
           progress: bool) -> Path:
    run_dir = work / "generator"
    checkpoint = run_dir / "generator.pt"
    if _state(work).get("generator_done"):
        return checkpoint
    generator_config = preset_config(config.generator_preset, steps=config.generator_steps,
                                     mvo_channel=mvo_channel)
    # A run stopped before its first checkpoint resumes from step 0 (claim.training), so resuming is always right.
    train_generator(data_dir, run_dir, generator_config, seed=config.seed, resume=run_dir.exists(),
                    device=device, checkpoint_every=250, progress=progress, precision=precision)
    _mark(work, generator_done=True)
    return checkpoint


def _prior(data_dir: Path, work: Path, n_scarred: int, config: AugmentConfig, progress: bool) -> tuple[Prior, bool]:
    path = work / "prior.json"
    if n_scarred < config.min_fit_patients:
        return default_prior(), False
    if not path.is_file():
        save_prior(fit_prior_from_folder(data_dir, progress=progress), path)
    return load_prior(path), True


def _draw_masks(normals: list[Patient], root: Path, prior: Prior, config: AugmentConfig, progress: bool) -> list[dict]:
    """``per_patient`` masks per normal patient, listed mask-major so that shard i of n holds patient i's masks."""
    if (root / MASKS_FILE).is_file():
        return json.loads((root / MASKS_FILE).read_text())
    smile = SmileConfig(pattern=Pattern(config.pattern))
    aha = AhaConfig(orientation=config.orientation, handedness=Handedness(config.handedness), bullseye=False)
    entries: list[dict] = [{}] * (len(normals) * config.per_patient)
    bar = tqdm(total=len(entries), desc="SMILE masks", unit="mask", disable=not progress)
    for i, patient in enumerate(normals):
        sampler = SmileSampler(geometry_for(patient, aha), patient.label_maps, smile, prior)
        for k in range(1, config.per_patient + 1):
            result = sampler.sample_result(np.random.default_rng([config.seed, i, k]))
            spec = result.spec
            entries[(k - 1) * len(normals) + i] = write_mask(
                root, patient, f"{patient.patient_id}_smile{k}", result.label_maps(patient.label_maps),
                {"pattern": spec.pattern.value, "territory": spec.territory.value if spec.territory else None,
                 "segments": list(spec.segments), "target_burden": spec.target_burden,
                 "achieved_burden": round(result.achieved_burden, 6), "transmurality": spec.transmurality,
                 "seed": [config.seed, i, k], "spec": spec.to_json()})
            bar.update()
    bar.close()
    write_json(root / MASKS_FILE, entries)  # last: its presence means every mask is written
    return entries


def _paint(model: Path, data_dir: Path, work: Path, n_shards: int, config: AugmentConfig, device: str,
           precision: str, progress: bool) -> list[dict]:
    painted = work / "painted"
    records: list[dict] = []
    for i in tqdm(range(n_shards), desc="painting", unit="patient", disable=not progress):
        record = painted / generation_file_name((i, n_shards))
        if not record.is_file():
            # The work folder is this run's own: a shard cut off mid-way is simply painted again.
            generate_scars(model, data_dir, work / "masks", painted, sampler=config.sampler, seed=config.seed,
                           device=device, shard=(i, n_shards), overwrite=True, precision=precision)
        records += json.loads(record.read_text())
    return records


def _shown_path(path: Path, out_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        return str(path.resolve())


def run_augment(
    data_dir: Path,
    out_dir: Path,
    config: AugmentConfig = AugmentConfig(),
    *,
    model: Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> AugmentResult:
    """Augment the labelled folder ``data_dir`` with synthetic scar patients painted on its normal patients.

    Args:
        data_dir: labelled data in any layout (only read).
        out_dir: new or empty folder (or this stage's own, with ``resume``).
        config: the options (``AugmentConfig``).
        model: generator checkpoint; None trains the default generator on ``data_dir``'s scar slices first.
        device: ``cpu`` | ``cuda`` | ``auto`` for training and painting.
        resume: continue an interrupted run in ``out_dir`` (the same settings), from the step it reached.
        overwrite: replace an earlier ``claim augment`` output in ``out_dir`` (never files claim did not write).
        progress: progress bars.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    start = time.perf_counter()
    if model is not None and not Path(model).is_file():
        raise InputError(Path(model), "generator checkpoint not found")
    mvo_channel = _mvo_channel_run(config, Path(model) if model is not None else None)
    refuse_augmented(data_dir, "augment the real data, not an earlier augment output")
    patients = read_dataset(data_dir, progress=progress)
    normals = [p for p in patients if not p.has_infarct]
    scarred = [p for p in patients if p.has_infarct]
    if not normals:
        raise InputError(data_dir, "no normal patient (without labels 3/4) to paint scar into")
    if model is None and not scarred:
        raise InputError(data_dir, "no patient with scar (labels 3/4) to train the generator on; pass --model G.pt")
    real_ids = {p.patient_id for p in patients}
    clash = sorted(real_ids & {f"{p.patient_id}_smile{k}" for p in normals for k in range(1, config.per_patient + 1)})
    if clash:
        raise InputError(data_dir, f"patient ids {clash[:3]} clash with the synthetic ids claim augment writes")
    nnunet = config.output_format == "nnunet"
    precision = resolve_precision(config.precision, device)  # an explicit bf16 where it is slow fails here, first
    settings = {"data": str(data_dir.resolve()), "model": str(Path(model).resolve()) if model else None,
                **config.to_dict(), "precision_run": precision, "mvo_channel_run": mvo_channel}
    work = _claim(out_dir, data_dir, settings, resume=resume, overwrite=overwrite)
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    model_path = Path(model) if model is not None else _train(data_dir, work, config, device, precision,
                                                               bool(mvo_channel), progress)
    timings["generator_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    prior, fitted = _prior(data_dir, work, len(scarred), config, progress)
    entries = _draw_masks(normals, work / "masks", prior, config, progress)
    timings["masks_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    records = _paint(model_path, data_dir, work, len(normals), config, device, precision, progress)
    timings["painting_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    # An nnU-Net input is already in the output format: its files are copied, as in the ``same`` format.
    convert = nnunet and patients[0].layout != Layout.NNUNET
    write_real(patients, data_dir, out_dir, convert)
    files = write_synthetic(work / "painted", records, out_dir, convert)
    if nnunet or patients[0].layout == Layout.NNUNET:
        write_nnunet_dataset_json(out_dir, len(patients) + len(files), name="claim_augmented")
    preview = write_preview(work / "painted", out_dir)
    timings["writing_s"] = time.perf_counter() - tick

    generator = load_generator(model_path)
    by_mask: dict[str, list[dict]] = {}
    for r in records:
        by_mask.setdefault(r["mask_id"], []).append(r)
    cases = []
    for entry in entries:
        painted = [r for r in by_mask[entry["id"]] if r["nfe"]]
        cases.append({
            "id": entry["id"], "source_patient": entry["source_id"],
            "mask": {k: entry[k] for k in ("pattern", "territory", "segments", "target_burden", "achieved_burden",
                                           "transmurality", "burden", "mvo", "seed", "spec")},
            "files": files[entry["id"]], "hist_cluster": by_mask[entry["id"]][0]["hist_cluster"],
            "hist_rule": by_mask[entry["id"]][0].get("hist_rule", "random"),
            "painted_files": len(painted),
        })
    sampler = config.sampler or generator.config.default_sampler
    timings["total_s"] = time.perf_counter() - start
    record = {
        "claim_version": __version__,
        "data": str(data_dir.resolve()),
        "format": "nnunet" if nnunet else patients[0].layout.value,
        "seed": config.seed,
        "config": config.to_dict(),
        "precision": precision,
        "model": {"path": _shown_path(model_path, out_dir), "sha256": file_sha256(model_path),
                  "trained_here": model is None, "step": generator.step, "mode": str(generator.config.mode),
                  "mvo_channel": generator.config.mvo_channel},
        "sampler": {"name": str(parse_sampler(sampler)),
                    "nfe_per_image": parse_sampler(sampler).nfe(generator.config.timesteps)},
        "prior": {"source": prior.source, "n_patients": prior.n_patients, "fitted_on_data": fitted,
                  "rule": f"fitted on the data from {config.min_fit_patients} patients with scar on, else shipped"},
        "real_cases": len(patients),
        "normal_sources": len(normals),
        "preview": preview.name if preview else None,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "synthetic_cases": cases,
    }
    write_json(out_dir / AUGMENT_FILE, record)
    write_manifest(out_dir, "augment", config=json.loads(json.dumps(settings, default=str)),
                   inputs=fingerprint([data_dir]), owns_folder=True)  # last: every file of a complete run
    return AugmentResult(out_dir, record)
