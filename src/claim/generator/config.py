"""Frozen generator configuration and its presets: the one place for defaults; saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from claim.config import Config

__all__ = ["Mode", "PREDICTIONS", "GeneratorConfig", "PRESETS", "preset_config", "MODE_DEFAULTS"]

# What the denoiser's output means: the noise (``eps``, LeFusion) or the clean image (``x0``).
PREDICTIONS = ("eps", "x0")


class Mode(StrEnum):
    """Which generator: ``lefusion`` (faithful baseline, x_t only, RePaint) or ``claim`` (context-conditioned, DDIM)."""

    LEFUSION = "lefusion"
    CLAIM = "claim"


# What each mode uses where a config leaves ``prediction``, ``default_sampler`` or ``boundary_px`` unset (None):
# the faithful LeFusion baseline predicts noise, samples with RePaint 5x5 and inpaints exactly the lesion; claim
# predicts the clean image and blends over a 2-pixel band, sampled with DPM-Solver++ (2nd order, 5 network calls:
# judge fidelity and scar contrast within noise of DDIM 50 at a tenth of its cost; chosen on validation canvases
# with benchmarks/sampler_quality.py, where DDIM 8 already lost fidelity and 8-10 solver steps lost contrast).
MODE_DEFAULTS: dict[Mode, dict[str, Any]] = {
    Mode.LEFUSION: {"prediction": "eps", "default_sampler": "repaint:5x5", "boundary_px": 0},
    Mode.CLAIM: {"prediction": "x0", "default_sampler": "dpm2:5", "boundary_px": 2},
}


@dataclass(frozen=True)
class GeneratorConfig(Config):
    """Everything that defines a generator run.

    Attributes:
        mode: ``lefusion`` or ``claim``.
        crop_size: side of the LV-centred crop in pixels.
        target_spacing_mm: common in-plane spacing of the crop when the source spacing is known (else source pixels).
        channels / num_res_blocks / attention_levels / num_head_channels / norm_num_groups: MONAI
            ``DiffusionModelUNet`` shape.
        timesteps: diffusion steps T of the cosine schedule (LeFusion: 300).
        hist_bins: bins of the scar-intensity histogram over [-1, 1] (LeFusion: 16).
        n_clusters: k-means centres of real histograms stored for sampling.
        cond_drop_prob: classifier-free dropout of the histogram condition (``claim`` only; LeFusion trained none).
        boundary_px: width of the blending band around scar/MVO; the inpainting region (in training, sampling and
            the consistency term alike) is the lesion dilated by this many pixels, so it must stay <= 3 (pixels
            farther than 3 px are never changed). ``lefusion`` inpaints exactly the lesion (0).
        boundary_weight: loss weight of the band relative to lesion pixels.
        lr / weight_decay / batch_size: AdamW and batch.
        ema_decay / ema_every / ema_warmup: EMA of weights (LeFusion: 0.995 every 10 steps, reset before 2000).
        sample_steps: DDIM steps used for the preview grids during training.
        default_sampler: sampler used by ``generate`` when none is given.
        prediction: what the network outputs, ``eps`` (noise; LeFusion, required for ``lefusion``) or ``x0`` (the
            clean image; steadier for few-step DDIM on small budgets). Checkpoints without the key load as ``eps``.
        mvo_channel: ``claim`` only: the MVO mask is one more context channel, so the network can tell where the
            dark MVO core lies inside the lesion it paints (without it, MVO and scar are one region to it).
            Checkpoints without the key load without the channel.
        lesion_channel: ``claim`` only: the lesion itself (scar + MVO) is one more context channel. The inpainting
            region is the lesion dilated by the blending band (``boundary_px``), so without it the network cannot
            tell where inside that region the scar ends: on a scar 2-4 px thick the band is as wide as the scar,
            and the painted scar spreads over it. Checkpoints without the key load without the channel.
        steps: total optimisation steps of a ``train-generator`` run.

    ``prediction``, ``default_sampler`` and ``boundary_px`` left at None take the mode's value (``MODE_DEFAULTS``);
    use :meth:`with_mode` to switch mode and take the new mode's values.
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"steps"})

    mode: Mode = Mode.CLAIM
    crop_size: int = 96
    target_spacing_mm: float | None = 1.5
    channels: tuple[int, ...] = (16, 32, 64)
    num_res_blocks: int = 1
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_head_channels: int = 32
    norm_num_groups: int = 8
    timesteps: int = 300
    hist_bins: int = 16
    n_clusters: int = 4
    cond_drop_prob: float = 0.1
    boundary_px: int | None = None
    boundary_weight: float = 0.3
    lr: float = 2e-4
    weight_decay: float = 1e-4
    batch_size: int = 8
    ema_decay: float = 0.995
    ema_every: int = 1
    ema_warmup: int = 100
    sample_steps: int = 10
    default_sampler: str | None = None
    prediction: str | None = None
    mvo_channel: bool = False
    lesion_channel: bool = False
    steps: int = 2000

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        for name, value in MODE_DEFAULTS[self.mode].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "attention_levels", tuple(bool(a) for a in self.attention_levels))
        if len(self.attention_levels) != len(self.channels):
            raise ValueError(f"attention_levels {self.attention_levels} needs one entry per level of {self.channels}")
        if any(c % self.norm_num_groups for c in self.channels):
            raise ValueError(f"channels {self.channels} must be multiples of norm_num_groups {self.norm_num_groups}")
        if self.crop_size % (2 ** (len(self.channels) - 1)):
            raise ValueError(f"crop_size {self.crop_size} must be divisible by 2^(levels-1) for the U-Net")
        if not 0 <= self.boundary_px <= 3:
            raise ValueError(f"boundary_px {self.boundary_px} must be in 0..3 (pixels beyond 3 px stay untouched)")
        if self.mode == Mode.LEFUSION and self.boundary_px != 0:
            raise ValueError(f"mode lefusion inpaints exactly the lesion; boundary_px {self.boundary_px} must be 0")
        if self.steps < 0:
            raise ValueError(f"steps {self.steps} must be >= 0")
        if self.timesteps < 2:
            raise ValueError(f"timesteps {self.timesteps} must be >= 2")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction {self.prediction!r} must be one of {PREDICTIONS}")
        if self.mode == Mode.LEFUSION and self.prediction != "eps":
            raise ValueError(f"mode lefusion is the faithful baseline and predicts eps; prediction "
                             f"{self.prediction!r} is only available in mode claim")

    def with_mode(self, mode: Mode | str) -> GeneratorConfig:
        """The same config in ``mode``, with that mode's prediction, sampler and band; ``lefusion`` (x_t only) also
        drops the context channels, so its saved config does not claim channels it never sees."""
        channels = {"mvo_channel": False, "lesion_channel": False} if Mode(mode) == Mode.LEFUSION else {}
        return self.replace(mode=Mode(mode), **MODE_DEFAULTS[Mode(mode)], **channels)

    @property
    def in_channels(self) -> int:
        # claim: x_t, blanked image, inpainting mask, myocardium mask (+ MVO mask) (+ lesion mask); lefusion: x_t.
        return 4 + int(self.mvo_channel) + int(self.lesion_channel) if self.mode == Mode.CLAIM else 1


PRESETS: dict[str, dict[str, Any]] = {
    # Tests and demo: seconds on a laptop CPU.
    "tiny": dict(
        crop_size=48,
        channels=(16, 32),
        attention_levels=(False, False),
        num_res_blocks=1,
        norm_num_groups=8,
        batch_size=4,
        ema_warmup=10,
        sample_steps=5,
        n_clusters=2,
    ),
    # Sized for the 50 pathological emidec-slices patients in <= 45 min on 2 CPU cores: measured ~0.5 s per
    # batch-8 step at 96x96 (0.69 M parameters), so the CLI default of 2,000 steps takes ~17-25 min; (32, 64, 64)
    # measured 1-3.5 s/step on the same shared cores. Attention only at the lowest (24x24) level.
    # The lesion channel: on the cross-validated standard study's folds (outputs/cv6, seed 0; README, "A generator
    # that knows where the scar ends"), the smile arm painted by a generator with it beat the same arm without it by
    # +0.019 [+0.002, +0.035] infarct and +0.016 [+0.007, +0.026] myocardium Dice over the 50 test patients, its
    # validation patients preferring it in all 3 folds, with scar of real brightness (image two-sample AUC ~0.5).
    "standard": dict(
        crop_size=96,
        channels=(16, 32, 64),
        attention_levels=(False, False, True),
        num_res_blocks=1,
        norm_num_groups=8,
        batch_size=8,
        lesion_channel=True,
    ),
}


def preset_config(name: str, **overrides: Any) -> GeneratorConfig:
    """Config of preset ``name`` (``tiny`` or ``standard``) with keyword overrides (e.g. ``mode="lefusion"``).

    Presets only override the dataclass defaults; what a mode implies comes from ``MODE_DEFAULTS``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    if Mode(values.get("mode", Mode.CLAIM)) == Mode.LEFUSION and "lesion_channel" not in overrides:
        values["lesion_channel"] = False  # a preset's context channel means nothing to the x_t-only baseline
    GeneratorConfig.check_keys(values)
    return GeneratorConfig(**values)
