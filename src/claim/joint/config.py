"""Frozen joint-training configuration and its presets (saved inside the run's state and ``config.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from claim.config import Config
from claim.generator.condition import HIST_RULES
from claim.training.run import default_checkpoint_every

__all__ = ["JointConfig", "JOINT_PRESETS", "joint_preset", "CONSISTENCY_BOUNDS", "HISTOGRAM_DISTANCES",
           "FEEDBACK_STARTS"]

CONSISTENCY_BOUNDS = ("none", "real", "match")
# How the histogram guard measures painted scar against its condition (claim.joint.consistency).
HISTOGRAM_DISTANCES = ("soft", "quantile")
# What the feedback terms' x_t is noised from (claim.joint.consistency.generator_feedback).
FEEDBACK_STARTS = ("canvas", "painted")


@dataclass(frozen=True)
class JointConfig(Config):
    """How generator G and segmenter S train together.

    Step ``s`` (0-based, ``steps`` in total) belongs to one phase: ``s < generator_warmup``: G diffusion only;
    then ``segmenter_warmup`` steps of S on real slices only; then joint steps, where G minimises its diffusion
    loss plus ``lambda_consistency`` times the segmentation-consistency loss and S trains on real slices plus
    ``synthetic_per_batch`` slices drawn from a replay buffer that G's EMA refreshes every ``refresh_every`` steps.

    Attributes:
        steps: total steps, warm-ups included (must exceed both warm-ups together).
        lambda_consistency: weight of the consistency term in G's loss (0 turns the feedback off).
        t_max: the feedback terms noise their crops (see ``feedback_start``) to ``t`` drawn uniformly from
            ``0..t_max-1`` (capped at T). The quantile guard reads the unclamped estimate, which an eps net scales
            by 1/sqrt(abar_t): screened with t_max 100 and an x0 net only.
        consistency_batch: canvas crops per consistency term.
        refresh_every: joint steps between replay-buffer refreshes (the first joint step always refreshes).
        masks_per_refresh: SMILE mask stacks (one canvas patient each) painted per refresh; every slice with scar
            becomes one synthetic slice.
        buffer_size: most synthetic slices kept (oldest dropped first).
        synthetic_per_batch: synthetic slices added to each joint S step.
        generator_warmup: G-only diffusion steps at the start.
        segmenter_warmup: S-only real steps after G's warm-up.
        sampler_steps: DDIM steps of the fast sampler that fills the buffer, and of the painting the feedback
            terms read with ``feedback_start`` ``painted`` (one such pass per joint step).
        lambda_histogram: weight of the histogram guard in G's joint loss: the scar G paints for the consistency
            term must keep the intensity histogram it was conditioned on (1-D Wasserstein distance of soft
            histograms), so G cannot meet S by painting brighter, more uniform scar than asked (0 turns it off).
        histogram_distance: how the guard measures that distance: ``soft`` (soft histograms of the clamped x0
            estimate; values above the top bin centre get no gradient) or ``quantile`` (the exact distance
            between the sorted painted values of the unclamped estimate and the condition's quantiles: every
            value, near-white and out-of-range ones included, is pulled towards the asked histogram).
        feedback_start: what the feedback terms (consistency, guard, features) noise to ``x_t``: ``canvas`` (the
            scar-free canvas crop: at small t G's estimate must paint scar into clean normal myocardium in one
            step, which sampling never asks, and G learns to brighten the lesion at every step) or ``painted`` (G's
            own no-gradient DDIM painting of the crop with ``sampler_steps`` steps: the terms judge the scar G
            paints).
        consistency_border_px: the consistency term (and the real-scar bound) leaves out the ring of pixels outside
            the scar and within this many pixels of it: S's verdict there rewards a hard edge exactly on the label,
            which real scar, soft-edged and annotated by eye, does not have (0: every pixel counts).
        consistency_bound: ``none``: the consistency term as it is; ``real``: a hinge, counting only what the
            synthetic composite loses beyond what frozen S loses on real scar crops of the same step (no reward
            for scar easier than real scar); ``match``: two-sided, the distance between the two losses, so G is
            pushed back from scar easier for S than real scar as much as from scar harder (hard but faithful: the
            failure this guards against is bright, sharp-edged scar that S finds trivially).
        lambda_feature: weight of the feature term in G's joint loss: frozen S's finest decoder features over the
            painted scar must have the per-channel mean and spread of its features over real scar crops of the same
            step (``claim.joint.consistency.feature_loss``; 0 turns it off).
        hist_rule: how the histogram conditions of the consistency batch and of the replay buffer's slices are
            drawn for each canvas (``claim.generator.condition.HIST_RULES``, as ``claim generate --hist-cluster``):
            ``matched`` a centre that suits the canvas's intensity level, ``mapped`` that centre moved into the
            canvas's intensity frame (what the histogram guard then holds G to), ``random`` uniformly.
        checkpoint_every: write both checkpoints (and score S on its validation patients) every N steps and at the
            end; None: a quarter of the run (at most 250), so a kill always leaves something to resume.
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"steps"})

    steps: int = 2000
    lambda_consistency: float = 0.1
    t_max: int = 100
    consistency_batch: int = 4
    refresh_every: int = 50
    masks_per_refresh: int = 1
    buffer_size: int = 64
    synthetic_per_batch: int = 2
    generator_warmup: int = 200
    segmenter_warmup: int = 200
    sampler_steps: int = 10
    lambda_histogram: float = 0.0
    histogram_distance: str = "soft"
    feedback_start: str = "canvas"
    consistency_border_px: int = 0
    consistency_bound: str = "none"
    lambda_feature: float = 0.0
    hist_rule: str = "matched"
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        positive = ("t_max", "consistency_batch", "refresh_every", "masks_per_refresh", "buffer_size", "sampler_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("generator_warmup", "segmenter_warmup", "synthetic_per_batch", "checkpoint_every",
                     "consistency_border_px"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lambda_consistency", "lambda_histogram", "lambda_feature"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name, choices in (("consistency_bound", CONSISTENCY_BOUNDS), ("histogram_distance", HISTOGRAM_DISTANCES),
                              ("feedback_start", FEEDBACK_STARTS), ("hist_rule", HIST_RULES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.steps <= self.generator_warmup + self.segmenter_warmup:
            raise ValueError(
                f"steps {self.steps} leave no joint step after the warm-ups ({self.generator_warmup} generator + "
                f"{self.segmenter_warmup} segmenter); raise --steps or lower the warm-ups"
            )
        if self.synthetic_per_batch > self.buffer_size:
            raise ValueError(f"synthetic_per_batch {self.synthetic_per_batch} exceeds buffer_size {self.buffer_size}")

    @property
    def checkpoint_cadence(self) -> int:
        """Steps between checkpoints: ``checkpoint_every``, or a quarter of the run when it is None."""
        if self.checkpoint_every is not None:
            return int(self.checkpoint_every)
        return default_checkpoint_every(self.steps, cap=250)

    @property
    def joint_start(self) -> int:
        """Index of the first joint step."""
        return self.generator_warmup + self.segmenter_warmup

    def phase(self, step: int) -> str:
        """``generator`` | ``segmenter`` | ``joint`` for 0-based step ``step``."""
        if step < self.generator_warmup:
            return "generator"
        return "segmenter" if step < self.joint_start else "joint"


JOINT_PRESETS: dict[str, dict[str, Any]] = {
    # Tests and demo: a handful of steps of each phase.
    "tiny": dict(steps=12, generator_warmup=3, segmenter_warmup=3, refresh_every=3, buffer_size=16,
                 synthetic_per_batch=2, consistency_batch=2, sampler_steps=3),
    # The feedback reads G's own painting: from the scar-free canvas G learned to brighten every lesion and painted
    # near-white scar (README, "Why the joint run painted near-white scar"). Runs saved without the key were made
    # from the canvas and load as such (the dataclass default).
    "standard": {"feedback_start": "painted"},
}


def joint_preset(name: str, **overrides: Any) -> JointConfig:
    """Joint config of preset ``name`` (``tiny`` or ``standard``) with keyword overrides."""
    if name not in JOINT_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(JOINT_PRESETS)}")
    values = {**JOINT_PRESETS[name], **overrides}
    JointConfig.check_keys(values)
    return JointConfig(**values)
