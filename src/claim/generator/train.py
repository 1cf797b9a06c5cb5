"""Train the generator on pathological slices: AdamW, EMA, seeded per-step data and noise, exact resume.

Every random draw of step ``s`` comes from ``claim.training.step_generator(seed, s)``, so a resumed run reproduces
the batches and noise of an uninterrupted one; the checkpoint holds the online weights, EMA weights and optimizer
state needed to continue exactly. :class:`GeneratorTrainer` is the model side (also composed by joint training);
:func:`train_generator` is the run around it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from claim import __version__
from claim.data.augmented import refuse_augmented
from claim.data.layouts import read_dataset
from claim.errors import InputError
from claim.generator.checkpoint import (
    CHECKPOINT_NAME,
    LoadedGenerator,
    config_from_checkpoint,
    read_generator_checkpoint,
    write_generator_checkpoint,
)
from claim.generator.condition import centre_context, level_table
from claim.generator.config import GeneratorConfig, Mode
from claim.generator.context import build_context, config_anatomy, denoiser_input, inpaint_region
from claim.generator.data import CropSet, augment_batch, build_training_set, lesion_masks
from claim.generator.denoiser import HistogramUNet, build_denoiser
from claim.generator.histogram import kmeans_centres
from claim.generator.loss import claim_loss, lefusion_loss, lesion_weights
from claim.generator.preview import label_panel, write_grid
from claim.generator.sampling import ddim_inpaint, make_eps_fn
from claim.generator.schedule import NoiseSchedule
from claim.labels import Label
from claim.output import data_identity
from claim.runtime import autocast, resolve_device, resolve_precision
from claim.training import (
    Cadence,
    RunFolder,
    default_checkpoint_every,
    fused_adamw,
    run_steps,
    step_generator,
    update_ema,
)
from claim.training.run import check_checkpoint_resume

__all__ = ["TrainResult", "GeneratorTrainer", "training_loss", "train_generator"]

RNG_SCHEME = "per-step torch.Generator(seed*1000003+step)"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: checkpoint path, final step, losses of the steps run now, wall time."""

    checkpoint: Path
    step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


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
    region = inpaint_region(config, label_maps)
    raw = model(denoiser_input(config.mode, x_t, build_context(
        images, region, myocardium=config_anatomy(label_maps, config))), t, hists, drop)
    # Same lesion-focused weights either way; the target is what the network predicts (noise or clean image). The x0
    # loss is on the unclamped output so out-of-range predictions still get a gradient.
    target = images if config.prediction == "x0" else noise
    weights = lesion_weights(lesion_masks(label_maps), config.boundary_px, config.boundary_weight)
    return claim_loss(raw, target, weights)


class GeneratorTrainer:
    """Denoiser, its EMA copy, optimizer and one seeded step; knows nothing about files except ``save``.

    Args:
        config: generator config.
        data: training crops (pathological slices).
        seed: seed of the initial weights, the histogram centres and every step's draws.
        device: ``cpu`` | ``cuda`` | ``auto``.
        hist_centres: k-means centres of the real scar histograms (default: fitted on ``data`` with ``seed``).
        precision: ``fp32`` | ``bf16`` | ``auto`` (``claim.runtime.resolve_precision``): autocast of the forward
            passes; weights, EMA and optimizer state stay fp32.
    """

    def __init__(self, config: GeneratorConfig, data: CropSet, *, seed: int, device: str | torch.device = "cpu",
                 hist_centres: np.ndarray | None = None, precision: str = "fp32") -> None:
        self.config, self.data, self.seed = config, data, int(seed)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        if hist_centres is None:
            hist_centres = kmeans_centres(data.hists.numpy(), config.n_clusters, seed=self.seed)
        self.hist_centres = np.asarray(hist_centres, dtype=np.float32)
        # The scan levels behind each centre, for sampling a condition that suits a canvas (claim.generator.condition).
        levels = level_table(data.images[:, 0].numpy(), data.label_maps[:, 0].numpy())
        self.hist_context = centre_context(data.hists.numpy(), levels, self.hist_centres)
        with torch.random.fork_rng(devices=[]):
            # Initial weights are the one draw from torch's default generator: fork it so the caller's state is kept.
            torch.manual_seed(self.seed)
            model = build_denoiser(config)
        self.model = model.to(self.device)
        self.ema = copy.deepcopy(self.model).eval()
        self.optimizer = fused_adamw(self.model.parameters(), self.device, lr=config.lr,
                                     weight_decay=config.weight_decay)
        self.schedule = NoiseSchedule(config.timesteps).to(self.device)
        self.updates = 0  # optimiser updates so far; the EMA schedule counts these

    def step(self, step: int, extra_loss: Callable[[], torch.Tensor] | None = None,
             generator: torch.Generator | None = None) -> float:
        """One update on the seeded batch of ``step``: diffusion loss, plus ``extra_loss()`` when given.

        Args:
            step: 0-based step index (selects the batch, augmentation and noise).
            extra_loss: returns a (weighted) term added to the diffusion loss, evaluated after it with the same
                generator (e.g. joint training's consistency term).
            generator: the step's CPU generator (default ``step_generator(seed, step)``); pass one to share the
                step's draws with the caller.

        Returns:
            The diffusion loss value.
        """
        g = generator if generator is not None else step_generator(self.seed, step)
        self.model.train()
        index = torch.randint(0, len(self.data), (self.config.batch_size,), generator=g)
        images, labels = augment_batch(self.data.images[index], self.data.label_maps[index], g)
        dev = self.device
        with autocast(self.precision, dev):
            diffusion = training_loss(self.model, self.schedule, self.config, images.to(dev), labels.to(dev),
                                      self.data.hists[index].to(dev), g)
            loss = diffusion if extra_loss is None else diffusion + extra_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        c = self.config
        update_ema(self.ema, self.model, self.updates, every=c.ema_every, warmup=c.ema_warmup, decay=c.ema_decay)
        return float(diffusion.detach())

    def sampler(self, path: Path) -> LoadedGenerator:
        """The EMA denoiser as a sampler (shares weights with this trainer)."""
        return LoadedGenerator(self.ema, self.config, self.schedule, self.hist_centres, self.updates, Path(path),
                               precision=self.precision, hist_context=self.hist_context)

    def write_samples(self, path: Path) -> None:
        """A preview grid (source, labels, DDIM inpainting) of the first training crops."""
        n = min(4, len(self.data))
        images, labels = self.data.images[:n].to(self.device), self.data.label_maps[:n].to(self.device)
        region = inpaint_region(self.config, labels)
        eps_fn = make_eps_fn(self.ema, self.config.mode, images, region,
                             config_anatomy(labels, self.config),
                             self.data.hists[:n].to(self.device), schedule=self.schedule,
                             prediction=self.config.prediction)
        self.ema.eval()
        with torch.no_grad(), autocast(self.precision, self.device):
            out, _ = ddim_inpaint(eps_fn, self.schedule, images, region, self.config.sample_steps,
                                  torch.Generator().manual_seed(self.seed))
        write_grid(path, [[images[i, 0].cpu().numpy(), label_panel(labels[i, 0].cpu().numpy()),
                           out[i, 0].cpu().numpy()] for i in range(n)])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["step"])

    def save(self, path: Path, **fields: Any) -> Path:
        """Write the generator checkpoint (``claim generate`` reads it); ``fields`` are stored alongside."""
        return write_generator_checkpoint(path, self.config, self.state_dict(), hist_centres=self.hist_centres,
                                          hist_context=self.hist_context.tolist(), seed=self.seed,
                                          n_train_slices=len(self.data), precision=self.precision,
                                          **fields)


def train_generator(
    data_dir: Path,
    out_dir: Path,
    config: GeneratorConfig,
    *,
    seed: int = 0,
    resume: bool = False,
    device: str = "cpu",
    sample_every: int = 0,
    checkpoint_every: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    precision: str = "fp32",
) -> TrainResult:
    """Train (or continue training) a generator until ``config.steps`` total steps.

    Args:
        data_dir: data folder in any layout; its slices with scar are the training set.
        out_dir: run folder: ``generator.pt``, ``train_log.jsonl``, ``config.json``, ``samples/step_*.png``.
        config: generator config (on resume it must equal the checkpoint's, ``steps`` excepted).
        seed: seed of weights init, data order, augmentation and noise.
        resume: continue from ``out_dir/generator.pt``.
        device: ``cpu`` | ``cuda`` | ``auto``.
        sample_every: write a preview grid every N steps (0: never).
        checkpoint_every: write the checkpoint every N steps (and always at the end); default: a quarter of the
            run (at most 500), so a kill always leaves something to resume.
        progress: show a tqdm bar with the loss.
        overwrite: replace an earlier run in ``out_dir``.
        precision: ``fp32`` | ``bf16`` | ``auto`` (recorded in ``config.json`` and the checkpoint as run).
    """
    data_dir = Path(data_dir)
    refuse_augmented(data_dir, "train the generator on the real data, not on its own painted scar")
    run = RunFolder(out_dir, "train-generator")
    ckpt_path = run.path(CHECKPOINT_NAME)
    run.claim(resume=resume, overwrite=overwrite)
    if checkpoint_every is None:
        checkpoint_every = default_checkpoint_every(config.steps)
    data_id = data_identity([data_dir])
    # A run killed before its first checkpoint resumes from step 0.
    payload = read_generator_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if payload is not None:
        check_checkpoint_resume(ckpt_path, payload, config_from_checkpoint(ckpt_path, payload), config, seed, data_id)
    try:
        data = build_training_set(read_dataset(data_dir), config)
    except ValueError as exc:
        raise InputError(data_dir, str(exc)) from exc
    trainer = GeneratorTrainer(config, data, seed=seed, device=device, precision=precision)
    if payload is not None:
        trainer.load_state_dict(payload)
    start = trainer.updates
    run.start({"command": "train-generator", "config": config, "seed": seed, "claim_version": __version__,
               "data": str(data_dir), "device": device, "precision": trainer.precision, "sample_every": sample_every,
               "checkpoint_every": checkpoint_every}, start if resume else None, inputs=[data_dir])

    def checkpoint(step: int) -> None:
        # Step s draws everything from step_generator(seed, s): this pair is the complete RNG state.
        trainer.save(ckpt_path, rng={"scheme": RNG_SCHEME, "seed": seed, "next_step": step}, data=str(data_dir),
                     data_identity=data_id)

    def one_step(step: int) -> dict[str, Any]:
        return {"loss": trainer.step(step)}

    cadences = [Cadence(sample_every, lambda done: trainer.write_samples(run.path("samples") / f"step_{done:06d}.png")),
                Cadence(checkpoint_every, checkpoint, at_end=False)]
    history = run_steps(run, start, config.steps, one_step, cadences, desc=f"train {config.mode}", progress=progress,
                        postfix=lambda e: {"loss": f"{e['loss']:.4f}"})
    final = max(config.steps, start)
    checkpoint(final)
    run.finish()
    seconds = history[-1]["seconds"] if history else 0.0
    return TrainResult(ckpt_path, final, [e["loss"] for e in history], seconds)
