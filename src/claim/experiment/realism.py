"""The study's realism stage: every synthetic arm's scar, and the SMILE, transplanted and original-blob masks,
against real scar (``claim.stages.realism``), with real against real as the reference."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from claim.aha.config import AhaConfig
from claim.aha.geometry import PatientGeometry
from claim.data.io import atomic_path, write_json
from claim.data.patient import Patient
from claim.evaluation.c2st import C2stConfig
from claim.experiment.records import json_safe

__all__ = ["REALISM_FILE", "GALLERY_PNG", "RealismFold", "blob_masks", "realism_fold", "study_realism"]

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


def realism_fold(study: Path, test_dir: Path, training_patient: Callable[[str], Patient],
                 geometry: Callable[[Patient], PatientGeometry], seed: int) -> RealismFold:
    """The realism inputs of one finished single-split study folder: its test patients, its synthetic arms
    (grouped by canvas) and one blob mask per SMILE canvas; a synthetic patient takes its canvas's geometry."""
    from claim.data.layouts import read_dataset
    from claim.experiment.config import SYNTHETIC_ARMS
    from claim.stages.evaluate import source_canvas
    from claim.stages.masks import MASKS_FILE

    study = Path(study)
    smile = {e["source_id"] for e in json.loads((study / "masks" / "smile" / MASKS_FILE).read_text())}
    transplant = {e["source_id"] for e in json.loads((study / "masks" / "transplant" / MASKS_FILE).read_text())}
    canvases = {pid: training_patient(pid) for pid in sorted(smile | transplant)}
    # The evaluate stage's rule for which canvas a synthetic patient was painted on: one rule for both stages.
    arms = {arm: [(p, source_canvas(p.patient_id, canvases) or p.patient_id)
                  for p in read_dataset(study / "synthetic" / arm)] for arm in SYNTHETIC_ARMS}

    def geometry_of(patient: Patient) -> PatientGeometry:
        source = source_canvas(patient.patient_id, canvases)
        return geometry(canvases[source] if source is not None else patient)

    return RealismFold(read_dataset(test_dir), arms,
                       blob_masks([canvases[pid] for pid in sorted(smile)], geometry, seed), geometry_of)


@dataclass
class RealismFold:
    """What one train/test split contributes: its held-out real patients, each synthetic arm's (patient, group)
    pairs, the blob masks, and the geometry of a synthetic patient (its canvas's)."""

    reference: Sequence[Patient]
    arms: Mapping[str, Sequence[tuple[Patient, str]]]
    blobs: Sequence[tuple[Patient, str]]
    geometry_of: Callable[[Patient], PatientGeometry] | None = None


def _fold_record(fold: RealismFold, aha: AhaConfig, c2st: C2stConfig, seed: int, progress: bool,
                 gallery: dict[str, list]) -> dict:
    from claim.stages.realism import gallery_examples, real_set, realism_of_source, realism_record

    real = real_set(fold.reference, aha, progress=progress)
    gallery.setdefault("real", []).append(gallery_examples(real.samples, seed=seed))
    sources, examples = {}, {}
    for arm, items in fold.arms.items():
        sources[arm] = realism_of_source(real, [p for p, _ in items], groups={p.patient_id: g for p, g in items},
                                         aha=aha, c2st=c2st, seed=seed, masks=arm != "claim", progress=progress,
                                         name=arm, gallery=examples, geometry_of=fold.geometry_of)
    sources["blobs_masks"] = realism_of_source(
        real, [p for p, _ in fold.blobs], groups={p.patient_id: g for p, g in fold.blobs}, aha=aha, c2st=c2st,
        seed=seed, images=False, progress=progress, name="blobs", geometry_of=fold.geometry_of)
    for arm, items in examples.items():
        gallery.setdefault(arm, []).append(items)
    return realism_record(real, sources, c2st=c2st, seed=seed)


def study_realism(folds: Sequence[RealismFold], *, aha: AhaConfig, c2st: C2stConfig, seed: int, out_dir: Path,
                  progress: bool = False) -> dict:
    """The realism record of a study: each fold's synthetic arms and masks against that fold's held-out real scars
    (so no source is compared with the real scars its models or prior learnt from); with several folds, the
    fold records averaged (``claim.stages.realism.combine_records``) and kept under ``per_fold``.

    ``out_dir`` receives ``REALISM_FILE`` and ``GALLERY_PNG`` (real and synthetic scar crops side by side).
    The ``claim`` arm paints the ``smile`` arm's masks, so its mask test would repeat the smile one: left out.
    """
    from claim.evaluation.c2st import without_draws
    from claim.report.realism import realism_gallery_png
    from claim.stages.realism import combine_records

    gallery: dict[str, list] = {}
    records = [_fold_record(fold, aha, c2st, seed + k, progress, gallery) for k, fold in enumerate(folds)]
    record = records[0] if len(records) == 1 else {**combine_records(records), "per_fold": records}
    record = json_safe(without_draws(record))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {name: _interleaved(lists) for name, lists in gallery.items()}
    png = realism_gallery_png(rows)
    atomic_path(out_dir / GALLERY_PNG, lambda tmp: Path(tmp).write_bytes(png))
    write_json(out_dir / REALISM_FILE, record)  # last: its presence marks the stage complete
    return record


def _interleaved(lists: list[list], n: int = 6) -> list:
    """A few examples from every fold, at most ``n``: a canvas that several folds trained on is shown once."""
    seen: set[str] = set()
    chosen = []
    for example in (ex for group in zip_longest(*lists) for ex in group if ex is not None):
        if example.group not in seen:
            seen.add(example.group)
            chosen.append(example)
    return chosen[:n]
