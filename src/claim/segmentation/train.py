"""Train the segmenter on real (+ synthetic) slices with HF Accelerate; best checkpoint by validation infarct Dice.

Every random draw of step ``s`` on process ``r`` comes from a ``torch.Generator`` seeded with ``(seed, s, r)``
(batch indices, then the augmentation seed), so a resumed run reproduces an uninterrupted one exactly, and under
``accelerate launch --num_processes N`` each rank trains on its own seeded batch while DDP keeps weights equal.
Validation uses real patients only, split by patient; rank 0 writes every file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from claim import __version__
from claim.data.io import atomic_path
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.errors import ClaimError, InputError
from claim.evaluation.metrics import dice_scores
from claim.labels import Label
from claim.output import data_identity
from claim.runtime import autocast, resolve_device, resolve_precision
from claim.segmentation.checkpoint import config_from_checkpoint, load_segmenter, read_checkpoint, save_checkpoint
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import SliceSet, augment_batch, build_augmentation, slices_from_patients
from claim.segmentation.loss import dice_ce_loss
from claim.segmentation.net import build_segmenter, normalise_images
from claim.segmentation.predict import predict_label_maps, segment_folder
from claim.training import Cadence, RunFolder, run_steps, step_generator
from claim.training.run import check_checkpoint_resume

__all__ = ["CHECKPOINT_NAME", "LAST_NAME", "LOG_NAME", "SegmenterResult", "SegmenterTrainer", "split_patients",
           "train_segmenter", "load_segmenter", "predict_label_maps", "segment_folder"]

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


class SegmenterTrainer:
    """Model, optimizer and one seeded step; knows nothing about files except ``save``.

    Args:
        config: segmenter config.
        train: real training slices.
        val_patients: real held-out patients (full slices) for :meth:`validate`.
        seed: seed of the initial weights and of every step's draws.
        device: ``cpu`` | ``cuda`` | ``auto``; ignored when ``accelerator`` is given.
        accelerator: an ``accelerate.Accelerator`` (default: ``Accelerator(cpu=device == "cpu")``).
        synthetic: synthetic slices joining the training pool (see ``config.synthetic_fraction``).
        precision: ``fp32`` | ``bf16`` | ``auto`` (``claim.runtime.resolve_precision``): autocast of the forward
            passes; weights and optimizer state stay fp32.
    """

    def __init__(self, config: SegmenterConfig, train: SliceSet, val_patients: list[Patient], *, seed: int,
                 device: str = "cpu", accelerator: Accelerator | None = None,
                 synthetic: SliceSet | None = None, precision: str = "fp32") -> None:
        if len(train) == 0:
            raise ValueError("no real training slices")
        self.config, self.seed, self.val_patients = config, int(seed), list(val_patients)
        self.accelerator = accelerator or Accelerator(cpu=resolve_device(device).type == "cpu")
        synthetic = synthetic if synthetic is not None and len(synthetic) else None
        if synthetic is not None and config.synthetic_fraction is None:
            self._pools = [(SliceSet.concat([train, synthetic], config.crop_size), config.batch_size)]
        elif synthetic is not None:
            n_syn = int(round(config.synthetic_fraction * config.batch_size))
            self._pools = [(train, config.batch_size - n_syn), (synthetic, n_syn)]
        else:
            self._pools = [(train, config.batch_size)]
        with torch.random.fork_rng(devices=[]):
            # Initial weights are the one draw from torch's default generator: fork it to keep the caller's state.
            torch.manual_seed(self.seed)
            model = build_segmenter(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.augmentation = build_augmentation(config)
        self.precision = resolve_precision(precision, self.accelerator.device)
        self.steps_done = 0

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def network(self) -> torch.nn.Module:
        """The bare model (unwrapped from DDP)."""
        return self.accelerator.unwrap_model(self.model)

    def _real_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = step_generator(self.seed, step, self.accelerator.process_index)
        images, labels = [], []
        for pool, n in self._pools:
            if n <= 0:
                continue
            index = torch.randint(0, len(pool), (n,), generator=g).numpy()
            images.append(torch.from_numpy(pool.images[index]))
            labels.append(torch.from_numpy(pool.labels[index]))
        aug_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        normalised = normalise_images(torch.cat(images).to(self.device))
        return augment_batch(self.augmentation, normalised, torch.cat(labels).to(self.device), aug_seed)

    def step(self, step: int, extra_images: torch.Tensor | None = None,
             extra_labels: torch.Tensor | None = None) -> float:
        """One optimisation step on the seeded batch of ``step``, plus an optional extra batch.

        Args:
            step: 0-based step index (selects the batch and augmentation draws).
            extra_images: ``(B, 1, C, C)`` raw images (e.g. synthetic; not augmented). They are normalised
                differentiably, so when they require grad the loss gradient also reaches their producer (the
                caller steps that producer's optimizer itself).
            extra_labels: ``(B, C, C)`` label ids of ``extra_images``.

        Returns:
            The loss value.
        """
        if (extra_images is None) != (extra_labels is None):
            raise ValueError("give both extra_images and extra_labels, or neither")
        images, labels = self._real_batch(step)
        if extra_images is not None:
            c = self.config.crop_size
            if extra_images.shape[1:] != (1, c, c) or extra_labels.shape != (extra_images.shape[0], c, c):
                raise ValueError(f"extra batch must be images (B, 1, {c}, {c}) and labels (B, {c}, {c}), got "
                                 f"{tuple(extra_images.shape)} and {tuple(extra_labels.shape)}")
            images = torch.cat([images, normalise_images(extra_images.to(self.device))])
            labels = torch.cat([labels, extra_labels.to(self.device).long()])
        self.model.train()
        with autocast(self.precision, self.device):
            loss = dice_ce_loss(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.steps_done = step + 1
        return float(loss.detach())

    def validate(self) -> dict:
        """Mean Dice over the validation patients (slices stacked per patient): infarct, myocardium, MVO.

        Infarct and MVO Dice average only over patients whose labels contain that class: a patient without scar
        scores Dice 1 for an empty prediction, so averaging over them would rank a network that never predicts
        scar above one that finds it (the same convention as the study's test metrics).
        """
        if not self.val_patients:
            return {}
        scores, present = [], []
        for patient in self.val_patients:
            predicted = predict_label_maps(self.network, self.config, patient.images, precision=self.precision)
            scores.append(dice_scores(predicted, patient.label_maps))
            present.append({"myocardium_dice": True,
                            "infarct_dice": patient.has_infarct,
                            "mvo_dice": bool((patient.label_maps == Label.MVO).any())})
        out: dict[str, Any] = {}
        for key in scores[0]:
            values = [s[key] for s, has in zip(scores, present, strict=True) if has[key]]
            out[key] = float(np.mean(values)) if values else float("nan")
        out["n_patients"] = len(scores)
        out["n_with_infarct"] = sum(has["infarct_dice"] for has in present)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.steps_done, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = int(state["step"])

    def save(self, path: Path, *, with_optimizer: bool = True, **fields: Any) -> None:
        """Write a self-describing checkpoint (main process only); ``fields`` are stored alongside."""
        if not self.accelerator.is_main_process:
            return
        state = self.state_dict()
        extra = {"optimizer": state["optimizer"]} if with_optimizer else {}
        save_checkpoint(path, self.config, state["model"], step=self.steps_done, seed=self.seed,
                        num_processes=self.accelerator.num_processes, precision=self.precision, **extra, **fields)


def split_patients(patients: Sequence[Patient], val_fraction: float, seed: int) -> tuple[list[Patient], list[Patient]]:
    """Patient-level split, stratified by scar (patients with/without infarct are held out in proportion)."""
    if len(patients) < 2:
        raise ClaimError(f"need at least 2 real patients to hold one out for validation, got {len(patients)}")
    rng = np.random.default_rng(seed)
    val_ids: set[str] = set()
    for group in ([p for p in patients if p.has_infarct], [p for p in patients if not p.has_infarct]):
        ids = sorted(p.patient_id for p in group)
        if ids:
            n = int(round(val_fraction * len(ids)))
            val_ids |= set(rng.permutation(ids)[:n].tolist())
    if not val_ids:
        val_ids = {sorted(p.patient_id for p in patients)[int(rng.integers(len(patients)))]}
    if len(val_ids) == len(patients):
        val_ids.discard(sorted(val_ids)[0])
    return ([p for p in patients if p.patient_id not in val_ids], [p for p in patients if p.patient_id in val_ids])


def _read_patients(dirs: Sequence[Path], what: str) -> list[Patient]:
    patients: dict[str, Patient] = {}
    for d in dirs:
        for p in read_dataset(Path(d)):
            if p.patient_id in patients:
                raise InputError(d, f"{what} patient {p.patient_id} appears in two folders")
            patients[p.patient_id] = p
    return list(patients.values())


def _write_curves(path: Path, log_path: Path) -> None:
    from matplotlib.figure import Figure

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val"]) for r in records if "val" in r]
    if train:
        ax1.plot(*zip(*train, strict=True), lw=0.8)
    ax1.set(xlabel="step", ylabel="Dice + CE loss", title="training loss")
    for key in ("infarct_dice", "myocardium_dice", "mvo_dice"):
        if val:
            ax2.plot([s for s, _ in val], [v[key] for _, v in val], marker="o", ms=3, label=key)
    ax2.set(xlabel="step", ylabel="Dice", title="validation (real patients)", ylim=(0, 1))
    if val:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    atomic_path(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _selection_score(metrics: dict) -> tuple[float, float]:
    """Model-selection key: validation infarct Dice, ties (e.g. no scar found yet) broken by myocardium Dice.

    A NaN (no validation patient with scar) ranks by myocardium Dice alone.
    """
    def finite(value: Any) -> float:
        return float(value) if value is not None and np.isfinite(value) else -1.0

    return finite(metrics.get("infarct_dice")), finite(metrics.get("myocardium_dice"))


def train_segmenter(real_dirs: list[Path], out_dir: Path, config: SegmenterConfig, *,
                    synthetic_dirs: Sequence[Path] = (), seed: int = 0, device: str = "cpu",
                    val_patients: list[str] | None = None, progress: bool = True,
                    resume: bool = False, overwrite: bool = False, precision: str = "fp32") -> SegmenterResult:
    """Train (or continue) a segmenter up to ``config.steps`` steps.

    Args:
        real_dirs: real data folders (any layout); patients are split into train/validation by patient.
        out_dir: run folder: ``segmenter.pt`` (best by validation infarct Dice), ``last.pt`` (for resume),
            ``train_log.jsonl``, ``curves.png``, ``config.json``.
        config: segmenter config (on resume it must equal the run's, ``steps`` excepted).
        synthetic_dirs: folders written by ``claim generate`` (any layout); training only, never validation.
        seed: seed of weights, split, batches and augmentation.
        device: ``cpu`` | ``cuda`` | ``auto`` (``accelerate launch`` decides the device per process).
        val_patients: ids to validate on (default: ``config.val_fraction`` of the real patients, by seed).
        progress: show a progress bar.
        resume: continue from ``out_dir/last.pt``.
        overwrite: replace an earlier run in ``out_dir``.
        precision: ``fp32`` | ``bf16`` | ``auto`` (recorded in ``config.json`` and the checkpoints as run).
    """
    real_dirs, synthetic_dirs = [Path(d) for d in real_dirs], [Path(d) for d in synthetic_dirs]
    run = RunFolder(out_dir, "train-segmenter")
    last_path, best_path = run.path(LAST_NAME), run.path(CHECKPOINT_NAME)
    run.claim(resume=resume, overwrite=overwrite)
    data_id = data_identity([*real_dirs, *synthetic_dirs])
    # A run killed before its first checkpoint resumes from step 0.
    payload = read_checkpoint(last_path) if resume and last_path.exists() else None
    if payload is not None:
        check_checkpoint_resume(last_path, payload, config_from_checkpoint(last_path, payload), config, seed, data_id)

    patients = _read_patients(real_dirs, "real")
    if val_patients:
        unknown = sorted(set(val_patients) - {p.patient_id for p in patients})
        if unknown:
            raise ClaimError(f"validation patients {unknown} are not in {[str(d) for d in real_dirs]}")
        train_p = [p for p in patients if p.patient_id not in set(val_patients)]
        val_p = [p for p in patients if p.patient_id in set(val_patients)]
    else:
        train_p, val_p = split_patients(patients, config.val_fraction, seed)
    if payload is not None and sorted(payload.get("val_patients", [])) != sorted(p.patient_id for p in val_p):
        raise ClaimError(f"{last_path}: --resume with different validation patients than the run")
    synthetic_p = _read_patients(synthetic_dirs, "synthetic")
    trainer = SegmenterTrainer(config, slices_from_patients(train_p, config.crop_size), val_p, seed=seed,
                               device=device, synthetic=slices_from_patients(synthetic_p, config.crop_size),
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
        "data_identity": data_id,
    }
    run.start({"command": "train-segmenter", "config": config, "seed": seed, "claim_version": __version__,
               "device": device, "precision": trainer.precision,
               "val_patients_requested": list(val_patients) if val_patients else None,
               "num_processes": trainer.accelerator.num_processes, **described},
              trainer.steps_done if resume else None, inputs=[*real_dirs, *synthetic_dirs])

    def validate(done: int) -> None:
        nonlocal best
        metrics = trainer.validate()
        run.log({"step": done, "val": metrics})
        if _selection_score(metrics) > _selection_score(best["metrics"]):
            best = {"step": done, "metrics": metrics}
            trainer.save(best_path, with_optimizer=False, best=best, **described)
        trainer.save(last_path, best=best, **described)

    history = run_steps(run, trainer.steps_done, config.steps, lambda step: {"loss": trainer.step(step)},
                        [Cadence(config.val_every, validate, at_end=True)], desc="train segmenter",
                        progress=progress, postfix=lambda e: {"loss": f"{e['loss']:.4f}"})
    if not best_path.exists() and main:
        # Nothing ran (0 steps): validate the initial weights so a checkpoint always exists.
        best = {"step": trainer.steps_done, "metrics": trainer.validate()}
        trainer.save(best_path, with_optimizer=False, best=best, **described)
        trainer.save(last_path, best=best, **described)
    if main:
        _write_curves(run.path("curves.png"), run.log_path)
        run.finish()
    trainer.accelerator.wait_for_everyone()
    seconds = history[-1]["seconds"] if history else 0.0
    return SegmenterResult(best_path, int(best["step"]), dict(best["metrics"]), trainer.steps_done,
                           [e["loss"] for e in history], seconds)
