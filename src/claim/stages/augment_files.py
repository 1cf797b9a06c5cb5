"""How ``claim augment`` fills its output folder: the real patients copied (or converted to nnU-Net v2 raw), the
painted ones copied in beside them, and ``preview.png``."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from claim.data.io import atomic_path, write_png
from claim.data.layouts import read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import copy_patient, patient_files, write_patient

__all__ = ["PREVIEW_FILE", "write_real", "write_synthetic", "write_preview"]

PREVIEW_FILE = "preview.png"
_PREVIEW_ROWS = 8


def write_real(patients: list[Patient], data_dir: Path, out_dir: Path, convert: bool) -> None:
    """The real patients into ``out_dir``: byte for byte, or (``convert``) as nnU-Net v2 raw."""
    for patient in patients:
        if convert:
            write_patient(replace(patient, layout=Layout.NNUNET, slice_stems=()), out_dir)
        else:
            copy_patient(patient, data_dir, out_dir)


def write_synthetic(painted: Path, records: list[dict], out_dir: Path, convert: bool) -> dict[str, list[str]]:
    """Place the painted patients in ``out_dir`` (``convert``: as nnU-Net v2 raw); returns each case's files."""
    files: dict[str, list[str]] = {}
    if convert:
        for patient in read_dataset(painted):
            patient = replace(patient, layout=Layout.NNUNET, slice_stems=())
            write_patient(patient, out_dir)
            files[patient.patient_id] = [str(p.relative_to(out_dir)) for role in ("image", "label")
                                         for p in patient_files(patient, out_dir, role)]
        return files
    for record in records:
        for key in ("image", "label"):
            target = out_dir / record[key]
            atomic_path(target, lambda tmp, src=painted / record[key]: shutil.copyfile(src, tmp))
            files.setdefault(record["mask_id"], []).append(record[key])
    return files


def write_preview(painted: Path, out_dir: Path) -> Path | None:
    """Stack the first painted slice of the first synthetic cases (source | mask | synthetic) into one PNG."""
    seen, rows = set(), []
    for path in sorted((painted / "previews").glob("*.png")):
        case = path.stem.rsplit("_slice", 1)[0]
        if case not in seen and len(rows) < _PREVIEW_ROWS:
            seen.add(case)
            rows.append(np.asarray(Image.open(path).convert("L")))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]))) for r in rows]
    grid = np.concatenate(rows)[:-2]
    scale = max(1, 600 // width)  # small crops are enlarged (nearest) so scars can be seen
    return write_png(out_dir / PREVIEW_FILE, grid.repeat(scale, axis=0).repeat(scale, axis=1))
