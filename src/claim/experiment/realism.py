"""The study's realism stage: every synthetic arm's scar, and the SMILE, transplanted and original-blob masks,
against real scar (``claim.stages.realism``), with real against real as the reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from claim.aha.config import AhaConfig
from claim.aha.geometry import PatientGeometry
from claim.data.io import atomic_path, write_json
from claim.data.patient import Patient
from claim.evaluation.c2st import C2stConfig
from claim.experiment.records import json_safe

__all__ = ["REALISM_FILE", "GALLERY_PNG", "blob_masks", "study_realism"]

REALISM_FILE = "realism.json"
GALLERY_PNG = "gallery.png"


def blob_masks(canvases: Sequence[Patient], geometry: Callable[[Patient], PatientGeometry], seed: int,
               prefix: str = "") -> list[tuple[Patient, str]]:
    """One mask of the original SMILE's random blobs (``claim.smile.blobs``) per canvas, with its group."""
    from claim.smile.sampler import SmileSampler
    from claim.smile.spec import Pattern, SmileConfig

    out = []
    for i, canvas in enumerate(canvases):
        sampler = SmileSampler(geometry(canvas), canvas.label_maps, config=SmileConfig(pattern=Pattern.BLOBS))
        label_maps, _ = sampler.sample(np.random.default_rng([seed, 23, i]))
        out.append((canvas.with_arrays(patient_id=f"{prefix}{canvas.patient_id}_blobs", label_maps=label_maps),
                    f"{prefix}{canvas.patient_id}"))
    return out


def study_realism(reference: Sequence[Patient], arms: Mapping[str, Sequence[tuple[Patient, str]]],
                  blobs: Sequence[tuple[Patient, str]], *, aha: AhaConfig, c2st: C2stConfig, seed: int,
                  out_dir: Path, progress: bool = False) -> dict:
    """The realism record of a study.

    Args:
        reference: real patients (their pathological ones are the reference scars).
        arms: synthetic arm -> (synthetic patient, group) pairs; ids must be unique across the whole set.
        blobs: masks of the original SMILE (no images), with groups.
        out_dir: receives ``REALISM_FILE`` and ``GALLERY_PNG`` (real and synthetic scar crops side by side).
    The ``claim`` arm paints the ``smile`` arm's masks, so its mask test would repeat the smile one: left out.
    """
    from claim.report.realism import realism_gallery_png
    from claim.stages.realism import gallery_examples, real_set, realism_of_source, realism_record

    real = real_set(reference, aha, progress=progress)
    gallery = {"real": gallery_examples(real.samples, seed=seed)}
    sources = {}
    for arm, items in arms.items():
        sources[arm] = realism_of_source(real, [p for p, _ in items], groups={p.patient_id: g for p, g in items},
                                         aha=aha, c2st=c2st, seed=seed, masks=arm != "claim", progress=progress,
                                         name=arm, gallery=gallery)
    sources["blobs_masks"] = realism_of_source(real, [p for p, _ in blobs], groups={p.patient_id: g for p, g in blobs},
                                               aha=aha, c2st=c2st, seed=seed, images=False, progress=progress,
                                               name="blobs")
    record = json_safe(realism_record(real, sources, c2st=c2st, seed=seed))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = realism_gallery_png(gallery)
    atomic_path(out_dir / GALLERY_PNG, lambda tmp: Path(tmp).write_bytes(png))
    write_json(out_dir / REALISM_FILE, record)  # last: its presence marks the stage complete
    return record
