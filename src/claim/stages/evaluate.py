"""The study's evaluation stage: each arm's segmenter on the held-out test folder, and the judge on synthetic data.

Folders in (test patients, segmenter checkpoints, synthetic patients), folder out (``per_patient.json``,
``gallery.npz``, ``gallery.json``). The aggregation over patients (means, bootstrap intervals) is
``claim.experiment.stats``; this stage only writes per-patient records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from claim.aha.geometry import PatientGeometry
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.labels import infarct_mask, myocardium_mask

__all__ = ["source_canvas", "PER_PATIENT_FILE", "GALLERY_FILE", "GALLERY_INDEX_FILE", "GALLERY_SLICES",
           "evaluate_study"]

PER_PATIENT_FILE = "per_patient.json"
GALLERY_FILE = "gallery.npz"
GALLERY_INDEX_FILE = "gallery.json"
GALLERY_SLICES = 4  # painted slices kept per synthetic arm for the report's gallery


def evaluate_study(
    test_dir: Path,
    out_dir: Path,
    *,
    segmenters: Mapping[str, Path | Sequence[Path]],
    judge_arm: str,
    synthetic: Mapping[str, Path],
    canvases: Mapping[str, Patient],
    donors: Sequence[Patient],
    geometry: Callable[[Patient], PatientGeometry],
    device: str = "cpu",
    progress: bool = False,
    precision: str = "fp32",
) -> None:
    """Score every arm on the test patients and judge how faithfully each synthetic arm painted its masks.

    Args:
        test_dir: held-out labelled patients (read only here).
        out_dir: the evaluation folder; receives ``per_patient.json`` (``arms``: per arm and test patient, the
            EMIDEC metrics plus ``pathological``; ``fidelity``: per synthetic arm and patient, the judge's infarct
            Dice against the mask it was painted in; ``bullseye``: scar fraction per AHA segment of the real training
            scars, of each arm's masks and of what the judge found in them) and the gallery crops.
        segmenters: arm -> segmenter checkpoint, or several (segmenters of one arm trained with different seeds:
            their softmax is averaged per patient before the argmax), in report order.
        judge_arm: the arm whose segmenter (trained on real data only) judges the synthetic patients.
        synthetic: synthetic arm -> its ``claim generate`` folder.
        canvases: normal training patients the masks were drawn on, by id (synthetic ids start with ``<id>_``).
        donors: pathological training patients whose real scars give the reference bull's-eye.
        geometry: AHA geometry of a training patient (cached by the caller).
        device: torch device for the segmenters.
        progress: show a progress bar while reading the test folder.
        precision: ``fp32`` | ``bf16`` | ``auto`` of the segmenters' forward passes.
    """
    from claim.evaluation.metrics import dice, patient_metrics
    from claim.runtime import resolve_precision
    from claim.segmentation import load_segmenter, predict_ensemble

    precision = resolve_precision(precision, device)

    test = read_dataset(test_dir, progress=progress)
    models = {arm: [load_segmenter(path, device) for path in ([paths] if isinstance(paths, str | Path) else paths)]
              for arm, paths in segmenters.items()}
    per_arm: dict[str, dict] = {}
    for arm, members in models.items():
        records = {}
        for patient in test:
            pred = predict_ensemble(members, patient.images, precision=precision)
            record = patient_metrics(pred, patient.label_maps, patient.spacing_mm, patient.slice_thickness_mm)
            record["pathological"] = patient.has_infarct
            records[patient.patient_id] = record
        per_arm[arm] = records
    judge = models[judge_arm]
    fidelity: dict[str, dict] = {}
    bullseye = {"real_training_scar": _segment_fraction([(p.label_maps, geometry(p)) for p in donors])}
    gallery = {}
    for arm, folder in synthetic.items():
        scores, judged, conditioned, crops = {}, [], [], []
        for patient in read_dataset(folder):
            pred = predict_ensemble(judge, patient.images, precision=precision)
            wanted = infarct_mask(patient.label_maps)
            scores[patient.patient_id] = dice(infarct_mask(pred), wanted)
            source = source_canvas(patient.patient_id, canvases)
            if source is not None:
                canvas_geometry = geometry(canvases[source])
                judged.append((np.where(myocardium_mask(canvases[source].label_maps), pred, 0), canvas_geometry))
                conditioned.append((patient.label_maps, canvas_geometry))
                for s in np.flatnonzero(wanted.reshape(len(wanted), -1).any(axis=1)):
                    if len(crops) < GALLERY_SLICES:
                        crops.append({"id": f"{patient.patient_id} slice {int(s)}",
                                      "canvas": canvases[source].images[s], "mask": patient.label_maps[s],
                                      "synthetic": patient.images[s], "judge": pred[s]})
        fidelity[arm] = scores
        bullseye[f"{arm}_mask"] = _segment_fraction(conditioned)
        bullseye[f"{arm}_judge"] = _segment_fraction(judged)
        gallery[arm] = crops
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / PER_PATIENT_FILE, {"arms": per_arm, "fidelity": fidelity, "bullseye": bullseye})
    np.savez_compressed(out_dir / GALLERY_FILE, **{
        f"{arm}__{j}__{key}": np.asarray(item[key]) for arm, items in gallery.items()
        for j, item in enumerate(items) for key in ("canvas", "mask", "synthetic", "judge")
    })
    write_json(out_dir / GALLERY_INDEX_FILE, {arm: [item["id"] for item in items] for arm, items in gallery.items()})


def source_canvas(synthetic_id: str, canvases: Mapping[str, Patient]) -> str | None:
    """The canvas (normal training patient) a synthetic patient was painted on, or None."""
    # Ids may prefix one another ("Case_N01", "Case_N01_b"): the longest matching canvas id wins.
    for pid in sorted(canvases, key=len, reverse=True):
        if synthetic_id.startswith(pid + "_"):
            return pid
    return None


def _segment_fraction(items: list[tuple[np.ndarray, PatientGeometry]]) -> dict[str, float]:
    """Per AHA segment: scar pixels / myocardium pixels, summed over the given (label maps, geometry) pairs."""
    scar, myo = np.zeros(18), np.zeros(18)
    for label_maps, geometry in items:
        seg = geometry.segment_maps
        myo += np.bincount(seg.ravel(), minlength=18)
        scar += np.bincount(seg[infarct_mask(label_maps) & (seg > 0)], minlength=18)
    return {str(k): float(scar[k] / myo[k]) if myo[k] else float("nan") for k in range(1, 18)}
