"""Train the segmenter on real (+ synthetic) slices with HF Accelerate; best checkpoint by validation infarct Dice.

The run folder around :class:`claim.segmentation.trainer.SegmenterTrainer`: patient-level split, resume,
validation cadence, best and last checkpoints, log and curves. Validation uses real patients only, split by
patient; rank 0 writes every file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState

from claim import __version__
from claim.config import read_run_config
from claim.errors import ClaimError, InputError
from claim.output import data_identity
from claim.runtime import resolve_device, resolve_precision
from claim.segmentation.checkpoint import (
    config_from_checkpoint,
    load_segmenter,
    read_checkpoint,
)
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import training_slices
from claim.segmentation.net import build_segmenter
from claim.segmentation.patients import training_patients
from claim.segmentation.predict import predict_label_maps, segment_folder
from claim.segmentation.run_files import (
    combine_snapshots,
    drop_snapshots_after,
    save_ensemble_checkpoint,
    snapshot_path,
    write_curves,
)
from claim.segmentation.trainer import SegmenterTrainer, validation_metrics
from claim.training import Cadence, RunFolder, run_steps
from claim.training.parallel import run_in_workers, worker_threads
from claim.training.run import CONFIG_NAME, check_checkpoint_resume

__all__ = ["CHECKPOINT_NAME", "LAST_NAME", "LOG_NAME", "SegmenterResult", "SegmenterTrainer",
           "train_segmenter", "member_dir", "load_segmenter", "predict_label_maps", "segment_folder"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "segmenter.pt"  # best by validation infarct Dice
LAST_NAME = "last.pt"  # latest state incl. optimizer, for --resume
LOG_NAME = "train_log.jsonl"  # written by claim.training.RunFolder


@dataclass(frozen=True)
class SegmenterResult:
    """Best checkpoint and its validation metrics, final step, losses of the steps run now, wall time."""

    checkpoint: Path
    best_step: int
    best_metrics: dict
    step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def selection_score(metrics: dict) -> tuple[float, float]:
    """Model-selection key: validation infarct Dice, ties (e.g. no scar found yet) broken by myocardium Dice.

    A NaN (no validation patient with scar) ranks by myocardium Dice alone.
    """
    def finite(value: Any) -> float:
        return float(value) if value is not None and np.isfinite(value) else -1.0

    return finite(metrics.get("infarct_dice")), finite(metrics.get("myocardium_dice"))


def train_segmenter(real_dirs: list[Path], out_dir: Path, config: SegmenterConfig, *,
                    synthetic_dirs: Sequence[Path] = (), seed: int = 0, device: str = "cpu",
                    val_patients: list[str] | None = None, progress: bool = True,
                    resume: bool = False, overwrite: bool = False, precision: str = "fp32",
                    member_workers: int | None = None) -> SegmenterResult:
    """Train (or continue) a segmenter up to ``config.steps`` steps; with ``config.members`` > 1, an ensemble.

    Args:
        real_dirs: real data folders (any layout); patients are split into train/validation by patient.
        out_dir: run folder: ``segmenter.pt`` (best by validation infarct Dice; with no validation patients, the
            last step's), ``last.pt`` (for resume),
            ``train_log.jsonl``, ``curves.png``, ``config.json``, ``snapshots/`` (with ``config.snapshot_every``).
            An ensemble's folder holds one such run per
            member (``member<k>/``, seed ``seed + k``, all on member 0's validation patients), and its
            ``segmenter.pt`` holds every member's kept weights; its log has one entry per member and one for the
            ensemble's validation.
        config: segmenter config (on resume it must equal the run's, ``steps`` excepted).
        synthetic_dirs: folders written by ``claim generate`` (any layout); training only, never validation.
        seed: seed of weights, split, batches and augmentation.
        device: ``cpu`` | ``cuda`` | ``auto`` (``accelerate launch`` decides the device per process).
        val_patients: ids to validate on (default: ``config.val_fraction`` of the real patients, by seed).
        progress: show a progress bar.
        resume: continue from ``out_dir/last.pt``.
        overwrite: replace an earlier run in ``out_dir``.
        precision: ``fp32`` | ``bf16`` | ``auto`` (recorded in ``config.json`` and the checkpoints as run).
        member_workers: an ensemble's members trained at once, each in a worker process with an equal share of
            this process's torch threads (None: on a CPU, as many as there are members and threads; 1: one after
            another in this process). A member's weights depend on its thread count in the last bits only, as any
            run's do; ``config.json`` records both.
    """
    kwargs = dict(synthetic_dirs=synthetic_dirs, seed=seed, device=device, val_patients=val_patients,
                  progress=progress, resume=resume, overwrite=overwrite, precision=precision)
    if member_workers is not None and (isinstance(member_workers, bool) or not isinstance(member_workers, Integral)
                                       or member_workers < 1):
        raise ClaimError(f"--member-workers must be an integer >= 1, got {member_workers!r}")
    if resume:
        _check_resumed_members(Path(out_dir), config, seed)
    if config.members > 1:
        return _train_ensemble(real_dirs, out_dir, config, member_workers=member_workers, **kwargs)
    return _train_one(real_dirs, out_dir, config, **kwargs)


def _train_one(real_dirs: list[Path], out_dir: Path, config: SegmenterConfig, *, synthetic_dirs: Sequence[Path],
               seed: int, device: str, val_patients: list[str] | None, progress: bool, resume: bool,
               overwrite: bool, precision: str, bar_position: int | None = None,
               label: str = "train segmenter", announce: bool = True) -> SegmenterResult:
    real_dirs, synthetic_dirs = [Path(d) for d in real_dirs], [Path(d) for d in synthetic_dirs]
    run = RunFolder(out_dir, "train-segmenter")
    last_path, best_path = run.path(LAST_NAME), run.path(CHECKPOINT_NAME)
    run.claim(resume=resume, overwrite=overwrite)
    data_id = data_identity([*real_dirs, *synthetic_dirs])
    # A run killed before its first checkpoint resumes from step 0.
    payload = read_checkpoint(last_path) if resume and last_path.exists() else None
    if payload is not None:
        check_checkpoint_resume(last_path, payload, config_from_checkpoint(last_path, payload), config, seed, data_id)

    chosen = training_patients(real_dirs, synthetic_dirs, val_patients, config.val_fraction, seed, announce=announce)
    train_p, val_p, synthetic_p = chosen.train, chosen.val, chosen.synthetic
    if payload is not None and sorted(payload.get("val_patients", [])) != sorted(p.patient_id for p in val_p):
        raise ClaimError(f"{last_path}: --resume with different validation patients than the run")
    if payload is not None and payload.get("augment_synthetic", []) != chosen.augmented:
        # A run begun before augment's synthetic patients were told apart trained them as real ones.
        raise ClaimError(f"{last_path}: the run treated claim augment's synthetic patients otherwise (an earlier "
                         "version trained them as real patients); start a new run")
    trainer = SegmenterTrainer(config, training_slices(train_p, config), val_p, seed=seed,
                               device=device, synthetic=training_slices(synthetic_p, config),
                               precision=precision)
    best = {"step": -1, "metrics": {"infarct_dice": -1.0}}
    if payload is not None:
        trainer.load_state_dict(payload)
        best = payload.get("best", best)
    main = run.main = trainer.accelerator.is_main_process
    described = {
        "val_patients": [p.patient_id for p in val_p],
        "train_patients": [p.patient_id for p in train_p],
        "real_dirs": [str(d) for d in real_dirs],
        "synthetic_dirs": [str(d) for d in synthetic_dirs],
        "n_train_slices": int(sum(p.n_slices for p in train_p)),
        "n_synthetic_slices": int(sum(p.n_slices for p in synthetic_p)),
        **chosen.record(),
        "data_identity": data_id,
    }
    run.start({"command": "train-segmenter", "config": config, "seed": seed, "claim_version": __version__,
               "device": device, "precision": trainer.precision,
               "val_patients_requested": list(val_patients) if val_patients else None,
               "num_processes": trainer.accelerator.num_processes, **described},
              trainer.steps_done if resume else None, inputs=[*real_dirs, *synthetic_dirs])

    def validate(done: int) -> None:
        nonlocal best
        metrics: dict = {}
        if val_p:
            metrics = trainer.validate()
            entry = {"step": done, "val": metrics}
            if trainer.ema is not None:
                entry["val_online"] = trainer.validate(trainer.network)
            run.log(entry)
        # Without validation patients nothing can rank the steps: the checkpoint is the latest weights.
        if not val_p or selection_score(metrics) > selection_score(best["metrics"]):
            best = {"step": done, "metrics": metrics}
            trainer.save(best_path, with_optimizer=False, best=best, **described)
        trainer.save(last_path, best=best, **described)

    def one_step(step: int) -> dict[str, Any]:
        entry = {"loss": trainer.step(step), "lr": trainer.learning_rate(step)}
        if trainer.last_localiser_loss is not None:
            entry["localiser_loss"] = trainer.last_localiser_loss
        return entry

    def snapshot(done: int) -> None:
        path = snapshot_path(run.out_dir, done)
        if main:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save(path, with_optimizer=False, best={"step": done, "metrics": {}}, **described)

    if main and resume:
        # Snapshots past the resumed step are from the lost part of the run (or another --steps/--snapshot-every).
        drop_snapshots_after(run.out_dir, trainer.steps_done)
    # The snapshot comes before the validation that writes last.pt: a kill between the two repeats the step (bit
    # for bit) and writes its snapshot again, where the other order would resume past a step with no snapshot.
    history = run_steps(run, trainer.steps_done, config.steps, one_step,
                        [Cadence(config.snapshot_every, snapshot, at_end=bool(config.snapshot_every)),
                         Cadence(config.val_every, validate, at_end=True)], desc=label,
                        progress=progress, postfix=lambda e: {"loss": f"{e['loss']:.4f}"}, bar_position=bar_position)
    if not best_path.exists() and main:
        # Nothing ran (0 steps): validate the initial weights so a checkpoint always exists.
        best = {"step": trainer.steps_done, "metrics": trainer.validate()}
        trainer.save(best_path, with_optimizer=False, best=best, **described)
        trainer.save(last_path, best=best, **described)
    if main:
        write_curves(run.path("curves.png"), run.log_path, validated=bool(val_p))
        run.finish()
    trainer.accelerator.wait_for_everyone()
    seconds = history[-1]["seconds"] if history else 0.0
    return SegmenterResult(best_path, int(best["step"]), dict(best["metrics"]), trainer.steps_done,
                           [e["loss"] for e in history], seconds)


def _check_resumed_members(out_dir: Path, config: SegmenterConfig, seed: int) -> None:
    """Refuse to resume a single run as an ensemble or the other way round, or an ensemble with other members: the
    run folders differ (``member<k>/`` against the root's checkpoints), so either would start over silently."""
    saved_path = out_dir / CONFIG_NAME
    if not saved_path.is_file():
        return
    saved = read_run_config(saved_path, "train-segmenter")
    try:
        members, saved_seed = int(saved["config"].get("members", 1)), int(saved["seed"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(saved_path, f"not a train-segmenter run record ({exc})") from exc
    if members != config.members:
        raise ClaimError(f"{out_dir}: the run has {members} member(s); --resume it with --members {members} "
                         f"(or start a new run for {config.members})")
    if members > 1 and saved_seed != seed:
        raise ClaimError(f"{out_dir}: the ensemble was started with --seed {saved_seed}, not {seed}")


def member_dir(out_dir: Path, k: int) -> Path:
    """Run folder of an ensemble's member ``k`` (seed ``seed + k``) inside the ensemble's run folder."""
    return Path(out_dir) / f"member{k}"


def _member_workers(requested: int | None, members: int, device: torch.device, processes: int) -> int:
    """How many members train at once. Never under ``accelerate launch``, whose processes already share each
    member's steps; by default only on a CPU, whose cores two one-thread processes use better than one two-thread
    process (``claim.training.parallel``), while a GPU runs one member's steps at a time anyway."""
    if requested is not None:
        if requested > 1 and processes > 1:
            raise ClaimError("--member-workers > 1 cannot run under accelerate launch (its processes share each "
                             "member's steps); leave it out")
        return min(requested, members)
    if device.type != "cpu" or processes > 1:
        return 1
    return max(1, min(members, torch.get_num_threads()))


def _warn_on_changed_threads(out_dir: Path, threads: int) -> None:
    """Torch's results differ in the last bits with the thread count (not with how many members run at once), so a
    member resumed with another count is not the run it would have been; say so (``config.json`` records the
    setting of the latest start only)."""
    saved_path = out_dir / CONFIG_NAME
    if not saved_path.is_file():
        return
    before = read_run_config(saved_path, "train-segmenter").get("member_threads")
    if before is not None and before != threads:
        log.warning("train-segmenter: resuming the members with %d torch thread(s) each, where the run started with "
                    "%s; their weights will differ in the last bits from an uninterrupted run", threads, before)


def _train_ensemble(real_dirs: list[Path], out_dir: Path, config: SegmenterConfig, *,
                    synthetic_dirs: Sequence[Path], seed: int, device: str, val_patients: list[str] | None,
                    progress: bool, resume: bool, overwrite: bool, precision: str,
                    member_workers: int | None) -> SegmenterResult:
    """Train ``config.members`` segmenters, several at once in worker processes where ``member_workers`` says so,
    then save them as one ensemble checkpoint.

    Member 0 is exactly the single run of ``seed``; member ``k`` the single run of ``seed + k`` on member 0's
    validation patients, so the members differ only in their weights, batches and augmentation, and validation
    compares them and their ensemble on the same patients. Each member resumes on its own.
    """
    real_dirs, synthetic_dirs = [Path(d) for d in real_dirs], [Path(d) for d in synthetic_dirs]
    # The members' trainers start HF Accelerate with the same ``cpu`` flag; starting it here as well lets rank 0
    # alone write the ensemble's files, with barriers, under ``accelerate launch``.
    state = PartialState(cpu=resolve_device(device).type == "cpu")
    workers = _member_workers(member_workers, config.members, resolve_device(device), state.num_processes)
    threads = worker_threads(None, workers)
    run = RunFolder(out_dir, "train-segmenter")
    run.main = state.is_main_process
    run.claim(resume=resume, overwrite=overwrite)
    chosen = training_patients(real_dirs, synthetic_dirs, val_patients, config.val_fraction, seed)
    ids = val_patients or [p.patient_id for p in chosen.val]
    record = {"command": "train-segmenter", "config": config, "seed": seed, "claim_version": __version__,
              "device": device, "precision": resolve_precision(precision, state.device),
              "member_seeds": [seed + k for k in range(config.members)],
              "val_patients_requested": list(val_patients) if val_patients else None, "val_patients": ids,
              "train_patients": [p.patient_id for p in chosen.train], **chosen.record(),
              "real_dirs": [str(d) for d in real_dirs], "synthetic_dirs": [str(d) for d in synthetic_dirs],
              "num_processes": state.num_processes, "member_workers_requested": member_workers,
              "member_workers": workers, "member_threads": threads,
              "data_identity": data_identity([*real_dirs, *synthetic_dirs])}
    if resume and state.is_main_process:
        _warn_on_changed_threads(Path(out_dir), threads)
    run.start(record, None, inputs=[*real_dirs, *synthetic_dirs])
    state.wait_for_everyone()  # the folder exists (and an --overwrite has emptied it) before any member claims one
    single, started = config.replace(members=1), time.perf_counter()
    calls = [dict(real_dirs=real_dirs, out_dir=member_dir(out_dir, k), config=single, synthetic_dirs=synthetic_dirs,
                  seed=seed + k, device=device, val_patients=val_patients if k == 0 else (ids or None),
                  progress=progress, resume=resume and member_dir(out_dir, k).exists(), overwrite=False,
                  precision=precision, label=f"train member {k}", bar_position=k if workers > 1 else None,
                  announce=False)
             for k in range(config.members)]
    if workers > 1:
        results = run_in_workers(_train_one, calls, workers=workers, threads=threads,
                                 what=f"{out_dir}: training the ensemble's members",
                                 when_killed="try --member-workers 1, and run the command again with --resume "
                                             "(finished members and checkpoints are kept)")
    else:
        results = [_train_one(**call) for call in calls]
    seconds = time.perf_counter() - started
    for k, result in enumerate(results):
        run.log({"step": result.step, "member": k, "seed": seed + k, "best_step": result.best_step,
                 "val": result.best_metrics, "seconds": result.seconds})
    payloads = [read_checkpoint(r.checkpoint) for r in results]
    ran_in = payloads[0].get("precision", precision)  # as resolved by the members' runs
    step, path, metrics = results[-1].step, run.path(CHECKPOINT_NAME), {}
    if run.main:
        if ids:
            ensemble = build_segmenter(config)
            ensemble.load_state_dict({f"members.{k}.{key}": value for k, p in enumerate(payloads)
                                      for key, value in p["model"].items()})
            metrics = validation_metrics(ensemble.to(resolve_device(device)).eval(), config,
                                         chosen.val, ran_in)
            run.log({"step": step, "ensemble": config.members, "val": metrics, "seconds": seconds})
        # ``best.step`` is the members' last step; each member's weights are from its own kept step.
        save_ensemble_checkpoint(path, config, payloads, step=step, seed=seed, precision=ran_in, metrics=metrics,
                                 val_patients=ids)
        combine_snapshots(Path(out_dir), [member_dir(out_dir, k) for k in range(config.members)], config, seed=seed,
                          precision=ran_in, val_patients=ids)
        run.finish()
    state.wait_for_everyone()
    return SegmenterResult(path, step, metrics, step, [loss for r in results for loss in r.losses], seconds)
