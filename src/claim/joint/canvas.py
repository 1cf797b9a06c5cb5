"""Normal canvases for joint training: patients without infarct, each with its SMILE sampler prepared once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from claim.aha.geometry import compute_geometry
from claim.data.patient import Patient
from claim.data.preprocess import IntensityNorm
from claim.generator.condition import crop_levels, draw_condition
from claim.generator.config import GeneratorConfig
from claim.generator.data import crop_patient_slice, patient_norm
from claim.generator.histogram import perturb_histogram, scar_histogram
from claim.labels import Label, infarct_mask
from claim.smile.prior import Prior
from claim.smile.sampler import SmileSampler
from claim.smile.spec import SmileConfig

__all__ = ["Canvas", "CanvasCrops", "build_canvases", "sample_painted_stack", "sample_canvas_crops",
           "sample_real_scar_crops"]

_MAX_TRIES = 20  # SMILE masks drawn before giving up on one canvas (a mask may miss every slice of a short stack)


@dataclass(frozen=True, eq=False)
class Canvas:
    """A normal patient ready for painting: its intensity window and its SMILE sampler."""

    patient: Patient
    norm: IntensityNorm
    sampler: SmileSampler


@dataclass(frozen=True)
class CanvasCrops:
    """A consistency batch in G's crop frame.

    Attributes:
        known: ``(B, 1, C, C)`` clean canvas crops in [-1, 1].
        label_maps: ``(B, 1, C, C)`` int64 SMILE label maps (scar 3, MVO 4 on the canvas myocardium).
        hists: ``(B, bins)`` histogram conditions (perturbed stored centres).
        extents: per item, the crop window side in source pixels (``!= C`` when the crop was resampled).
    """

    known: torch.Tensor
    label_maps: torch.Tensor
    hists: torch.Tensor
    extents: tuple[int, ...]


def build_canvases(
    patients: list[Patient], smile: SmileConfig = SmileConfig(), prior: Prior | None = None
) -> list[Canvas]:
    """One ``Canvas`` per normal patient (AHA geometry and SMILE sampler computed once)."""
    canvases = []
    for patient in patients:
        if patient.has_infarct:
            continue
        sampler = SmileSampler(compute_geometry(patient), patient.label_maps, smile, prior)
        canvases.append(Canvas(patient, patient_norm(patient), sampler))
    return canvases


def sample_painted_stack(canvas: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A fresh SMILE label-map stack on ``canvas`` and the slices it puts scar/MVO on (redrawn while empty)."""
    for _ in range(_MAX_TRIES):
        label_maps, _spec = canvas.sampler.sample(rng)
        slices = [k for k in range(label_maps.shape[0]) if infarct_mask(label_maps[k]).any()]
        if slices:
            return label_maps, slices
    raise ValueError(f"SMILE drew {_MAX_TRIES} empty masks on {canvas.patient.patient_id}; check its myocardium")


def _batch(crops: list, hists: list[np.ndarray]) -> CanvasCrops:
    """A ``CanvasCrops`` from generator-frame slice crops and their histograms."""
    # RV (an orientation-only id) is background for the segmenter.
    labels = [np.where(c.label_map == Label.RV, Label.BACKGROUND, c.label_map) for c in crops]
    return CanvasCrops(
        known=torch.from_numpy(np.stack([c.image for c in crops]))[:, None],
        label_maps=torch.from_numpy(np.stack(labels).astype(np.int64))[:, None],
        hists=torch.from_numpy(np.stack(hists)),
        extents=tuple(int(c.box.extent) for c in crops),
    )


def sample_canvas_crops(
    canvases: list[Canvas],
    n: int,
    config: GeneratorConfig,
    hist_centres: np.ndarray,
    rng: np.random.Generator,
    hist_context: np.ndarray | None = None,
    rule: str = "matched",
) -> CanvasCrops:
    """``n`` crops of random canvas slices, each under a fresh SMILE mask, with histogram conditions.

    Only slices whose crop holds scar/MVO are used, so every item gives the consistency term something to paint.
    With ``hist_context`` (``GeneratorTrainer.hist_context``) each condition is drawn under ``rule`` for its crop's
    intensity level, as ``claim generate`` draws it (``claim.generator.condition.draw_condition``); without it the
    centre is drawn uniformly.
    """
    crops, hists = [], []
    for _ in range(n * _MAX_TRIES):
        if len(crops) == n:
            break
        canvas = canvases[int(rng.integers(len(canvases)))]
        label_maps, slices = sample_painted_stack(canvas, rng)
        k = slices[int(rng.integers(len(slices)))]
        crop = crop_patient_slice(canvas.patient, k, config, canvas.norm, label_map=label_maps[k])
        if not infarct_mask(crop.label_map).any():
            continue
        crops.append(crop)
        hist, _k, _rule = draw_condition(rng, hist_centres, hist_context, crop_levels(crop.image, crop.label_map),
                                         rule)
        hists.append(perturb_histogram(hist, rng))
    if len(crops) < n:
        raise ValueError(f"SMILE masks kept missing the {config.crop_size}-pixel generator crops of the canvases")
    return _batch(crops, hists)

def sample_real_scar_crops(patients: list[Patient], n: int, config: GeneratorConfig,
                           rng: np.random.Generator) -> CanvasCrops:
    """``n`` crops of random real slices with scar (pathological ``patients``, their own labels and histograms):
    what frozen S makes of real scar, in the same frame as the consistency batch."""
    slices = [(p, k) for p in patients for k in range(p.n_slices) if np.any(p.label_maps[k] == Label.INFARCT)]
    if not slices:
        raise ValueError("no real slice with scar (label 3) to bound the consistency term with")
    crops = [crop_patient_slice(patient, k, config, patient_norm(patient))
             for patient, k in (slices[int(i)] for i in rng.integers(len(slices), size=n))]
    return _batch(crops, [scar_histogram(c.image, c.label_map == Label.INFARCT, config.hist_bins) for c in crops])
