"""SMILE: clinically guided scar and MVO masks on a patient's own myocardium.

``sample_scar_spec`` draws a ``ScarSpec`` (the only random step), ``render_scar`` draws it deterministically,
``SmileSampler`` does both fast for one patient. ``claim masks`` (folder in, folder out) is the stage
``claim.stages.masks``.
"""

from __future__ import annotations

from claim.smile.adjacency import Dominance, is_contiguous, segment_adjacency, territory_of, territory_segments
from claim.smile.canvas import ScarCanvas, apply_scar
from claim.smile.prior import Prior, default_prior, fit_prior, load_prior, save_prior
from claim.smile.realism import ScarStats, compare_statistics, label_map_statistics, scar_statistics
from claim.smile.render import ScarResult, render_scar
from claim.smile.sample import sample_scar_spec
from claim.smile.sampler import SmileSampler
from claim.smile.spec import Pattern, ScarSpec, SmileConfig

__all__ = [
    "Dominance",
    "Pattern",
    "Prior",
    "ScarCanvas",
    "ScarResult",
    "ScarSpec",
    "ScarStats",
    "SmileConfig",
    "SmileSampler",
    "apply_scar",
    "compare_statistics",
    "default_prior",
    "fit_prior",
    "is_contiguous",
    "label_map_statistics",
    "load_prior",
    "render_scar",
    "sample_scar_spec",
    "save_prior",
    "scar_statistics",
    "segment_adjacency",
    "territory_of",
    "territory_segments",
]
