"""``SmileSampler``: fresh masks for one patient, fast enough to draw a new one at every training step."""

from __future__ import annotations

import numpy as np

from claim.aha.geometry import PatientGeometry
from claim.labels import Label
from claim.smile.canvas import ScarCanvas
from claim.smile.prior import Prior, default_prior
from claim.smile.render import ScarResult, render_scar
from claim.smile.sample import sample_scar_spec
from claim.smile.spec import ScarSpec, SmileConfig

__all__ = ["SmileSampler"]


class SmileSampler:
    """Samples and renders masks on one patient's myocardium, reusing its precomputed geometry.

    Args:
        geometry: the patient's AHA geometry (``claim.aha.geometry.compute_geometry``).
        label_maps: ``(S, H, W)`` source label maps (their myocardium is relabelled, the rest kept).
        config: the user's controls.
        prior: distributions of real scars (default: the shipped EMIDEC prior).

    Example:
        >>> sampler = SmileSampler(geometry, patient.label_maps)
        >>> label_maps, spec = sampler.sample(np.random.default_rng(0))
    """

    def __init__(
        self,
        geometry: PatientGeometry,
        label_maps: np.ndarray,
        config: SmileConfig = SmileConfig(),
        prior: Prior | None = None,
    ) -> None:
        if label_maps.shape != geometry.segment_maps.shape:
            raise ValueError(f"label maps {label_maps.shape} do not match geometry {geometry.segment_maps.shape}")
        self.canvas = ScarCanvas.from_geometry(geometry, cavity=label_maps == Label.CAVITY)
        self.label_maps = label_maps
        self.config = config
        self.prior = prior or default_prior()

    def sample_spec(self, rng: np.random.Generator) -> ScarSpec:
        """Draw the parameters of one mask (the only random step)."""
        return sample_scar_spec(rng, self.canvas, self.config, self.prior)

    def render(self, spec: ScarSpec) -> ScarResult:
        """Draw a spec (deterministic)."""
        return render_scar(spec, self.canvas)

    def sample_result(self, rng: np.random.Generator) -> ScarResult:
        """Sample and render one mask, kept as pixel indices (no full-size arrays)."""
        return self.render(self.sample_spec(rng))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, ScarSpec]:
        """One new ``(S, H, W)`` uint8 label map stack (myocardium 2, scar 3, MVO 4) and its spec."""
        result = self.sample_result(rng)
        return result.label_maps(self.label_maps), result.spec
