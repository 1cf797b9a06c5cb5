"""Quality proxy: scar contrast against the same slice's remote myocardium and blood pool, in normalised units."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from claim.data.patient import Patient
from claim.generator.data import patient_norm
from claim.labels import Label

__all__ = ["ScarContrast", "scar_contrast", "patient_scar_contrasts", "compare_scar_contrast"]


@dataclass(frozen=True)
class ScarContrast:
    """Mean intensities (normalised [-1, 1] units) of one slice and the two contrasts that make scar look like scar."""

    scar_mean: float
    remote_mean: float
    blood_mean: float

    @property
    def scar_vs_remote(self) -> float:
        return self.scar_mean - self.remote_mean

    @property
    def scar_vs_blood(self) -> float:
        return self.scar_mean - self.blood_mean

    def to_dict(self) -> dict[str, float]:
        return asdict(self) | {"scar_vs_remote": self.scar_vs_remote, "scar_vs_blood": self.scar_vs_blood}


def scar_contrast(image: np.ndarray, label_map: np.ndarray) -> ScarContrast | None:
    """Scar (label 3) vs remote myocardium (label 2) and blood pool (label 1) of one normalised slice.

    Args:
        image: ``(H, W)`` intensities already normalised to [-1, 1] (per patient).
        label_map: ``(H, W)`` label ids.

    Returns:
        The contrast, or None when the slice lacks scar, remote myocardium or blood pool.
    """
    image = np.asarray(image, dtype=np.float64)
    regions = [label_map == Label.INFARCT, label_map == Label.MYOCARDIUM, label_map == Label.CAVITY]
    if not all(r.any() for r in regions):
        return None
    return ScarContrast(*(float(image[r].mean()) for r in regions))


def patient_scar_contrasts(patient: Patient) -> list[ScarContrast]:
    """Contrast of every slice of a patient with scar, after the generator's per-patient normalisation."""
    norm = patient_norm(patient)
    found = (scar_contrast(norm.normalise(patient.images[k]), patient.label_maps[k]) for k in range(patient.n_slices))
    return [c for c in found if c is not None]


def compare_scar_contrast(real: list[ScarContrast], synthetic: list[ScarContrast]) -> dict[str, float]:
    """Mean and s.d. of both contrasts for real and synthetic scars, and the synthetic-minus-real gap of the means."""
    out: dict[str, float] = {}
    for name, items in (("real", real), ("synthetic", synthetic)):
        for key in ("scar_vs_remote", "scar_vs_blood"):
            values = np.array([getattr(c, key) for c in items]) if items else np.array([np.nan])
            out[f"{name}_{key}_mean"] = float(np.mean(values))
            out[f"{name}_{key}_sd"] = float(np.std(values))
    for key in ("scar_vs_remote", "scar_vs_blood"):
        out[f"gap_{key}"] = out[f"synthetic_{key}_mean"] - out[f"real_{key}_mean"]
    return out
