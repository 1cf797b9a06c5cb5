"""The segmenter's trainer: model, optimizer and one seeded step (batches, augmentation, learning rate).

Every random draw of step ``s`` on process ``r`` comes from a ``torch.Generator`` seeded with ``(seed, s, r)``
(batch indices, then the augmentation seed), so a resumed run reproduces an uninterrupted one exactly, and under
``accelerate launch --num_processes N`` each rank trains on its own seeded batch while DDP keeps weights equal.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from claim.data.patient import Patient
from claim.evaluation.metrics import dice_scores
from claim.runtime import autocast, resolve_device, resolve_precision
from claim.segmentation.checkpoint import save_checkpoint
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.data import SliceSet, augment_batch, build_augmentation, jittered_rois
from claim.segmentation.loss import supervised_loss
from claim.segmentation.net import build_segmenter, normalise_images
from claim.segmentation.predict import predict_label_maps
from claim.training import ema_horizon, fused_adamw, step_generator, update_ema

__all__ = ["SegmenterTrainer", "validation_metrics"]


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
        if config.members != 1:
            raise ValueError(f"a trainer trains one segmenter, not {config.members} members "
                             "(claim.segmentation.train.train_segmenter trains an ensemble's members)")
        self.config, self.seed, self.val_patients = config, int(seed), list(val_patients)
        self.accelerator = accelerator or Accelerator(cpu=resolve_device(device).type == "cpu")
        synthetic = synthetic if synthetic is not None and len(synthetic) else None
        if synthetic is not None and config.synthetic_fraction is None:
            pools = [(SliceSet.concat([train, synthetic], config.crop_size), config.batch_size)]
        elif synthetic is not None:
            n_syn = int(round(config.synthetic_fraction * config.batch_size))
            pools = [(train, config.batch_size - n_syn), (synthetic, n_syn)]
        else:
            pools = [(train, config.batch_size)]
        self._pools = [(pool, n, np.flatnonzero(pool.has_scar)) for pool, n in pools if n > 0]
        if any(pool.images.shape[-1] not in (config.crop_size, config.training_window)
               for pool, _n, _fg in self._pools):
            raise ValueError(f"training slices must be {config.crop_size} px ROIs or {config.crop_size} + 2 x "
                             f"{config.roi_jitter} px windows (training_slices(patients, config))")
        if any(pool.images.shape[1] != config.input_channels for pool, _n, _fg in self._pools):
            raise ValueError(f"a segmenter with context_slices {config.context_slices} needs {config.input_channels}"
                             "-channel training slices (training_slices(patients, config))")
        if config.localiser_size and any(pool.overviews is None or pool.overviews.shape[-1] != config.localiser_size
                                         for pool, _n, _fg in self._pools):
            raise ValueError(f"a segmenter with a localiser needs {config.localiser_size} px overviews in every "
                             "training pool (training_slices(patients, config))")
        with torch.random.fork_rng(devices=[]):
            # Initial weights are the one draw from torch's default generator: fork it to keep the caller's state.
            torch.manual_seed(self.seed)
            model = build_segmenter(config)
        optimizer = fused_adamw(model.parameters(), self.accelerator.device, lr=config.lr,
                                weight_decay=config.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # The EMA is never trained or wrapped: an fp32 copy, on the device, moved towards the weights each step.
        self.ema = copy.deepcopy(self.network).requires_grad_(False).eval() if config.ema_decay else None
        self.augmentation = build_augmentation(config)
        self.precision = resolve_precision(precision, self.accelerator.device)
        self.steps_done = 0
        self.last_localiser_loss: float | None = None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def network(self) -> torch.nn.Module:
        """The bare model (unwrapped from DDP): the online weights, which train."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def evaluated_network(self) -> torch.nn.Module:
        """The weights that validation scores and checkpoints keep: the EMA when ``config.ema_decay``, else
        the online weights."""
        return self.ema if self.ema is not None else self.network

    def _draw(self, pool: SliceSet, n: int, scar_index: np.ndarray, g: torch.Generator) -> np.ndarray:
        """``n`` slice indices: ``foreground_fraction`` of them from scar-bearing slices, the rest uniform."""
        n_fg = int(round(self.config.foreground_fraction * n)) if len(scar_index) else 0
        uniform = torch.randint(0, len(pool), (n - n_fg,), generator=g).numpy()
        forced = scar_index[torch.randint(0, len(scar_index), (n_fg,), generator=g).numpy()] if n_fg else []
        return np.concatenate([np.asarray(forced, dtype=np.int64), uniform.astype(np.int64)])

    def _real_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        g = step_generator(self.seed, step, self.accelerator.process_index)
        images, labels, views, view_labels = [], [], [], []
        for pool, n, scar_index in self._pools:
            index = self._draw(pool, n, scar_index, g)
            rois, roi_labels = jittered_rois(pool.images[index], pool.labels[index], self.config.crop_size, g)
            images.append(torch.from_numpy(rois))
            labels.append(torch.from_numpy(roi_labels))
            if self.config.localiser_size:
                views.append(torch.from_numpy(pool.overviews[index]))
                view_labels.append(torch.from_numpy(pool.overview_labels[index]))
        aug_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        overviews = None
        if self.config.localiser_size:
            overviews = _shift_and_flip(torch.cat(views), torch.cat(view_labels), self.config.flip_prob, g)
            overviews = (normalise_images(overviews[0].to(self.device)), overviews[1].to(self.device))
        normalised = normalise_images(torch.cat(images).to(self.device))
        if self.config.context_slices:
            normalised = _reverse_context(normalised, self.config.flip_prob, g)
        images_t, labels_t = augment_batch(self.augmentation, normalised, torch.cat(labels).to(self.device), aug_seed)
        return images_t, labels_t, overviews

    def learning_rate(self, step: int) -> float:
        """The learning rate of ``step``: a pure function of the step, so a resumed run follows the same curve."""
        warmup = min(1.0, (step + 1) / self.config.lr_warmup) if self.config.lr_warmup else 1.0
        if self.config.lr_schedule == "poly" and self.config.steps > 0:
            return warmup * self.config.lr * max(1.0 - step / self.config.steps, 0.0) ** 0.9
        return warmup * self.config.lr

    def step(self, step: int, extra_images: torch.Tensor | None = None,
             extra_labels: torch.Tensor | None = None) -> float:
        """One optimisation step on the seeded batch of ``step``, plus an optional extra batch.

        Args:
            step: 0-based step index (selects the batch and augmentation draws).
            extra_images: ``(B, K, C, C)`` raw images (``K = config.input_channels``) (e.g. synthetic; not augmented).
                They are normalised differentiably, so when they require grad the loss gradient also reaches their
                producer (the caller steps that producer's optimizer itself).
            extra_labels: ``(B, C, C)`` label ids of ``extra_images``.

        Returns:
            The segmenter's loss value (the localiser's, when it has one, is in ``last_localiser_loss``).
        """
        if (extra_images is None) != (extra_labels is None):
            raise ValueError("give both extra_images and extra_labels, or neither")
        images, labels, overviews = self._real_batch(step)
        if extra_images is not None:
            c, k = self.config.crop_size, self.config.input_channels
            if extra_images.shape[1:] != (k, c, c) or extra_labels.shape != (extra_images.shape[0], c, c):
                raise ValueError(f"extra batch must be images (B, {k}, {c}, {c}) and labels (B, {c}, {c}), got "
                                 f"{tuple(extra_images.shape)} and {tuple(extra_labels.shape)}")
            images = torch.cat([images, normalise_images(extra_images.to(self.device))])
            labels = torch.cat([labels, extra_labels.to(self.device).long()])
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        with autocast(self.precision, self.device):
            if overviews is None:
                logits, view_logits = self.model(images, all_outputs=True), None
            else:
                logits, view_logits = self.model(images, overviews[0], all_outputs=True)
        # The losses in fp32 whatever the forward ran in: softmax sums over ~10^5 pixels lose digits in bf16.
        loss = supervised_loss(logits.float(), labels, self.config.dice_over)
        if view_logits is not None:
            localiser_loss = supervised_loss(view_logits.float(), overviews[1])
        total = loss if overviews is None else loss + localiser_loss
        self.last_localiser_loss = None if overviews is None else float(localiser_loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(total)
        self.optimizer.step()
        self.steps_done = step + 1
        if self.ema is not None:
            update_ema(self.ema, self.network, self.steps_done, every=1,
                       warmup=ema_horizon(self.config.ema_decay), decay=self.config.ema_decay)
        return float(loss.detach())

    def validate(self, network: torch.nn.Module | None = None) -> dict:
        """:func:`validation_metrics` of :attr:`evaluated_network` (or ``network``: give ``trainer.network`` to
        score the online weights) on the validation patients; ``{}`` without any."""
        return validation_metrics(self.evaluated_network if network is None else network, self.config,
                                  self.val_patients, self.precision)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: online weights, optimizer, step, seed, and the EMA when there is one."""
        state = {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.steps_done, "seed": self.seed}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = int(state["step"])
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError("the state holds no weight EMA, but config.ema_decay asks for one")
            self.ema.load_state_dict(state["ema"])

    def save(self, path: Path, *, with_optimizer: bool = True, **fields: Any) -> None:
        """Write a self-describing checkpoint (main process only); ``fields`` are stored alongside.

        With the optimizer (a resume point), ``model`` holds the online weights and ``ema`` the average; without
        it (a checkpoint to predict with), ``model`` holds :attr:`evaluated_network`.
        """
        if not self.accelerator.is_main_process:
            return
        state = self.state_dict()
        if with_optimizer:
            model_state = state["model"]
            extra = {k: state[k] for k in ("optimizer", "ema") if k in state}
        else:
            model_state, extra = self.evaluated_network.state_dict(), {}
        save_checkpoint(path, self.config, model_state, step=self.steps_done, seed=self.seed,
                        num_processes=self.accelerator.num_processes, precision=self.precision, **extra, **fields)


def _reverse_context(images: torch.Tensor, prob: float, g: torch.Generator) -> torch.Tensor:
    """Each 2.5D sample's neighbour channels in reverse order with probability ``prob``: the order a stack runs in
    (apex to base or back) depends on the dataset, so the network must not learn one."""
    reverse = (torch.rand(len(images), generator=g) < prob).to(images.device)
    return torch.where(reverse[:, None, None, None], images.flip(1), images)


def _shift_and_flip(images: torch.Tensor, labels: torch.Tensor, flip_prob: float,
                    g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The localiser's augmentation: each overview moved by up to a quarter of its side (edge-padded) and flipped.

    Its task is coarse (where is the heart) but must not learn "the heart is in the middle": EMIDEC's slices are
    LV-centred, other scanners' fields of view are not.
    """
    size = images.shape[-1]
    reach = size // 4
    padded_images = torch.nn.functional.pad(images, (reach,) * 4, mode="replicate")
    padded_labels = torch.nn.functional.pad(labels, (reach,) * 4, value=0)
    offsets = torch.randint(0, 2 * reach + 1, (len(images), 2), generator=g).tolist()
    flips = (torch.rand(len(images), 2, generator=g) < flip_prob).tolist()
    out_images, out_labels = [], []
    for i, ((dr, dc), (flip_r, flip_c)) in enumerate(zip(offsets, flips, strict=True)):
        image = padded_images[i, :, dr:dr + size, dc:dc + size]
        label = padded_labels[i, dr:dr + size, dc:dc + size]
        dims = [d for d, flip in ((-2, flip_r), (-1, flip_c)) if flip]
        out_images.append(image.flip(dims) if dims else image)
        out_labels.append(label.flip(dims) if dims else label)
    return torch.stack(out_images), torch.stack(out_labels)


def validation_metrics(model: torch.nn.Module, config: SegmenterConfig, patients: Sequence[Patient],
                       precision: str = "fp32") -> dict:
    """Mean Dice over ``patients`` (slices stacked per patient): infarct, myocardium, MVO; ``{}`` for none.

    Infarct and MVO Dice average only over patients whose labels contain that class: a patient without scar
    scores Dice 1 for an empty prediction, so averaging over them would rank a network that never predicts
    scar above one that finds it (the same convention as the study's test metrics).
    """
    if not patients:
        return {}
    scores, present = [], []
    for patient in patients:
        predicted = predict_label_maps(model, config, patient.images, precision=precision)
        scores.append(dice_scores(predicted, patient.label_maps))
        present.append({"myocardium_dice": True,
                        "infarct_dice": patient.has_infarct,
                        "mvo_dice": patient.has_mvo})
    out: dict[str, Any] = {}
    for key in scores[0]:
        values = [s[key] for s, has in zip(scores, present, strict=True) if has[key]]
        out[key] = float(np.mean(values)) if values else float("nan")
    out["n_patients"] = len(scores)
    out["n_with_infarct"] = sum(has["infarct_dice"] for has in present)
    return out
