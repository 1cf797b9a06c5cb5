"""Paint scar into one patient's slices inside given label maps, in the source grid.

Every slice that holds scar/MVO is cropped around its LV, the lesion (dilated by the blending band in ``claim``
mode) is inpainted, de-normalised and pasted back into the original slice; every pixel farther than
``KEEP_DISTANCE_PX`` from scar/MVO is then restored from the source, so the contract holds whatever the resampling.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import ndimage

from claim.data.patient import Patient
from claim.data.preprocess import IntensityNorm, paste_slice
from claim.generator.checkpoint import LoadedGenerator
from claim.generator.condition import HIST_RULES, canvas_levels, draw_condition
from claim.generator.config import GeneratorConfig
from claim.generator.context import config_anatomy, inpaint_region
from claim.generator.data import SliceCrop, crop_patient_slice, patient_norm
from claim.generator.histogram import perturb_histogram
from claim.generator.sampling import inpaint, make_eps_fn, parse_sampler
from claim.labels import infarct_mask
from claim.runtime import autocast

__all__ = ["KEEP_DISTANCE_PX", "inpaint_patient", "choose_condition"]

KEEP_DISTANCE_PX = 3.0  # pixels farther than this from scar/MVO are the source's, bit for bit


def _painted_crops(config: GeneratorConfig, source: Patient, label_maps: np.ndarray,
                   ) -> tuple[IntensityNorm, list[int], list[SliceCrop]]:
    """The patient's window, the slices ``label_maps`` paints (those with scar/MVO) and their generator crops."""
    norm = patient_norm(source)
    slices = [k for k in range(source.n_slices) if infarct_mask(label_maps[k]).any()]
    return norm, slices, [crop_patient_slice(source, k, config, norm, label_map=label_maps[k]) for k in slices]


def inpaint_patient(
    generator: LoadedGenerator,
    source: Patient,
    label_maps: np.ndarray,
    *,
    sampler: str,
    hist: np.ndarray,
    guidance: float,
    torch_generator: torch.Generator,
) -> tuple[np.ndarray, dict]:
    """Inpaint all slices of ``source`` whose ``label_maps`` hold scar/MVO, in one batch.

    Returns:
        ``(images (S, H, W) float32 in source units, info)``; info has ``nfe``, ``seconds`` (per inpainted slice),
        ``slices`` (indices painted) and ``crops`` (source crop, label crop, synthetic crop per painted slice).
    """
    config, device = generator.config, next(generator.model.parameters()).device
    spec = parse_sampler(sampler)
    images = source.images.copy()
    norm, slices, crops = _painted_crops(config, source, label_maps)
    info: dict = {"nfe": 0, "seconds": 0.0, "slices": slices, "crops": []}
    if not slices:
        return images, info
    known = torch.from_numpy(np.stack([c.image for c in crops]))[:, None].to(device)
    labels = torch.from_numpy(np.stack([c.label_map for c in crops]).astype(np.int64))[:, None].to(device)
    inpaint_mask = inpaint_region(config, labels)
    hist_t = torch.from_numpy(np.asarray(hist, dtype=np.float32))[None].expand(len(slices), -1).to(device)
    anatomy = config_anatomy(labels, config)
    eps_fn = make_eps_fn(generator.model, config.mode, known, inpaint_mask, anatomy, hist_t, guidance,
                         schedule=generator.schedule, prediction=config.prediction)
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(generator.precision, device):
        out, calls = inpaint(eps_fn, generator.schedule, known, inpaint_mask, spec, torch_generator)
    seconds = time.perf_counter() - t0
    out_np, region_np = out[:, 0].cpu().numpy(), inpaint_mask[:, 0].cpu().numpy()
    for i, k in enumerate(slices):
        pasted = paste_slice(norm.denormalise(out_np[i]), crops[i].box, source.images[k], region_mask=region_np[i])
        far = ndimage.distance_transform_edt(~infarct_mask(label_maps[k])) > KEEP_DISTANCE_PX
        images[k] = np.where(far, source.images[k], pasted)
        info["crops"].append((crops[i].image, crops[i].label_map, out_np[i]))
    info["nfe"] = calls * (1 if guidance == 1.0 else 2)
    info["seconds"] = seconds / len(slices)
    return images, info


def choose_condition(generator: LoadedGenerator, source: Patient, label_maps: np.ndarray, rng: np.random.Generator,
                     rule: str = "matched") -> tuple[np.ndarray, int, str]:
    """The histogram condition to paint ``label_maps`` into ``source`` with: ``(histogram, centre index, rule)``.

    ``matched`` draws the centre that suits the canvas's intensity level (``claim.generator.condition``), read on
    the crops ``inpaint_patient`` paints; ``mapped`` also moves it into the canvas's intensity frame; ``random``
    draws it uniformly (also what the others fall back to for a checkpoint without the levels, reported as the rule
    used). The condition is then jittered as LeFusion did.
    """
    if rule not in HIST_RULES:
        raise ValueError(f"histogram rule {rule!r} must be one of {HIST_RULES}")
    levels = None
    if rule != "random" and generator.hist_context is not None:
        # The crops inpaint_patient will paint, cut once more here (a resampling per slice, cheap beside sampling).
        _norm, _slices, crops = _painted_crops(generator.config, source, label_maps)
        levels = canvas_levels([(c.image, c.label_map) for c in crops])
    hist, k, used = draw_condition(rng, generator.hist_centres, generator.hist_context, levels, rule)
    return perturb_histogram(hist, rng), k, used
