"""Write patients and label maps mirroring the layout they came from (EMIDEC, nnU-Net raw, PNG pairs)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from claim.data.io import write_json, write_nifti, write_png
from claim.data.layouts import NNUNET_LABELS, SLICE_STEM
from claim.data.patient import Layout, Patient
from claim.errors import InputError

__all__ = [
    "patient_files",
    "write_patient",
    "write_label_maps",
    "write_nnunet_dataset_json",
    "check_output_location",
    "copy_patient",
]


_ROLE_FOLDERS = {
    Layout.EMIDEC: {"image": "Images", "label": "Contours", "segment": "Segments"},
    Layout.NNUNET: {"image": "imagesTr", "label": "labelsTr", "segment": "segmentsTr"},
    Layout.PNG: {"image": "images", "label": "labels", "segment": "segments"},
}


def patient_files(patient: Patient, out_dir: Path, role: str) -> list[Path]:
    """Where ``patient``'s files of ``role`` (image, label, segment) go under ``out_dir``, mirroring its layout."""
    out_dir = Path(out_dir)
    folder = _ROLE_FOLDERS[patient.layout][role]
    pid = patient.patient_id
    if patient.layout == Layout.EMIDEC:
        return [out_dir / pid / folder / f"{pid}.nii.gz"]
    if patient.layout == Layout.NNUNET:
        name = f"{pid}_0000.nii.gz" if role == "image" else f"{pid}.nii.gz"
        return [out_dir / folder / name]
    stems = _png_stems(patient)
    return [out_dir / folder / f"{stem}.png" for stem in stems]


def _png_stems(patient: Patient) -> list[str]:
    source_ids = {SLICE_STEM.match(s)["patient"] for s in patient.slice_stems if SLICE_STEM.match(s)}
    if patient.slice_stems and source_ids == {patient.patient_id}:
        return list(patient.slice_stems)
    return [f"{patient.patient_id}_slice{k:03d}" for k in patient.slice_positions]


def _png_image_array(image: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """Intensities as the source's PNG integer type (8- or 16-bit), rounded and kept inside its range."""
    kind = np.dtype(dtype)
    return np.clip(np.round(image), 0, np.iinfo(kind).max).astype(kind)


def write_patient(patient: Patient, out_dir: Path, *, images: bool = True, labels: bool = True) -> list[Path]:
    """Write a patient's images and/or label maps under ``out_dir`` in its own layout; returns written paths."""
    written: list[Path] = []
    if images:
        written += _write_role(patient, out_dir, "image", patient.images)
    if labels:
        written += _write_role(patient, out_dir, "label", patient.label_maps)
    return written


def write_label_maps(patient: Patient, out_dir: Path, label_maps: np.ndarray, role: str = "label") -> list[Path]:
    """Write a stack of integer maps (labels, or AHA segments with ``role="segment"``) mirroring the layout."""
    if label_maps.shape != patient.images.shape:
        raise ValueError(f"maps {label_maps.shape} do not match patient {patient.patient_id} {patient.images.shape}")
    return _write_role(patient, out_dir, role, label_maps.astype(np.uint8))


def _write_role(patient: Patient, out_dir: Path, role: str, stack: np.ndarray) -> list[Path]:
    paths = patient_files(patient, out_dir, role)
    if patient.layout == Layout.PNG:
        for path, array in zip(paths, stack, strict=True):
            dtype = patient.extra.get("png_dtype", "uint8")
            write_png(path, _png_image_array(array, dtype) if role == "image" else array.astype(np.uint8))
        return paths
    volume = np.moveaxis(stack, 0, 2)
    volume = volume.astype(np.float32) if role == "image" else volume.astype(np.uint8)
    zooms = None
    if patient.spacing_mm is not None:
        zooms = (*patient.spacing_mm, patient.slice_thickness_mm or 1.0)
    write_nifti(paths[0], volume, patient.affine, zooms)
    return paths


def write_nnunet_dataset_json(out_dir: Path, n_training: int, *, name: str = "claim") -> Path:
    """The ``dataset.json`` nnU-Net v2 expects beside ``imagesTr``/``labelsTr`` (one LGE channel, EMIDEC labels)."""
    return write_json(
        Path(out_dir) / "dataset.json",
        {
            "name": name,
            "channel_names": {"0": "LGE"},
            "labels": dict(NNUNET_LABELS),
            "numTraining": int(n_training),
            "file_ending": ".nii.gz",
        },
    )


def check_output_location(out_dir: Path, inputs: Iterable[Path] | Path) -> None:
    """Refuse an output folder inside (or equal to) an input folder: outputs would mix with, or overwrite, inputs."""
    out = Path(out_dir).resolve()
    sources: Sequence[Path] = [inputs] if isinstance(inputs, Path | str) else list(inputs)
    for source in sources:
        src = Path(source).resolve()
        if out == src or src in out.parents:
            raise InputError(out_dir, f"output folder is inside the input folder {source}; choose a folder outside it")


def copy_patient(patient: Patient, data_dir: Path, out_dir: Path) -> None:
    """Copy a patient's source files from ``data_dir`` into ``out_dir`` in the same layout, byte for byte.

    EMIDEC copies the case folder (a single-case ``data_dir`` lands in ``out_dir`` itself); nnU-Net and PNG copy the
    image and label files only (no ``dataset.json``: the caller knows how many cases it writes).
    """
    if patient.layout == Layout.EMIDEC:
        case_dir = patient.image_paths[0].parent.parent
        target = out_dir if case_dir.resolve() == Path(data_dir).resolve() else out_dir / case_dir.name
        shutil.copytree(case_dir, target, dirs_exist_ok=True)
        return
    folder = {Layout.NNUNET: ("imagesTr", "labelsTr"), Layout.PNG: ("images", "labels")}[patient.layout]
    for path in patient.image_paths:
        _copy_file(path, out_dir / folder[0] / path.name)
    for path in patient.label_paths:
        if path.exists():
            _copy_file(path, out_dir / folder[1] / path.name)


def _copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
