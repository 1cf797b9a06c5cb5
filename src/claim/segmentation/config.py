"""Frozen segmenter configuration and its presets: the one place for defaults; saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from claim.config import Config
from claim.segmentation.loss import DICE_TARGETS

__all__ = ["DICE_TARGETS", "LR_SCHEDULES", "MAX_CONTEXT_SLICES", "MAX_MEMBERS", "SegmenterConfig", "SEGMENTER_PRESETS",
           "segmenter_preset"]

LR_SCHEDULES = ("poly", "constant")


MAX_CONTEXT_SLICES = 3  # 7 slices: about a whole short-axis stack
MAX_MEMBERS = 8  # an ensemble's cost grows with every member; nnU-Net stops at five


@dataclass(frozen=True)
class SegmenterConfig(Config):
    """Everything that defines a segmenter run.

    Attributes:
        crop_size: side of the LV-centred square ROI the segmenter sees (pixels; padded with the slice minimum).
            Training ROIs are centred on the labelled heart of each patient (up to ``roi_jitter`` pixels off); at
            prediction the localiser places them (see ``localiser_size``) and predictions are pasted back into the
            source grid.
        roi_jitter: training ROIs are cut up to this many pixels off the labelled heart's centre in each
            direction (uniform, per sample and step), so the segmenter learns to read an off-centre heart, as the
            localiser's centre can be ten or twenty pixels off at prediction (0 = always centred).
        filters: DynUNet channels per level; ``crop_size`` must be divisible by ``2 ** (len(filters) - 1)``.
        deep_supervision: extra output heads at coarser decoder levels (nnU-Net); their losses weigh 1/2, 1/4, ...
            of the main one. At most ``len(filters) - 2``; ``None`` = ``min(2, len(filters) - 2)``.
        dice_over: what the Dice half of the loss scores: ``classes`` (each label alone) or ``regions`` (the
            nested regions the EMIDEC metrics score, myocardium 2-4, infarct 3-4 and MVO 4, plus the cavity;
            ``claim.segmentation.loss.region_soft_dice``). Cross-entropy is over the classes either way, and
            predictions stay the per-pixel argmax.
        lr_schedule: ``poly`` (nnU-Net: ``lr * (1 - step / steps) ** 0.9``) or ``constant``.
        lr_warmup: steps over which the learning rate ramps linearly up to the schedule's value (0 = none). Adam's
            first steps, with its moment estimates still unreliable, are the ones a bad initial draw spoils.
        foreground_fraction: share of every batch drawn from scar-bearing slices only, the rest uniformly from all
            (nnU-Net's foreground oversampling; 0 = uniform). It applies per pool: with synthetic slices pooled
            with the real ones (``synthetic_fraction`` None), the forced share comes from both.
        context_slices: neighbouring slices on each side given to the segmenter as extra input channels (2.5D:
            ``1 + 2 * context_slices`` channels, the slice itself in the middle; at a stack's ends the edge slice
            repeats; training reverses the neighbours' order with ``flip_prob``, as stacks run apex-to-base in some
            datasets and base-to-apex in others). Scar is continuous across slices, and its neighbours tell scar
            from bright blood or fat.
        localiser_size: side of the whole-slice overview the localiser segments (heart: cavity + myocardium) to
            centre the ROI; 0 = no localiser, the ROI is the slice centre.
        localiser_filters: the localiser's DynUNet channels per level.
        postprocess: anatomical post-processing of predictions (``claim.segmentation.postprocess``).
        refine_roi: at prediction, cut the ROI a second time, centred on the heart the segmenter found in the
            first window (training ROIs are centred on the labelled heart; the coarse localiser's centre can be
            10-20 px off; ``claim.segmentation.predict``).
        mirror: test-time mirroring: predictions average the softmax over the four flips of the ROI. Off by
            default: on the 12 validation patients of a standard EMIDEC run it changed infarct Dice by +0.001,
            myocardium +0.012 and MVO -0.019, for 4x the prediction time.
        ema_decay: weight EMA of the segmenter (0 = off): validation, the best checkpoint and predictions use
            the average, which copies the online weights for its first ``1 / (1 - ema_decay)`` updates and then
            follows them with this decay; training itself is unchanged. With it on, validation also scores the
            online weights (``val_online`` in the log) so the two can be compared in one run.
        batch_size: real slices per step (per process under ``accelerate launch``).
        lr / weight_decay: AdamW.
        steps: total optimisation steps.
        val_every: validate on the held-out real patients every N steps (and at the end).
        val_fraction: fraction of real patients held out for validation (split by patient, stratified by scar).
            0 trains on every patient and validates on none: ``segmenter.pt`` is then the weights of the last step
            (the EMA where there is one), for a final model refitted on all the data after the recipe, steps
            included, was chosen on validation patients (nnU-Net's ``all`` fold).
        synthetic_fraction: with synthetic data, the fraction of each batch drawn from it; ``None`` pools the
            synthetic slices with the real ones and draws uniformly.
        rotate_deg / zoom_range / flip_prob / intensity_scale / gamma_range / noise_std / aug_prob: augmentation
            (nnU-Net-like; intensity terms act on the normalised image).
        members: segmenters trained on the same training and validation patients (on a CPU several at once in
            worker processes, ``claim.segmentation.train``), member ``k``
            with seed ``seed + k`` (each exactly the run ``--members 1 --seed seed+k --val-patients <member 0's>``
            would be);
            predictions average their softmax, each member in its own ROI (an ensemble, as nnU-Net averages its
            five folds). 1 = a single segmenter.
        snapshot_every: also keep the weights ``segmenter.pt`` would hold (the EMA where there is one) every N
            steps and at the last, as ``snapshots/step_<STEP>.pt`` (``step_000250.pt``; an ensemble's folder
            combines its members' snapshots of the same step), so a run without validation patients can still be
            scored along its course afterwards
            (``benchmarks/segmenter_holdout.py --snapshots``). They are copies only: nothing selects among them,
            and training is the same with or without them (0 = none).
    """

    # Snapshots are copies of weights the run makes anyway; saving more or fewer of them changes no step.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"steps", "snapshot_every"})

    crop_size: int = 128
    roi_jitter: int = 0
    filters: tuple[int, ...] = (16, 32, 64, 128, 256)
    deep_supervision: int | None = None
    dice_over: str = "classes"
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = "poly"
    lr_warmup: int = 0
    foreground_fraction: float = 0.33
    context_slices: int = 0
    localiser_size: int = 64
    localiser_filters: tuple[int, ...] = (8, 16, 32, 64)
    postprocess: bool = True
    refine_roi: bool = False
    mirror: bool = False
    ema_decay: float = 0.0
    weight_decay: float = 1e-5
    steps: int = 2000
    val_every: int = 200
    val_fraction: float = 0.2
    synthetic_fraction: float | None = None
    rotate_deg: float = 30.0
    zoom_range: tuple[float, float] = (0.85, 1.25)
    flip_prob: float = 0.5
    intensity_scale: float = 0.1
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.1
    aug_prob: float = 0.2
    members: int = 1
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        object.__setattr__(self, "localiser_filters", tuple(int(f) for f in self.localiser_filters))
        object.__setattr__(self, "zoom_range", tuple(float(z) for z in self.zoom_range))
        object.__setattr__(self, "gamma_range", tuple(float(g) for g in self.gamma_range))
        if len(self.filters) < 3:  # MONAI's DynUNet needs three levels or more
            raise ValueError(f"filters {self.filters} needs at least three levels")
        factor = 2 ** (len(self.filters) - 1)
        if self.crop_size <= 0 or self.crop_size % factor:
            raise ValueError(f"crop_size {self.crop_size} must be a positive multiple of {factor} for {self.filters}")
        if (isinstance(self.roi_jitter, bool) or int(self.roi_jitter) != self.roi_jitter or self.roi_jitter < 0
                or 2 * self.roi_jitter > self.crop_size):
            raise ValueError(f"roi_jitter {self.roi_jitter!r} must be an integer in 0..crop_size / 2 "
                             f"({self.crop_size // 2}): further off, the heart can leave the ROI")
        object.__setattr__(self, "roi_jitter", int(self.roi_jitter))
        if self.deep_supervision is None:
            object.__setattr__(self, "deep_supervision", min(2, max(len(self.filters) - 2, 0)))
        if not 0 <= self.deep_supervision <= len(self.filters) - 2:
            raise ValueError(f"deep_supervision {self.deep_supervision} must be in 0..{len(self.filters) - 2} for "
                             f"{len(self.filters)} levels")
        if self.dice_over not in DICE_TARGETS:
            raise ValueError(f"dice_over {self.dice_over!r} must be one of {DICE_TARGETS}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule {self.lr_schedule!r} must be one of {LR_SCHEDULES}")
        if isinstance(self.context_slices, bool) or int(self.context_slices) != self.context_slices \
                or not 0 <= self.context_slices <= MAX_CONTEXT_SLICES:
            raise ValueError(f"context_slices {self.context_slices!r} must be an integer in 0..{MAX_CONTEXT_SLICES}")
        object.__setattr__(self, "context_slices", int(self.context_slices))
        if self.lr_warmup < 0:
            raise ValueError(f"lr_warmup {self.lr_warmup} must be >= 0")
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ValueError(f"foreground_fraction {self.foreground_fraction} must be in [0, 1]")
        if self.localiser_size:
            if len(self.localiser_filters) < 3:
                raise ValueError(f"localiser_filters {self.localiser_filters} needs at least three levels")
            loc_factor = 2 ** (len(self.localiser_filters) - 1)
            if self.localiser_size < 0 or self.localiser_size % loc_factor:
                raise ValueError(f"localiser_size {self.localiser_size} must be 0 or a positive multiple of "
                                 f"{loc_factor} for {self.localiser_filters}")
        if self.batch_size < 1 or self.steps < 0 or self.val_every < 1:
            raise ValueError(f"batch_size {self.batch_size} >= 1, steps {self.steps} >= 0, val_every "
                             f"{self.val_every} >= 1 required")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction {self.val_fraction} must be in [0, 1) (0 = no validation)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay {self.ema_decay} must be in [0, 1) (0 = no weight EMA)")
        if self.synthetic_fraction is not None and not 0.0 <= self.synthetic_fraction < 1.0:
            raise ValueError(f"synthetic_fraction {self.synthetic_fraction} must be in [0, 1) or None")
        if isinstance(self.members, bool) or int(self.members) != self.members \
                or not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members {self.members!r} must be an integer in 1..{MAX_MEMBERS}")
        object.__setattr__(self, "members", int(self.members))
        if isinstance(self.snapshot_every, bool) or int(self.snapshot_every) != self.snapshot_every \
                or self.snapshot_every < 0:
            raise ValueError(f"snapshot_every {self.snapshot_every!r} must be an integer >= 0 (0 = no snapshots)")
        object.__setattr__(self, "snapshot_every", int(self.snapshot_every))

    @property
    def training_window(self) -> int:
        """Side of the stored training windows: the ROI plus ``roi_jitter`` on each side, from which every step
        cuts its ROI (``claim.segmentation.data.jittered_rois``)."""
        return self.crop_size + 2 * self.roi_jitter

    @property
    def input_channels(self) -> int:
        """Channels of the ROI segmenter's input: the slice and ``context_slices`` neighbours on each side."""
        return 1 + 2 * self.context_slices

    def replace(self, **changes: Any) -> SegmenterConfig:
        """As ``Config.replace``; new ``filters`` without a ``deep_supervision`` re-derive the default heads."""
        if "filters" in changes and "deep_supervision" not in changes:
            changes["deep_supervision"] = None
        return super().replace(**changes)


SEGMENTER_PRESETS: dict[str, dict[str, Any]] = {
    # Tests and demo: a few seconds per 10 steps on 2 CPU cores. lr 1e-2: at AdamW's 1e-3 this small net learns
    # the big classes (cavity, myocardium) but not the rare scar (~0.3% of pixels) within the few hundred steps
    # it gets (0 scar pixels predicted after 800 steps on a phantom; 1e-2 learns it in 150-500 steps, by seed).
    "tiny": dict(crop_size=64, filters=(8, 16, 32, 64), batch_size=4, lr=1e-2, steps=20,
                 val_every=10, localiser_size=48, localiser_filters=(8, 16, 32)),
    # nnU-Net-like 2D configuration for EMIDEC (LV-centred 128 px crops hold the heart at ~1.4-1.8 mm/px).
    # Weight EMA 0.99: of the online weights and EMAs 0.99 / 0.995 / 0.999 carried through one run per seed, the
    # validation patients ranked 0.99 first at seeds 0 and 1 (best infarct Dice 0.506 / 0.460 against 0.505 / 0.423
    # online, mean of the last five 0.498 / 0.444 against 0.488 / 0.412), and its curve is smoother, so the best
    # checkpoint is less a matter of luck (benchmarks/segmenter_ema.py; the test gain is not decided, see README).
    # ROI jitter 16 px: the localiser's centre was 10-67 px off on a few patients, and a segmenter that only ever
    # saw centred ROIs then misread the edge of its window. On the validation patients of seeds 0 and 1 (16 with
    # infarct), jitter 16 against none: +0.037 [+0.012, +0.069] myocardium Dice and +0.046 [-0.008, +0.098]
    # infarct (not decided); against jitter 32: +0.015 [+0.001, +0.027] infarct (README, "The segmenter").
    # Two members: on the 12 validation patients of seed 0, the ensemble of the seed-0 and seed-1 runs against each
    # alone: +0.014 [-0.010, +0.037] and +0.013 [-0.004, +0.030] infarct Dice (last-step weights; +0.009 / +0.011
    # with each run's best checkpoint), myocardium +0.006; not decided on 8 patients with scar, but positive in all
    # four comparisons, and nnU-Net ensembles its models the same way. Two 3,000-step bf16 members fit the 25 min a
    # standard model may take on 2 cores (README, "The segmenter").
    "standard": dict(crop_size=128, filters=(16, 32, 64, 128, 256), batch_size=8, lr=3e-3, steps=3000, val_every=250,
                     ema_decay=0.99, roi_jitter=16, members=2),
}


def segmenter_preset(name: str, **overrides: Any) -> SegmenterConfig:
    """Config of preset ``name`` (``tiny`` or ``standard``) with keyword overrides (e.g. ``steps=50``)."""
    if name not in SEGMENTER_PRESETS:
        raise ValueError(f"unknown segmenter preset {name!r}; choose one of {sorted(SEGMENTER_PRESETS)}")
    values = {**SEGMENTER_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    SegmenterConfig.check_keys(values)
    return SegmenterConfig(**values)
