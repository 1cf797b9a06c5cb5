"""``claim realism``: how far synthetic scar lies from real scar, with real against real as the reference.

Folders in (real labelled patients, one or more synthetic sets), one record out:
- image two-sample test: real scar-centred crops against synthetic ones (AUC with CI; 0.5 = indistinguishable);
- mask two-sample test: the same on the scar masks in the patient's polar frame (shape and place, no texture);
- intensity statistics: 1-D Wasserstein distances to the real slices' values, beside the split-half floor of real
  against real;
- frequency-map Dice: soft Dice between the per-segment scar frequency (bull's-eye) of a mask source and of the
  real scars, beside the ceiling of two disjoint sets of real patients of the same sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from claim.aha.config import AhaConfig, geometry_for
from claim.aha.geometry import PatientGeometry
from claim.data.patient import Patient
from claim.evaluation.c2st import C2stConfig, classifier_two_sample_test, combine_c2st
from claim.evaluation.realism import (
    SHAPE_STATISTICS,
    STATISTICS,
    RealismConfig,
    ScarSample,
    scar_samples,
    segment_fractions,
    soft_dice,
    split_half_floor,
    wasserstein_table,
)

__all__ = ["canvas_group", "combine_records", "frequency_dice", "gallery_examples", "RealSet", "real_set",
           "realism_of_source", "realism_record"]


def canvas_group(synthetic_id: str) -> str:
    """The canvas a synthetic patient was painted on (``Case_N001_smile1`` -> ``Case_N001``): synthetic patients
    of one canvas share its anatomy, so the two-sample tests keep them on one side of every split."""
    return synthetic_id.rsplit("_", 1)[0] if "_" in synthetic_id else synthetic_id


@dataclass
class RealSet:
    """The real reference: its scar samples and per-patient segment fractions."""

    samples: list[ScarSample]
    fractions: dict[str, np.ndarray]


def _samples(patients: Sequence[Patient], groups: Mapping[str, str] | None, aha: AhaConfig, config: RealismConfig,
             progress: bool, desc: str, geometry_of: Callable[[Patient], PatientGeometry] | None = None,
             ) -> tuple[list[ScarSample], dict[str, np.ndarray]]:
    samples, fractions = [], {}
    for patient in tqdm(patients, desc=desc, unit="patient", disable=not progress, leave=False):
        geometry = geometry_of(patient) if geometry_of is not None else geometry_for(patient, aha)
        group = groups.get(patient.patient_id, patient.patient_id) if groups else patient.patient_id
        samples += scar_samples(patient.images, patient.label_maps, geometry, group, config)
        fractions[patient.patient_id] = segment_fractions(patient.label_maps, geometry)
    return samples, fractions


def real_set(patients: Sequence[Patient], aha: AhaConfig, config: RealismConfig = RealismConfig(),
             progress: bool = False) -> RealSet:
    """The pathological patients among ``patients`` as the real reference."""
    pathological = [p for p in patients if p.has_infarct]
    return RealSet(*_samples(pathological, None, aha, config, progress, "realism: real"))


def gallery_examples(samples: Sequence[ScarSample], n: int = 6, seed: int = 0) -> list[ScarSample]:
    """The largest-scar slice of up to ``n`` groups drawn at random (seeded): one example per patient or canvas."""
    best: dict[str, ScarSample] = {}
    for sample in samples:
        size = float(sample.view_mask.sum()) if sample.view_mask is not None else 0.0
        held = best.get(sample.group)
        if held is None or size > float(held.view_mask.sum()):
            best[sample.group] = sample
    names = sorted(best)
    order = np.random.default_rng([seed, 31]).permutation(len(names))[:n]
    return [best[names[i]] for i in sorted(order)]


def frequency_dice(source: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float:
    """Soft Dice of the mean per-segment scar fraction (bull's-eye) of two sets of patients."""
    if not len(source) or not len(real):
        return float("nan")
    with warnings.catch_warnings():  # a segment no patient's stack holds stays NaN and is left out of the Dice
        warnings.simplefilter("ignore", RuntimeWarning)
        return soft_dice(np.nanmean(np.asarray(source), axis=0), np.nanmean(np.asarray(real), axis=0))


def _frequency_ceiling(real: Sequence[np.ndarray], n_source: int, repeats: int, seed: int) -> dict[str, float]:
    """Two disjoint random sets of real patients, ``n_source`` and the rest (at most the same number): their
    frequency-map Dice is what a perfect mask source could reach at these sample sizes."""
    real = list(real)
    size = min(n_source, len(real) // 2)
    if size < 1:
        return {"mean": float("nan"), "sd": float("nan"), "n": size}
    rng = np.random.default_rng([seed, 17])
    values = []
    for _ in range(repeats):
        order = rng.permutation(len(real))
        values.append(frequency_dice([real[i] for i in order[:size]], [real[i] for i in order[size:]]))
    return {"mean": float(np.mean(values)), "sd": float(np.std(values)), "n": size}


def _c2st(first: Sequence[ScarSample], second: Sequence[ScarSample], field: str, c2st: C2stConfig,
          seed: int) -> dict:
    config = c2st if field == "crop" else C2stConfig(**{**asdict(c2st), "augment": False})
    return classifier_two_sample_test([getattr(s, field) for s in first], [s.group for s in first],
                                      [getattr(s, field) for s in second], [s.group for s in second], config, seed)


def realism_of_source(reference: RealSet, patients: Sequence[Patient], *, aha: AhaConfig,
                      groups: Mapping[str, str] | None = None, config: RealismConfig = RealismConfig(),
                      c2st: C2stConfig = C2stConfig(), seed: int = 0, images: bool = True, masks: bool = True,
                      progress: bool = False, name: str = "synthetic",
                      gallery: dict[str, list[ScarSample]] | None = None,
                      geometry_of: Callable[[Patient], PatientGeometry] | None = None) -> dict:
    """Realism of one synthetic set (or, with ``images=False``, of a mask source alone) against the real set.

    Args:
        groups: patient id -> group for the two-sample tests (default: the canvas, ``canvas_group``).
        images: also the image two-sample test and the intensity statistics (off for masks without images).
        masks: the mask two-sample test (off for a set whose masks another source already stands for).
        gallery: receives ``name`` -> a few example slices (``gallery_examples``) when given.
        geometry_of: the AHA geometry of a synthetic patient (default: computed on it). The study passes its
            canvas's, so a per-patient ``--orientation file:`` places synthetic and real scars in the same frame.
    """
    groups = dict(groups) if groups else {p.patient_id: canvas_group(p.patient_id) for p in patients}
    samples, fractions = _samples(patients, groups, aha, config, progress, f"realism: {name}", geometry_of)
    if gallery is not None:
        gallery[name] = gallery_examples(samples, seed=seed)
    record = {"patients": len(patients), "slices_with_scar": len(samples),
              "frequency_dice": frequency_dice(list(fractions.values()), list(reference.fractions.values()))}
    if masks:
        record["mask_c2st"] = _c2st(reference.samples, samples, "polar", c2st, seed)
        record["shape"] = wasserstein_table(reference.samples, samples, tuple(SHAPE_STATISTICS))
    if images:
        record["image_c2st"] = _c2st(reference.samples, samples, "crop", c2st, seed)
        record["intensity"] = wasserstein_table(reference.samples, samples)
    return record


def realism_record(reference: RealSet, sources: Mapping[str, dict], *, c2st: C2stConfig = C2stConfig(),
                   seed: int = 0, floor_repeats: int = 20) -> dict:
    """Assemble the record: the real-vs-real references beside each source's ``realism_of_source`` entry."""
    groups = sorted({s.group for s in reference.samples})
    half = set(np.random.default_rng([seed, 3]).permutation(groups)[: len(groups) // 2])
    first = [s for s in reference.samples if s.group in half]
    second = [s for s in reference.samples if s.group not in half]
    sizes = [entry["patients"] for entry in sources.values()] or [len(reference.fractions) // 2]
    return {
        "real": {"patients": len(reference.fractions), "slices_with_scar": len(reference.samples)},
        "statistics": STATISTICS,
        "shape_statistics": SHAPE_STATISTICS,
        "real_vs_real": {
            "image_c2st": _c2st(first, second, "crop", c2st, seed),
            "mask_c2st": _c2st(first, second, "polar", c2st, seed),
            "intensity_floor": split_half_floor(reference.samples, floor_repeats, seed),
            "shape_floor": split_half_floor(reference.samples, floor_repeats, seed, tuple(SHAPE_STATISTICS)),
            "frequency_dice_ceiling": _frequency_ceiling(list(reference.fractions.values()), int(np.median(sizes)),
                                                         floor_repeats, seed),
        },
        "sources": dict(sources),
        "protocol": {"c2st": asdict(c2st), "split": "by patient (real) and by canvas (synthetic); real vs real: "
                                                    "two random halves of the real patients"},
    }


def _mean(values) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _combine_intensity(tables: Sequence[dict]) -> dict:
    return {key: {"wasserstein": _mean([t[key]["wasserstein"] for t in tables]),
                  "real_median": _mean([t[key]["real_median"] for t in tables]),
                  "median": _mean([t[key]["median"] for t in tables]),
                  "n_real": sum(t[key]["n_real"] for t in tables), "n": sum(t[key]["n"] for t in tables)}
            for key in tables[0]}


def combine_records(records: Sequence[dict]) -> dict:
    """One record from independent ``realism_record``s (one per cross-validation fold, each against its own
    held-out real scars): AUCs, distances, Dice and their references averaged over the records, counts summed,
    intervals of the mean AUC from the records' bootstrap draws (``combine_c2st``)."""
    ref = [r["real_vs_real"] for r in records]
    sources = {}
    for name in records[0]["sources"]:
        entries = [r["sources"][name] for r in records]
        entry = {"patients": sum(e["patients"] for e in entries),
                 "slices_with_scar": sum(e["slices_with_scar"] for e in entries),
                 "frequency_dice": _mean([e["frequency_dice"] for e in entries])}
        for test in ("image_c2st", "mask_c2st"):
            if test in entries[0]:
                entry[test] = combine_c2st([e[test] for e in entries])
        for table in ("intensity", "shape"):
            if table in entries[0]:
                entry[table] = _combine_intensity([e[table] for e in entries])
        sources[name] = entry
    return {
        "real": {key: sum(r["real"][key] for r in records) for key in ("patients", "slices_with_scar")},
        "statistics": records[0]["statistics"],
        **({"shape_statistics": records[0]["shape_statistics"]} if "shape_statistics" in records[0] else {}),
        "real_vs_real": {
            "image_c2st": combine_c2st([r["image_c2st"] for r in ref]),
            "mask_c2st": combine_c2st([r["mask_c2st"] for r in ref]),
            **{floor: {key: {"mean": _mean([r[floor][key]["mean"] for r in ref]),
                             "sd": _mean([r[floor][key]["sd"] for r in ref])}
                       for key in ref[0][floor]}
               for floor in ("intensity_floor", "shape_floor") if floor in ref[0]},
            "frequency_dice_ceiling": {"mean": _mean([r["frequency_dice_ceiling"]["mean"] for r in ref]),
                                       "sd": _mean([r["frequency_dice_ceiling"]["sd"] for r in ref])},
        },
        "sources": sources,
        "protocol": {**records[0]["protocol"], "combined": f"mean over {len(records)} cross-validation folds, each "
                                                          "source against its own fold's held-out real scars"},
    }
