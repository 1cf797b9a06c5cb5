"""Quality control of a synthetic set: keep the painted scar slices a real-data judge finds and that are no
brighter than real scar; un-paint the others (folder in, folder out).

Recent LGE synthesis work filters its synthetic images before training on them. Two checks per painted slice:
fidelity, the infarct Dice between the mask the slice was painted in and the scar a segmenter trained on real
slices only finds in it (a slice labelled scar that does not show scar teaches a segmenter to see scar where
there is none), and realism, the painted scar's median contrast (remote myocardium 0, blood pool 1) at most
a given value, e.g. a percentile of real scars' (scar brighter than any real one is easy to find and teaches
little about real scar). A slice that fails goes back to its canvas (image and labels of the normal patient it
was painted on), so every synthetic patient keeps its canvas's slices and geometry; a patient with no passing
slice is left out. ``quality.json`` records every slice's scores and whether it was kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import check_output_location, write_nnunet_dataset_json, write_patient
from claim.errors import ClaimError
from claim.evaluation.metrics import dice
from claim.evaluation.realism import RealismConfig, contrast_units
from claim.labels import infarct_mask
from claim.output import staged_output
from claim.stages.evaluate import source_canvas

__all__ = ["QUALITY_FILE", "Judge", "checkpoint_judge", "real_contrast_limit", "filter_synthetic"]

QUALITY_FILE = "quality.json"


def _scar_contrast(image: np.ndarray, labels: np.ndarray, config: RealismConfig) -> float | None:
    scar = infarct_mask(labels)
    if scar.sum() < config.min_scar_px:
        return None
    measured = contrast_units(image, labels, config)
    return None if measured is None else float(np.median(measured[0][scar]))


def real_contrast_limit(real: Sequence[Patient], percentile: float,
                        config: RealismConfig = RealismConfig()) -> float:
    """The ``percentile`` of the median scar contrast over the real slices with scar."""
    values = [c for p in real for s in range(p.n_slices)
              if (c := _scar_contrast(p.images[s], p.label_maps[s], config)) is not None]
    if not values:
        raise ClaimError("no real slice with measurable scar to set the contrast limit from")
    return float(np.percentile(values, percentile))


Judge = Callable[[np.ndarray], np.ndarray]


def checkpoint_judge(checkpoints: Path | Sequence[Path], precision: str = "fp32", device: str = "cpu") -> Judge:
    """``(S, H, W)`` images -> label maps of segmenter checkpoint(s) (several: softmax averaged)."""
    from claim.segmentation import load_segmenter, predict_ensemble

    paths = [checkpoints] if isinstance(checkpoints, str | Path) else list(checkpoints)
    members = [load_segmenter(path, device) for path in paths]
    return lambda images: predict_ensemble(members, images, precision=precision)


def filter_synthetic(synthetic_dir: Path, canvases: Mapping[str, Patient],
                     judge: str | Path | Sequence[Path] | Judge, out_dir: Path, *, min_judge_dice: float,
                     max_contrast: float | None, precision: str = "fp32", device: str = "cpu",
                     config: RealismConfig = RealismConfig(), overwrite: bool = False) -> dict:
    """Write ``synthetic_dir``'s patients to ``out_dir`` (same layout) with every painted slice that fails a check
    put back to its canvas; returns the ``quality.json`` record. ``canvases``: id -> the normal patients the set
    was painted on; ``judge``: segmenter checkpoint(s) trained on real data only, or a function from images to
    label maps; ``max_contrast``: None skips the realism check (with it, a slice whose contrast cannot be
    measured fails). Built in a staging folder and renamed into place (``overwrite``: replace an earlier one)."""
    start = time.perf_counter()
    check_output_location(Path(out_dir), [Path(synthetic_dir)])
    predict = judge if callable(judge) else checkpoint_judge(judge, precision, device)
    settings = {"synthetic_dir": str(synthetic_dir), "min_judge_dice": min_judge_dice, "max_contrast": max_contrast}
    with staged_output(Path(out_dir), "quality", overwrite=overwrite, config=settings,
                       inputs=[Path(synthetic_dir)]) as staging:
        record = _filter_into(staging, Path(synthetic_dir), canvases, predict, min_judge_dice, max_contrast, config)
        record = {**settings, **record, "seconds": round(time.perf_counter() - start, 1)}
        write_json(staging / QUALITY_FILE, record)
    return record


def _filter_into(out_dir: Path, synthetic_dir: Path, canvases: Mapping[str, Patient], predict: Judge,
                 min_judge_dice: float, max_contrast: float | None, config: RealismConfig) -> dict:
    slices, kept_patients, layouts = [], 0, set()
    for patient in read_dataset(synthetic_dir, progress=False):
        source = source_canvas(patient.patient_id, canvases)
        canvas = canvases.get(source) if source is not None else None
        if canvas is None or canvas.images.shape != patient.images.shape:
            raise ClaimError(f"{synthetic_dir}: no canvas of the same shape for synthetic patient "
                             f"{patient.patient_id}")
        pred = predict(patient.images)
        keep = []
        for s in range(patient.n_slices):
            wanted = infarct_mask(patient.label_maps[s])
            if not wanted.any():
                continue
            fidelity = float(dice(infarct_mask(pred[s]), wanted))
            contrast = _scar_contrast(patient.images[s], patient.label_maps[s], config)
            failed = [reason for reason, bad in (
                ("judge", fidelity < min_judge_dice),
                ("contrast", max_contrast is not None and contrast is not None and contrast > max_contrast),
                ("contrast unmeasurable", max_contrast is not None and contrast is None)) if bad]
            passed = not failed
            slices.append({"patient": patient.patient_id, "slice": s, "judge_dice": fidelity,
                           "scar_contrast": contrast, "kept": passed, "failed": failed})
            if passed:
                keep.append(s)
        if keep:
            painted = np.isin(np.arange(patient.n_slices), keep)[:, None, None]
            write_patient(replace(patient, images=np.where(painted, patient.images, canvas.images),
                                  label_maps=np.where(painted, patient.label_maps, canvas.label_maps)), out_dir)
            kept_patients += 1
            layouts.add(patient.layout)
    if Layout.NNUNET in layouts:
        write_nnunet_dataset_json(out_dir, kept_patients, name="claim_synthetic")
    return {"scar_slices": len(slices), "kept_slices": sum(r["kept"] for r in slices),
            "kept_patients": kept_patients, "slices": slices}
