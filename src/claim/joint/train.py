"""Train generator G and segmenter S together, with the segmenter's loss reaching the generator.

Phases (``JointConfig.phase``): G-only diffusion warm-up, S-only real warm-up, then joint steps. A joint step
(1) updates G on ``diffusion loss + lambda * consistency loss`` (``consistency.py``; S frozen for that term) and
(2) updates S on real slices plus synthetic slices from a replay buffer that G's EMA refreshes with its fast DDIM
sampler on normal canvases under fresh SMILE masks. G is a ``GeneratorTrainer``, S a ``SegmenterTrainer``; every
random draw of step ``s`` comes from ``(seed, s)``, and ``joint_state.pt`` holds everything else, so a resumed run
continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from claim import __version__
from claim.data.augmented import refuse_augmented
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.errors import ClaimError, InputError
from claim.generator.checkpoint import config_from_checkpoint, read_generator_checkpoint
from claim.generator.config import GeneratorConfig, preset_config
from claim.generator.data import build_training_set
from claim.generator.train import GeneratorTrainer
from claim.joint.canvas import build_canvases, sample_canvas_crops, sample_real_scar_crops
from claim.joint.config import JointConfig
from claim.joint.consistency import (
    bounded_consistency,
    feature_loss,
    generator_feedback,
    painted_start,
    segmenter_view,
)
from claim.joint.synthetic import ReplayBuffer, paint_synthetic_slices
from claim.output import data_identity
from claim.runtime import resolve_device
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import training_slices
from claim.segmentation.train import SegmenterTrainer
from claim.smile.prior import Prior
from claim.training import Cadence, RunFolder, run_steps, step_generator
from claim.training.checkpoint import read_checkpoint, save_checkpoint
from claim.training.run import check_resume, is_due

__all__ = ["GENERATOR_NAME", "SEGMENTER_NAME", "STATE_NAME", "LOG_NAME", "JointResult", "train_joint"]

GENERATOR_NAME = "generator.pt"
SEGMENTER_NAME = "segmenter.pt"
STATE_NAME = "joint_state.pt"
LOG_NAME = "train_log.jsonl"
STATE_FORMAT = "claim-joint-state"


@dataclass(frozen=True)
class JointResult:
    """What a joint run produced: ``checkpoints`` by model kind, the log entries of the steps run now, wall time."""

    checkpoints: dict[str, Path]
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def generator_checkpoint(self) -> Path:
        return self.checkpoints["generator"]

    @property
    def segmenter_checkpoint(self) -> Path:
        return self.checkpoints["segmenter"]


def _select_patients(patients: list[Patient], train_patients: list[str] | None, data_dir: Path) -> tuple[list, list]:
    if train_patients is None:
        return patients, []
    known = {p.patient_id for p in patients}
    missing = sorted(set(train_patients) - known)
    if missing:
        raise InputError(data_dir, f"train_patients {missing} not found (known: {sorted(known)})")
    chosen = set(train_patients)
    return [p for p in patients if p.patient_id in chosen], [p for p in patients if p.patient_id not in chosen]


def _initial_generator(
    init_generator: Path | None, generator: GeneratorConfig | None
) -> tuple[GeneratorConfig, dict[str, Any] | None]:
    """The generator config and, with ``init_generator``, the checkpoint payload to start from."""
    if init_generator is None:
        return generator or preset_config("standard"), None
    path = Path(init_generator)
    payload = read_generator_checkpoint(path)  # validates format, version and keys; names the file
    config = config_from_checkpoint(path, payload)
    if generator is not None and generator.resume_diff(config):
        raise ClaimError(f"{init_generator}: its generator config differs from the one given; pass none to use "
                         "the checkpoint's")
    return config, payload


def _segmenter_stride(config: SegmenterConfig) -> int:
    return 2 ** (len(config.filters) - 1)


def train_joint(
    data_dir: Path,
    out_dir: Path,
    *,
    joint: JointConfig,
    generator: GeneratorConfig | None = None,
    segmenter: SegmenterConfig | None = None,
    init_generator: Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    train_patients: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    smile_prior: Prior | None = None,
    overwrite: bool = False,
    precision: str = "fp32",
) -> JointResult:
    """Train G and S jointly until ``joint.steps`` total steps.

    Args:
        data_dir: data folder in any layout. S trains on all slices of the training patients; G's diffusion loss
            on their slices with scar; their normal patients (no scar/MVO anywhere) are the canvases.
        out_dir: run folder: ``generator.pt`` (``claim generate`` reads it), ``segmenter.pt``, ``joint_state.pt``
            (resume), ``train_log.jsonl``, ``config.json``.
        joint: phases, weights and replay settings.
        generator: G's config (default: the ``standard`` preset, or the config of ``init_generator``).
        segmenter: S's config (default: the ``standard`` preset); its ``steps`` is set to the S steps of this run.
        init_generator: start G (online, EMA, optimizer, histogram centres) from this generator checkpoint.
        seed: seed of weight init, batches, masks and noise (same seed, same run).
        device: ``cpu`` | ``cuda`` | ``auto``.
        train_patients: patient ids to train on (default: all); the others are S's validation patients, scored
            (``val`` in the log) at every checkpoint and at the end.
        resume: continue ``out_dir``'s run up to ``joint.steps``.
        progress: tqdm bar with both losses.
        smile_prior: prior of the SMILE masks painted on the canvases (default: the shipped EMIDEC prior).
        overwrite: replace an earlier run in ``out_dir``.
        precision: ``fp32`` | ``bf16`` | ``auto`` for both networks (recorded as run).

    Raises:
        ClaimError: no normal patient among the training patients, no slice with scar, or resume mismatches.
    """
    data_dir = Path(data_dir)
    refuse_augmented(data_dir, "joint training paints its own scar; give it the real data")
    if segmenter is not None and segmenter.context_slices:
        # G paints one slice at a time with gradient; its neighbours would need painting in step with it.
        raise ClaimError(f"joint training needs a single-slice segmenter (context_slices 0), got context_slices "
                         f"{segmenter.context_slices}")
    run = RunFolder(out_dir, "train-joint")
    gen_path, seg_path, state_path = run.path(GENERATOR_NAME), run.path(SEGMENTER_NAME), run.path(STATE_NAME)
    dev = resolve_device(device)
    run.claim(resume=resume, overwrite=overwrite)

    train, val = _select_patients(read_dataset(data_dir), train_patients, data_dir)
    canvases = build_canvases(train, prior=smile_prior)
    if not canvases:
        raise InputError(data_dir, "no normal patient (no scar/MVO label in any slice) among the "
                                   f"{len(train)} training patients: joint training paints synthetic scar into "
                                   "normal patients; add some (scar removed from pathological slices is not a "
                                   "substitute)")
    gen_config, init_payload = _initial_generator(init_generator, generator)
    pathological = [p for p in train if p.has_infarct]
    try:
        crops = build_training_set(pathological, gen_config)
    except ValueError as exc:
        raise InputError(data_dir, str(exc)) from exc
    centres = None if init_payload is None else np.asarray(init_payload["hist_centres"], dtype=np.float32)
    # S is G's training partner: it judges, validates and is saved with its online weights, so it keeps no weight
    # EMA, and it is one network that G's gradient flows through, not an ensemble (the recorded config says so).
    seg_config = (segmenter or segmenter_preset("standard")).replace(steps=joint.steps - joint.generator_warmup,
                                                                      ema_decay=0.0, members=1,
                                                                      snapshot_every=0)
    stride = _segmenter_stride(seg_config)

    gen = GeneratorTrainer(gen_config, crops, seed=seed, device=dev, hist_centres=centres, precision=precision)
    if init_payload is not None:
        gen.load_state_dict(init_payload)
    seg = SegmenterTrainer(seg_config, training_slices(train, seg_config), val, seed=seed,
                           device=str(dev), precision=precision)
    buffer = ReplayBuffer(joint.buffer_size)
    settings = {
        "joint": joint,
        "generator": gen_config,
        "segmenter": seg_config,
        "seed": seed,
        "init_generator": str(init_generator) if init_generator is not None else None,
        "prior": smile_prior.to_json() if smile_prior is not None else None,
        "train_patients": [p.patient_id for p in train],
        "canvas_patients": [c.patient.patient_id for c in canvases],
        "data_identity": data_identity([data_dir]),
        # How the conditions of the consistency batch and the synthetic slices are drawn; states written before the
        # rule existed drew them uniformly and are refused rather than continued under another rule.
        "hist_rule": joint.hist_rule,
    }

    start = 0
    if resume and state_path.exists():  # a run killed before its first checkpoint resumes from step 0
        state = read_checkpoint(state_path, fmt=STATE_FORMAT, what="joint state",
                                required=("step", "run_config", "generator", "segmenter", "buffer"))
        saved = dict(state["run_config"])
        try:
            for key, kind in (("joint", JointConfig), ("generator", GeneratorConfig), ("segmenter", SegmenterConfig)):
                saved[key] = kind.from_dict(saved[key])
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(state_path, f"joint state holds an unreadable config ({exc})") from exc
        check_resume(state_path, saved, settings)
        try:
            gen.load_state_dict(state["generator"])
            seg.load_state_dict(state["segmenter"])
            buffer.load_state_dict(state["buffer"])
        except (RuntimeError, KeyError, ValueError) as exc:  # e.g. a state written before the segmenter's cascade
            raise InputError(state_path, "joint state does not fit this claim version's models; start over with "
                                         f"--overwrite ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
        start = int(state["step"])
    run.start({"command": "train-joint", **settings, "data": str(data_dir), "device": device,
               "precision": gen.precision,
               "train_patients_requested": list(train_patients) if train_patients is not None else None,
               "claim_version": __version__},
              start if resume else None, inputs=[data_dir])

    def checkpoint(step: int) -> None:
        gen.save(gen_path, rng={"scheme": "joint: per-step torch.Generator(seed*1000003+step)", "seed": seed,
                                "next_step": step}, data=str(data_dir),
                 joint={"step": step, "config": joint.to_dict(), "init_generator": settings["init_generator"]})
        seg.save(seg_path, joint_step=step)
        # Self-contained (G and S states, buffer): a crash between the three writes cannot pair mismatched parts.
        save_checkpoint(state_path, {
            "format": STATE_FORMAT,
            "step": step,
            "generator_updates": gen.updates,
            "run_config": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in settings.items()},
            "generator": gen.state_dict(),
            "segmenter": seg.state_dict(),
            "buffer": buffer.state_dict(),
        })

    def one_step(step: int) -> dict[str, Any]:
        phase = joint.phase(step)
        g = step_generator(seed, step)
        rng = np.random.default_rng([seed, step])
        entry: dict[str, Any] = {"phase": phase}
        if phase in ("generator", "joint"):
            extra = None
            if phase == "joint" and (joint.lambda_consistency > 0 or joint.lambda_histogram > 0
                                     or joint.lambda_feature > 0):
                def extra() -> torch.Tensor:
                    batch = sample_canvas_crops(canvases, joint.consistency_batch, gen_config, gen.hist_centres, rng,
                                                gen.hist_context, rule=joint.hist_rule)
                    known, label_maps, hists = batch.known.to(dev), batch.label_maps.to(dev), batch.hists.to(dev)
                    start = (painted_start(gen.model, gen.schedule, gen_config, known, label_maps, hists,
                                           joint.sampler_steps, g) if joint.feedback_start == "painted" else None)
                    feedback = generator_feedback(
                        gen.model, gen.schedule, gen_config, seg.network, known, label_maps, hists, g,
                        t_max=joint.t_max, multiple=stride, extents=batch.extents,
                        histogram_distance=joint.histogram_distance, start=start,
                        ignore_border_px=joint.consistency_border_px,
                    )
                    consistency = feedback.consistency
                    entry["consistency_loss"] = float(consistency.detach())
                    loss = joint.lambda_histogram * feedback.histogram
                    if joint.consistency_bound != "none" or joint.lambda_feature > 0:
                        real = sample_real_scar_crops(pathological, joint.consistency_batch, gen_config, rng)
                        with torch.no_grad():
                            view = segmenter_view(seg.network, real.known.to(dev), real.label_maps.to(dev),
                                                  stride, real.extents, joint.consistency_border_px)
                        if joint.consistency_bound != "none":
                            entry["real_consistency_loss"] = float(view.loss)
                            consistency = bounded_consistency(consistency, view.loss, joint.consistency_bound)
                        features = (feature_loss(feedback.scar_features, view.scar_features)
                                    if joint.lambda_feature > 0 else None)
                        if features is not None:
                            entry["feature_loss"] = float(features.detach())
                            loss = loss + joint.lambda_feature * features
                    entry["histogram_loss"] = float(feedback.histogram.detach())
                    return loss + joint.lambda_consistency * consistency
            entry["diffusion_loss"] = gen.step(step, extra, generator=g)
        if phase in ("segmenter", "joint"):
            extra_images = extra_labels = None
            if phase == "joint":
                if (step - joint.joint_start) % joint.refresh_every == 0:
                    new_images, new_labels = paint_synthetic_slices(
                        gen.sampler(gen_path), canvases, joint.masks_per_refresh, seg_config.training_window, rng,
                        sampler_steps=joint.sampler_steps, hist_rule=joint.hist_rule,
                    )
                    buffer.add(new_images, new_labels)
                    entry["refreshed"] = int(new_images.shape[0])
                if joint.synthetic_per_batch and len(buffer):
                    extra_images, extra_labels = buffer.sample(joint.synthetic_per_batch, g, seg_config.crop_size)
            entry["segmenter_loss"] = float(seg.step(step - joint.generator_warmup, extra_images, extra_labels))
            entry["buffer"] = len(buffer)
        if val and is_due(step + 1, joint.steps, joint.checkpoint_cadence, at_end=True):
            entry["val"] = seg.validate()  # real held-out patients, slices stacked per patient
        return entry

    cadences = [Cadence(joint.checkpoint_cadence, checkpoint, at_end=False)]
    history = run_steps(run, start, joint.steps, one_step, cadences, desc="train joint", progress=progress,
                        postfix=lambda e: {k[:3]: f"{e[k]:.3f}" for k in ("diffusion_loss", "consistency_loss",
                                                                           "histogram_loss", "feature_loss",
                                                                           "segmenter_loss")
                                                        if k in e})
    checkpoint(max(joint.steps, start))
    run.finish()
    seconds = history[-1]["seconds"] if history else 0.0
    return JointResult({"generator": gen_path, "segmenter": seg_path}, history, seconds)
