"""Describe a data folder: patients, slices, label counts, scar burden (`claim info`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from claim.data.layouts import read_dataset
from claim.labels import Label

__all__ = ["describe_dataset", "format_description"]


def describe_dataset(root: Path, *, label_mapping: dict[int, int] | None = None) -> dict:
    """JSON-ready description of every patient in ``root``."""
    patients = read_dataset(Path(root), label_mapping=label_mapping)
    records = []
    for patient in patients:
        counts = np.bincount(patient.label_maps.ravel(), minlength=len(Label))
        records.append(
            {
                "patient_id": patient.patient_id,
                "slices": patient.n_slices,
                "shape": list(patient.shape),
                "spacing_mm": list(patient.spacing_mm) if patient.spacing_mm else None,
                "slice_thickness_mm": patient.slice_thickness_mm,
                "label_pixels": {label.name.lower(): int(counts[label]) for label in Label},
                "scar_burden": round(patient.scar_burden(), 4),
                "has_mvo": bool(counts[Label.MVO] > 0),
            }
        )
    burdens = [r["scar_burden"] for r in records]
    return {
        "data": str(root),
        "layout": patients[0].layout.value,
        "patients": len(records),
        "slices": int(sum(r["slices"] for r in records)),
        "pathological": int(sum(b > 0 for b in burdens)),
        "with_mvo": int(sum(r["has_mvo"] for r in records)),
        "records": records,
    }


def format_description(description: dict) -> str:
    """A plain-text table of ``describe_dataset`` output."""
    lines = [
        f"{description['data']}: {description['layout']} layout, {description['patients']} patients "
        f"({description['pathological']} with scar, {description['with_mvo']} with MVO), "
        f"{description['slices']} slices",
        f"{'patient':<16}{'slices':>7}{'shape':>11}{'spacing mm':>16}{'myocardium':>12}{'scar':>8}{'mvo':>7}"
        f"{'burden %':>10}",
    ]
    for r in description["records"]:
        spacing = (
            f"{r['spacing_mm'][0]:.2f}x{r['spacing_mm'][1]:.2f}x{r['slice_thickness_mm']:.0f}"
            if r["spacing_mm"]
            else "-"
        )
        px = r["label_pixels"]
        lines.append(
            f"{r['patient_id']:<16}{r['slices']:>7}{'x'.join(map(str, r['shape'])):>11}{spacing:>16}"
            f"{px['myocardium'] + px['infarct'] + px['mvo']:>12}{px['infarct']:>8}{px['mvo']:>7}"
            f"{100 * r['scar_burden']:>10.1f}"
        )
    return "\n".join(lines)
