"""Train generator G and segmenter S together, with the segmenter's loss reaching the generator.

Phases (``JointConfig.phase``): G-only diffusion warm-up, S-only real warm-up, then joint steps. A joint step
(1) updates G on ``diffusion loss + lambda * consistency loss`` (``consistency.py``; S frozen for that term) and
(2) updates S on real slices plus synthetic slices from a replay buffer that G's EMA refreshes with its fast DDIM
sampler on normal canvases under fresh SMILE masks. Every random draw of step ``s`` comes from ``(seed, s)``, and
``joint_state.pt`` holds everything else, so a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from claim import __version__
from claim.data.io import atomic_path, write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.errors import ClaimError, InputError
from claim.generator.config import GeneratorConfig, preset_config, resolve_device
from claim.generator.data import augment_batch, build_training_set
from claim.generator.denoiser import HistogramUNet, build_denoiser
from claim.generator.histogram import kmeans_centres
from claim.generator.schedule import NoiseSchedule
from claim.generator.train import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    LoadedGenerator,
    load_generator,
    step_generator,
    training_loss,
)
from claim.joint.canvas import build_canvases, is_normal, sample_canvas_crops
from claim.joint.config import JointConfig
from claim.joint.consistency import consistency_loss
from claim.joint.synthetic import ReplayBuffer, paint_synthetic_slices
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import slices_from_patients
from claim.segmentation.train import SegmenterTrainer
from claim.smile.prior import Prior

__all__ = ["GENERATOR_NAME", "SEGMENTER_NAME", "STATE_NAME", "LOG_NAME", "JointResult", "train_joint"]

GENERATOR_NAME = "generator.pt"
SEGMENTER_NAME = "segmenter.pt"
STATE_NAME = "joint_state.pt"
LOG_NAME = "train_log.jsonl"
STATE_FORMAT = "claim-joint-state"


@dataclass(frozen=True)
class JointResult:
    """What a joint run produced: both checkpoints, the log entries of the steps run now, wall time."""

    generator_checkpoint: Path
    segmenter_checkpoint: Path
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


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
    loaded = load_generator(Path(init_generator))  # validates format, version and weights; names the file
    payload = torch.load(Path(init_generator), map_location="cpu", weights_only=False)
    if generator is not None and generator != loaded.config:
        raise ClaimError(f"{init_generator}: its generator config differs from the one given; pass none to use "
                         "the checkpoint's")
    return loaded.config, payload


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, config: GeneratorConfig, step: int) -> None:
    # Same rule as claim.generator.train: copy during warm-up, then decay; ``step`` counts G updates.
    if step % config.ema_every:
        return
    decay = 0.0 if step < config.ema_warmup else config.ema_decay
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)


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

    Raises:
        ClaimError: no normal patient among the training patients, no slice with scar, or resume mismatches.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    gen_path, seg_path, state_path = out_dir / GENERATOR_NAME, out_dir / SEGMENTER_NAME, out_dir / STATE_NAME
    dev = resolve_device(device)
    if not resume and (gen_path.exists() or state_path.exists()):
        raise ClaimError(f"{out_dir}: a joint run exists already; pass --resume or choose another --out")

    train, val = _select_patients(read_dataset(data_dir), train_patients, data_dir)
    canvases = build_canvases(train, prior=smile_prior)
    if not canvases:
        raise InputError(data_dir, "no normal patient (no scar/MVO label in any slice) among the "
                                   f"{len(train)} training patients: joint training paints synthetic scar into "
                                   "normal patients; add some (scar removed from pathological slices is not a "
                                   "substitute)")
    gen_config, init_payload = _initial_generator(init_generator, generator)
    pathological = [p for p in train if not is_normal(p)]
    try:
        crops = build_training_set(pathological, gen_config)
    except ValueError as exc:
        raise InputError(data_dir, str(exc)) from exc
    if init_payload is not None:
        centres = np.asarray(init_payload["hist_centres"], dtype=np.float32)
    else:
        centres = kmeans_centres(crops.hists.numpy(), gen_config.n_clusters, seed=seed)
    seg_steps = joint.steps - joint.generator_warmup
    seg_config = replace(segmenter or segmenter_preset("standard"), steps=seg_steps)
    stride = _segmenter_stride(seg_config)

    with torch.random.fork_rng(devices=[]):
        # Initial weights are the one draw from torch's default generator: fork it so the caller's state is kept.
        torch.manual_seed(seed)
        model: HistogramUNet = build_denoiser(gen_config)
    model.to(dev)
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=gen_config.lr, weight_decay=gen_config.weight_decay)
    schedule = NoiseSchedule(gen_config.timesteps).to(dev)
    base_updates = 0
    if init_payload is not None:
        model.load_state_dict(init_payload["model"])
        ema.load_state_dict(init_payload["ema"])
        optimizer.load_state_dict(init_payload["optimizer"])
        base_updates = int(init_payload["step"])
    trainer = SegmenterTrainer(seg_config, slices_from_patients(train, seg_config.crop_size), val, seed=seed,
                               device=str(dev))
    buffer = ReplayBuffer(joint.buffer_size)
    run_config = {
        "joint": joint.to_dict(),
        "generator": gen_config.to_dict(),
        "segmenter": seg_config.to_dict(),
        "seed": seed,
        "init_generator": str(init_generator) if init_generator is not None else None,
        "train_patients": [p.patient_id for p in train],
        "canvas_patients": [c.patient.patient_id for c in canvases],
        "claim_version": __version__,
    }

    start, g_updates = 0, base_updates
    if resume:
        state = _read_state(state_path)
        saved, now = _comparable(state["run_config"]), _comparable(json.loads(json.dumps(run_config)))
        if saved != now:
            diff = sorted(k for k in now if saved.get(k) != now[k])
            raise ClaimError(f"{state_path}: --resume with different settings ({diff}); rerun with the saved ones")
        model.load_state_dict(state["generator"]["model"])
        ema.load_state_dict(state["generator"]["ema"])
        optimizer.load_state_dict(state["generator"]["optimizer"])
        trainer.load_state_dict(state["segmenter"])
        buffer.load_state_dict(state["buffer"])
        start, g_updates = int(state["step"]), int(state["generator_updates"])

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", run_config)
    log_path = out_dir / LOG_NAME
    kept = []
    if resume and log_path.exists():
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= start]
    log_path.write_text("".join(line + "\n" for line in kept))

    def checkpoint(step: int) -> None:
        atomic_path(gen_path, lambda tmp: torch.save({
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "claim_version": __version__,
            "config": gen_config.to_dict(),
            "mode": str(gen_config.mode),
            "crop_size": gen_config.crop_size,
            "seed": seed,
            "step": g_updates,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"scheme": "joint: per-step torch.Generator(seed*1000003+step)", "seed": seed, "next_step": step},
            "hist_centres": centres.tolist(),
            "n_train_slices": len(crops),
            "data": str(data_dir),
            "joint": {"step": step, "config": joint.to_dict(), "init_generator": run_config["init_generator"]},
        }, tmp))
        trainer.save(seg_path, joint_step=step)  # atomic (segmentation.checkpoint.save_checkpoint)
        # Self-contained (G and S states, buffer): a crash between the three writes cannot pair mismatched parts.
        atomic_path(state_path, lambda tmp: torch.save({
            "format": STATE_FORMAT,
            "step": step,
            "generator_updates": g_updates,
            "run_config": json.loads(json.dumps(run_config)),
            "generator": {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict()},
            "segmenter": trainer.state_dict(),
            "buffer": buffer.state_dict(),
        }, tmp))

    history: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(range(start, joint.steps), desc="train joint", unit="step", disable=not progress, leave=False)
    with log_path.open("a") as log:
        for step in bar:
            phase = joint.phase(step)
            g = step_generator(seed, step)
            rng = np.random.default_rng([seed, step])
            entry: dict[str, Any] = {"step": step + 1, "phase": phase}
            if phase in ("generator", "joint"):
                model.train()
                index = torch.randint(0, len(crops), (gen_config.batch_size,), generator=g)
                images, labels = augment_batch(crops.images[index], crops.label_maps[index], g)
                diffusion = training_loss(model, schedule, gen_config, images.to(dev), labels.to(dev),
                                          crops.hists[index].to(dev), g)
                loss = diffusion
                entry["diffusion_loss"] = float(diffusion.detach())
                if phase == "joint" and joint.lambda_consistency > 0:
                    batch = sample_canvas_crops(canvases, joint.consistency_batch, gen_config, centres, rng)
                    consistency = consistency_loss(
                        model, schedule, gen_config, trainer.network, batch.known.to(dev),
                        batch.label_maps.to(dev), batch.hists.to(dev), g,
                        t_max=joint.t_max, multiple=stride, extents=batch.extents,
                    )
                    loss = diffusion + joint.lambda_consistency * consistency
                    entry["consistency_loss"] = float(consistency.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                g_updates += 1
                _update_ema(ema, model, gen_config, g_updates)
            if phase in ("segmenter", "joint"):
                extra_images = extra_labels = None
                if phase == "joint":
                    if (step - joint.joint_start) % joint.refresh_every == 0:
                        sampler = LoadedGenerator(ema, gen_config, schedule, centres, g_updates, gen_path)
                        new_images, new_labels = paint_synthetic_slices(
                            sampler, canvases, joint.masks_per_refresh, seg_config.crop_size, rng,
                            sampler_steps=joint.sampler_steps,
                        )
                        buffer.add(new_images, new_labels)
                        entry["refreshed"] = int(new_images.shape[0])
                    if joint.synthetic_per_batch and len(buffer):
                        extra_images, extra_labels = buffer.sample(joint.synthetic_per_batch, g)
                entry["segmenter_loss"] = float(trainer.step(step - joint.generator_warmup, extra_images,
                                                             extra_labels))
                entry["buffer"] = len(buffer)
            done = step + 1
            if val and (done == joint.steps or (joint.checkpoint_every and done % joint.checkpoint_every == 0)):
                entry["val"] = trainer.validate()  # real held-out patients, slices stacked per patient
            entry["seconds"] = round(time.perf_counter() - t0, 4)
            history.append(entry)
            log.write(json.dumps(entry) + "\n")
            log.flush()
            bar.set_postfix({k[:3]: f"{entry[k]:.3f}" for k in ("diffusion_loss", "consistency_loss",
                                                                 "segmenter_loss") if k in entry})
            if joint.checkpoint_every and done % joint.checkpoint_every == 0 and done != joint.steps:
                checkpoint(done)
    checkpoint(max(joint.steps, start))
    return JointResult(gen_path, seg_path, history, time.perf_counter() - t0)


def _comparable(run_config: dict[str, Any]) -> dict[str, Any]:
    """Settings a resume must repeat: all but the step counts (a resume may extend a run) and the version."""
    out = {k: v for k, v in run_config.items() if k != "claim_version"}
    out["joint"] = {k: v for k, v in out["joint"].items() if k != "steps"}
    out["segmenter"] = {k: v for k, v in out["segmenter"].items() if k != "steps"}
    return out


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "joint state not found; nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/EOF errors for corrupt files
        raise InputError(path, f"not a readable joint state ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(path, f"not a claim joint state (no format '{STATE_FORMAT}')")
    return state
