"""Lesion-focused diffusion generator: faithful LeFusion baseline (RePaint) and the context-conditioned default (DDIM).

Maths (``schedule``, ``repaint``), network (``denoiser``) and loops (``sampling``, ``train``, ``inpaint``) are kept
in separate modules; see each module's docstring. The ``claim generate`` stage (folders in and out) is
``claim.stages.generate``.
"""

from __future__ import annotations

from claim.generator.checkpoint import load_generator
from claim.generator.config import PRESETS, GeneratorConfig, Mode, preset_config
from claim.generator.inpaint import inpaint_patient
from claim.generator.quality import scar_contrast
from claim.generator.repaint import RePaintPlan
from claim.generator.sampling import SamplerSpec, parse_sampler
from claim.generator.train import TrainResult, train_generator

__all__ = [
    "GeneratorConfig",
    "Mode",
    "PRESETS",
    "preset_config",
    "RePaintPlan",
    "SamplerSpec",
    "parse_sampler",
    "train_generator",
    "load_generator",
    "TrainResult",
    "inpaint_patient",
    "scar_contrast",
]
