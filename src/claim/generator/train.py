"""Train the generator on pathological slices: AdamW, EMA, seeded per-step data and noise, exact resume.

Every random draw of step ``s`` comes from a ``torch.Generator`` seeded with ``(seed, s)``, so a resumed run
reproduces the batches and noise of an uninterrupted one; the checkpoint holds the online weights, EMA weights
and optimizer state needed to continue exactly.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from claim import __version__
from claim.data.io import atomic_path, write_json
from claim.data.layouts import read_dataset
from claim.errors import ClaimError, InputError
from claim.generator.config import GeneratorConfig, Mode, resolve_device
from claim.generator.data import CropSet, augment_batch, build_training_set, lesion_masks, myocardium_masks
from claim.generator.denoiser import HistogramUNet, build_denoiser
from claim.generator.histogram import kmeans_centres
from claim.generator.loss import claim_loss, dilate_mask, lefusion_loss, lesion_weights
from claim.generator.preview import label_panel, write_grid
from claim.generator.sampling import ddim_inpaint, make_eps_fn
from claim.generator.schedule import NoiseSchedule
from claim.labels import Label

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "LoadedGenerator",
    "TrainResult",
    "step_generator",
    "training_loss",
    "train_generator",
    "load_generator",
]

CHECKPOINT_NAME = "generator.pt"
CHECKPOINT_FORMAT = "claim-generator"
CHECKPOINT_VERSION = 1
LOG_NAME = "train_log.jsonl"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: checkpoint path, final step, losses of the steps run now, wall time."""

    checkpoint: Path
    step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class LoadedGenerator:
    """A checkpoint ready for sampling: EMA denoiser (eval mode), its config, schedule and histogram centres."""

    model: HistogramUNet
    config: GeneratorConfig
    schedule: NoiseSchedule
    hist_centres: np.ndarray
    step: int
    path: Path


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of training step ``step``: a pure function of ``(seed, step)``."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))


def training_loss(
    model: HistogramUNet,
    schedule: NoiseSchedule,
    config: GeneratorConfig,
    images: torch.Tensor,
    label_maps: torch.Tensor,
    hists: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """One batch's loss for the config's mode and prediction; all randomness from ``generator`` (CPU), tensors on the
    model device. ``lefusion``: L1 on eps over scar pixels; ``claim``: lesion-weighted MSE on eps or on x0.

    Args:
        images: ``(B, 1, H, W)`` in [-1, 1]; label_maps: ``(B, 1, H, W)``; hists: ``(B, bins)``.
    """
    device = images.device
    b = images.shape[0]
    t = torch.randint(0, schedule.timesteps, (b,), generator=generator).to(device)
    noise = torch.randn(images.shape, generator=generator).to(device)
    drop = (torch.rand(b, generator=generator) < config.cond_drop_prob).to(device)
    x_t = schedule.add_noise(images, noise, t)
    if config.mode == Mode.LEFUSION:
        # Faithful: x_t only, never-dropped condition, L1 on scar (label 3) pixels.
        return lefusion_loss(model(x_t, t, hists), noise, label_maps == Label.INFARCT)
    lesion = lesion_masks(label_maps)
    inpaint_mask = dilate_mask(lesion, config.boundary_px)
    context = torch.cat([images * (~inpaint_mask).float(), inpaint_mask.float(), myocardium_masks(label_maps).float()],
                        dim=1)
    raw = model(torch.cat([x_t, context], dim=1), t, hists, drop)
    # Same lesion-focused weights either way; the target is what the network predicts (noise or clean image). The x0
    # loss is on the unclamped output so out-of-range predictions still get a gradient.
    target = images if config.prediction == "x0" else noise
    return claim_loss(raw, target, lesion_weights(lesion, config.boundary_px, config.boundary_weight))


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, config: GeneratorConfig, step: int) -> None:
    if step % config.ema_every:
        return
    with torch.no_grad():
        # As LeFusion: the EMA copies the online weights during warm-up, then decays.
        decay = 0.0 if step < config.ema_warmup else config.ema_decay
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)


def _write_samples(path: Path, ema: HistogramUNet, schedule: NoiseSchedule, config: GeneratorConfig,
                   data: CropSet, seed: int, device: torch.device) -> None:
    n = min(4, len(data))
    images = data.images[:n].to(device)
    labels = data.label_maps[:n].to(device)
    inpaint_mask = dilate_mask(lesion_masks(labels), config.boundary_px if config.mode == Mode.CLAIM else 0)
    eps_fn = make_eps_fn(ema, config.mode, images, inpaint_mask, myocardium_masks(labels), data.hists[:n].to(device),
                         schedule=schedule, prediction=config.prediction)
    ema.eval()
    out, _ = ddim_inpaint(eps_fn, schedule, images, inpaint_mask, config.sample_steps,
                          torch.Generator().manual_seed(seed))
    rows = [[images[i, 0].cpu().numpy(), label_panel(labels[i, 0].cpu().numpy()), out[i, 0].cpu().numpy()]
            for i in range(n)]
    write_grid(path, rows)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_path(path, lambda tmp: torch.save(payload, tmp))


def _read_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "generator checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/EOF errors for corrupt or foreign files
        raise InputError(path, f"not a readable generator checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a claim generator checkpoint (no format '{CHECKPOINT_FORMAT}')")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(path, f"checkpoint version {payload.get('version')} is not {CHECKPOINT_VERSION}")
    missing = [k for k in ("config", "step", "model", "ema", "optimizer", "hist_centres") if k not in payload]
    if missing:
        raise InputError(path, f"checkpoint lacks {missing}")
    return payload


def load_generator(path: Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a checkpoint's EMA denoiser for sampling. Raises ``InputError`` naming the file when it is unusable."""
    path = Path(path)
    payload = _read_checkpoint(path)
    try:
        config = GeneratorConfig.from_dict(payload["config"])
        model = build_denoiser(config)
        model.load_state_dict(payload["ema"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InputError(path, f"checkpoint does not match its config ({exc})") from exc
    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device).eval()
    return LoadedGenerator(model, config, NoiseSchedule(config.timesteps).to(device),
                           np.asarray(payload["hist_centres"], dtype=np.float32), int(payload["step"]), path)


def train_generator(
    data_dir: Path,
    out_dir: Path,
    config: GeneratorConfig,
    *,
    steps: int,
    seed: int = 0,
    resume: bool = False,
    device: str = "cpu",
    sample_every: int = 0,
    checkpoint_every: int = 500,
    progress: bool = True,
) -> TrainResult:
    """Train (or continue training) a generator until ``steps`` total steps.

    Args:
        data_dir: data folder in any layout; its slices with scar are the training set.
        out_dir: run folder: ``generator.pt``, ``train_log.jsonl``, ``config.json``, ``samples/step_*.png``.
        config: generator config (on resume it must equal the checkpoint's).
        steps: total number of optimisation steps (a resumed run continues up to this).
        seed: seed of weights init, data order, augmentation and noise.
        resume: continue from ``out_dir/generator.pt``.
        device: ``cpu`` | ``cuda`` | ``auto``.
        sample_every: write a preview grid every N steps (0: never).
        checkpoint_every: write the checkpoint every N steps (and always at the end).
        progress: show a tqdm bar with the loss.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    dev = resolve_device(device)
    payload = None
    if resume:
        payload = _read_checkpoint(ckpt_path)
        saved = GeneratorConfig.from_dict(payload["config"])
        if saved != config:
            diff = {k: (v, config.to_dict()[k]) for k, v in saved.to_dict().items() if config.to_dict()[k] != v}
            raise ClaimError(f"{ckpt_path}: --resume with a different config (checkpoint vs now: {diff})")
        if int(payload["seed"]) != seed:
            raise ClaimError(f"{ckpt_path}: --resume with seed {seed}, but the run used seed {payload['seed']}")
    elif ckpt_path.exists():
        raise ClaimError(f"{ckpt_path}: a checkpoint exists already; pass --resume or choose another --out")

    try:
        data = build_training_set(read_dataset(Path(data_dir)), config)
    except ValueError as exc:
        raise InputError(data_dir, str(exc)) from exc
    centres = kmeans_centres(data.hists.numpy(), config.n_clusters, seed=seed)

    with torch.random.fork_rng(devices=[]):
        # Initial weights are the one draw from torch's default generator: fork it so the caller's state is kept.
        torch.manual_seed(seed)
        model = build_denoiser(config)
    model.to(dev)
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = NoiseSchedule(config.timesteps).to(dev)
    start = 0
    if payload is not None:
        model.load_state_dict(payload["model"])
        ema.load_state_dict(payload["ema"])
        optimizer.load_state_dict(payload["optimizer"])
        start = int(payload["step"])

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", {"config": config.to_dict(), "seed": seed, "claim_version": __version__})
    log_path = out_dir / LOG_NAME
    kept = []
    if resume and log_path.exists():
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= start]
    log_path.write_text("".join(line + "\n" for line in kept))

    def checkpoint(step: int) -> None:
        _save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "claim_version": __version__,
            "config": config.to_dict(),
            "mode": str(config.mode),
            "crop_size": config.crop_size,
            "seed": seed,
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            # Step s draws everything from step_generator(seed, s): this pair is the complete RNG state.
            "rng": {"scheme": "per-step torch.Generator(seed*1000003+step)", "seed": seed, "next_step": step},
            "hist_centres": centres.tolist(),
            "n_train_slices": len(data),
            "data": str(data_dir),
        })

    losses: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=f"train {config.mode}", unit="step", disable=not progress, leave=False)
    with log_path.open("a") as log:
        for step in bar:
            model.train()
            g = step_generator(seed, step)
            index = torch.randint(0, len(data), (config.batch_size,), generator=g)
            images, labels = augment_batch(data.images[index], data.label_maps[index], g)
            loss = training_loss(model, schedule, config, images.to(dev), labels.to(dev), data.hists[index].to(dev), g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = step + 1
            _update_ema(ema, model, config, done)
            value = float(loss.detach())
            losses.append(value)
            log.write(json.dumps({"step": done, "loss": value, "seconds": round(time.perf_counter() - t0, 4)}) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{value:.4f}")
            if sample_every and done % sample_every == 0:
                _write_samples(out_dir / "samples" / f"step_{done:06d}.png", ema, schedule, config, data, seed, dev)
            if checkpoint_every and done % checkpoint_every == 0 and done != steps:
                checkpoint(done)
    final = max(steps, start)
    checkpoint(final)
    return TrainResult(ckpt_path, final, losses, time.perf_counter() - t0)
