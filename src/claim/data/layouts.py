"""Discover and read the three folder layouts (EMIDEC, nnU-Net raw, PNG pairs) as ``Patient`` records.

Writers mirroring these layouts live in ``claim.data.write``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from claim.data.io import (
    check_finite,
    check_label_values,
    read_nifti,
    read_png,
)
from claim.data.patient import Layout, Patient
from claim.errors import InputError
from claim.labels import ALL_LABELS, EMIDEC_LABELS, apply_label_mapping

__all__ = ["detect_layout", "read_dataset", "NNUNET_LABELS", "SLICE_STEM"]

log = logging.getLogger(__name__)
SLICE_STEM = re.compile(r"^(?P<patient>.+)_slice(?P<k>\d+)$")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
NNUNET_LABELS = {"background": 0, "cavity": 1, "myocardium": 2, "infarct": 3, "mvo": 4}


def _hidden(path: Path) -> bool:
    # Staging folders, manifests and the .tmp-* files of atomic writes are claim's own bookkeeping, never data.
    return path.name.startswith(".")


def _is_nifti(path: Path) -> bool:
    return path.is_file() and not _hidden(path) and path.name.endswith(_NIFTI_SUFFIXES)


def _nifti_stem(path: Path) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _emidec_case_dirs(root: Path) -> list[Path]:
    if (root / "Images").is_dir() and (root / "Contours").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p) and (p / "Images").is_dir())


def detect_layout(root: Path) -> Layout:
    """Which layout ``root`` holds. Raises ``InputError`` for a missing/empty folder, no layout, or mixed layouts."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "folder not found")
    if not root.is_dir():
        raise InputError(root, "is a file; expected a data folder")
    if not any(not _hidden(p) for p in root.iterdir()):
        raise InputError(root, "empty folder: expected EMIDEC case folders, nnU-Net imagesTr/labelsTr, or images/ PNGs")
    found: dict[Layout, str] = {}
    if (root / "images").is_dir() and _png_images(root):
        found[Layout.PNG] = "images/*.png"
    if (root / "imagesTr").is_dir():
        found[Layout.NNUNET] = "imagesTr/"
    emidec = _emidec_case_dirs(root)
    if emidec:
        found[Layout.EMIDEC] = f"case folders with Images/ ({emidec[0].name}, ...)"
    if len(found) > 1:
        described = "; ".join(f"{layout.value}: {what}" for layout, what in found.items())
        raise InputError(root, f"mixed layouts ({described}); keep one layout per folder")
    if not found:
        raise InputError(
            root,
            "no known layout: expected Case_X/Images/Case_X.nii.gz + Case_X/Contours/ (EMIDEC), "
            "imagesTr/ + labelsTr/ + dataset.json (nnU-Net raw), or images/*.png + labels/*.png",
        )
    return next(iter(found))


def read_dataset(
    root: Path,
    *,
    label_mapping: dict[int, int] | None = None,
    require_labels: bool = True,
    require_myocardium: bool = True,
    progress: bool = False,
) -> list[Patient]:
    """Read every patient of a folder in any supported layout, validated.

    Args:
        root: data folder (layout auto-detected).
        label_mapping: declared mapping from the folder's label encoding to claim's ids, applied before checks.
        require_labels: if False, missing label files give all-zero label maps (for prediction inputs).
        require_myocardium: reject a patient whose stack holds no myocardium (labels 2, 3, 4).
        progress: show a progress bar.

    Returns:
        Patients sorted by id. Input files are only read, never modified.
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout == Layout.PNG:
        loaders = _png_loaders(root)
    elif layout == Layout.NNUNET:
        loaders = _nnunet_loaders(root)
    else:
        loaders = _emidec_loaders(root)
    if not loaders:
        raise InputError(root, f"{layout.value} layout but no cases found")
    patients = []
    for loader in tqdm(loaders, desc=f"reading {root.name}", unit="patient", disable=not progress, leave=False):
        patient = loader(label_mapping, require_labels)
        if require_labels and require_myocardium and not patient.myocardium_mask.any():
            raise InputError(
                patient.label_paths[0] if patient.label_paths else root,
                f"patient {patient.patient_id} has no myocardium (labels 2/3/4) "
                f"in any of its {patient.n_slices} slices",
            )
        patients.append(patient)
    return sorted(patients, key=lambda p: p.patient_id)


def _allowed_labels(label_mapping: dict[int, int] | None) -> frozenset[int]:
    # Without a mapping only EMIDEC ids are valid; a mapping may introduce RV (5).
    return ALL_LABELS if label_mapping else EMIDEC_LABELS


def _load_labels(path: Path, raw: np.ndarray, label_mapping: dict[int, int] | None) -> np.ndarray:
    if np.issubdtype(raw.dtype, np.floating) and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        raw = raw.astype(np.int64)
    mapped = apply_label_mapping(raw, label_mapping)
    return check_label_values(mapped, _allowed_labels(label_mapping), path)


# ---------------------------------------------------------------- PNG pairs


def _png_images(root: Path) -> list[Path]:
    return sorted(p for p in (root / "images").glob("*.png") if not _hidden(p))


def _png_loaders(root: Path) -> list:
    groups: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    ungrouped = []
    for image_path in _png_images(root):
        match = SLICE_STEM.match(image_path.stem)
        patient_id, k = (match["patient"], int(match["k"])) if match else (image_path.stem, 0)
        if not match:
            ungrouped.append(image_path.name)
        groups[patient_id].append((k, image_path))
    if ungrouped:
        log.warning("%s: %d file name(s) lack '_slice<k>' (%s%s); each is read as its own one-slice patient. Name "
                    "slices <patient>_slice<k>.png to group a patient's slices.", root / "images", len(ungrouped),
                    ", ".join(ungrouped[:3]), ", ..." if len(ungrouped) > 3 else "")
    loaders = []
    for patient_id, items in groups.items():
        positions = [k for k, _ in items]
        if len(set(positions)) != len(positions):
            raise InputError(root / "images", f"patient {patient_id} has two files with the same slice number")
        loaders.append(_PngPatientLoader(root, patient_id, sorted(items)))
    return loaders


class _PngPatientLoader:
    def __init__(self, root: Path, patient_id: str, items: list[tuple[int, Path]]) -> None:
        self.root, self.patient_id, self.items = root, patient_id, items

    def __call__(self, label_mapping: dict[int, int] | None, require_labels: bool) -> Patient:
        images, labels, label_paths = [], [], []
        shape, png_dtype = None, "uint8"
        for _, image_path in self.items:
            image = read_png(image_path)
            check_finite(image, image_path)
            if shape is None:
                shape = image.shape
            elif image.shape != shape:
                raise InputError(
                    image_path,
                    f"slice shape {image.shape} differs from {shape} of patient {self.patient_id}'s first slice",
                )
            label_path = self.root / "labels" / image_path.name
            if label_path.exists():
                label = _load_labels(label_path, read_png(label_path), label_mapping)
                if label.shape != image.shape:
                    raise InputError(label_path, f"label shape {label.shape} does not match image shape {image.shape}")
            elif require_labels:
                raise InputError(image_path, f"no label file {label_path}")
            else:
                label = np.zeros(image.shape, dtype=np.uint8)
            images.append(image.astype(np.float32))
            labels.append(label)
            # 16-bit sources (uint16, or PIL's 32-bit "I" mode) are written back at 16 bits, never clipped to 8.
            if image.dtype != np.uint8:
                png_dtype = "uint16"
            label_paths.append(label_path)
        return Patient(
            patient_id=self.patient_id,
            images=np.stack(images),
            label_maps=np.stack(labels),
            layout=Layout.PNG,
            slice_positions=tuple(k for k, _ in self.items),
            image_paths=tuple(p for _, p in self.items),
            label_paths=tuple(label_paths),
            slice_stems=tuple(p.stem for _, p in self.items),
            extra={"png_dtype": png_dtype},
        )


# ---------------------------------------------------------------- NIfTI layouts


def _read_volume_patient(
    patient_id: str,
    image_path: Path,
    label_path: Path | None,
    layout: Layout,
    label_mapping: dict[int, int] | None,
    require_labels: bool,
) -> Patient:
    volume = read_nifti(image_path)
    check_finite(volume.data, image_path)
    if label_path is not None and label_path.exists():
        labels_volume = read_nifti(label_path)
        if labels_volume.data.shape != volume.data.shape:
            raise InputError(
                label_path, f"label shape {labels_volume.data.shape} does not match image shape {volume.data.shape}"
            )
        labels = _load_labels(label_path, labels_volume.data, label_mapping)
    elif require_labels:
        raise InputError(image_path, f"no label file {label_path}")
    else:
        labels = np.zeros(volume.data.shape, dtype=np.uint8)
    # Slices along the third voxel axis: short-axis stacks are stored (X, Y, Z) with Z through the LV.
    images = np.moveaxis(volume.data.astype(np.float32), 2, 0)
    label_maps = np.moveaxis(labels, 2, 0)
    return Patient(
        patient_id=patient_id,
        images=np.ascontiguousarray(images),
        label_maps=np.ascontiguousarray(label_maps),
        layout=layout,
        spacing_mm=(volume.zooms[0], volume.zooms[1]),
        slice_thickness_mm=volume.zooms[2],
        image_paths=(image_path,),
        label_paths=(label_path,) if label_path is not None else (),
        affine=volume.affine,
    )


def _emidec_loaders(root: Path) -> list:
    loaders = []
    for case_dir in _emidec_case_dirs(root):
        case = case_dir.name
        image_path = case_dir / "Images" / f"{case}.nii.gz"
        if not image_path.exists():
            candidates = sorted(p for p in (case_dir / "Images").iterdir() if _is_nifti(p))
            if len(candidates) != 1:
                raise InputError(case_dir / "Images", f"expected {case}.nii.gz (found {len(candidates)} NIfTI files)")
            image_path = candidates[0]
        label_path = case_dir / "Contours" / image_path.name

        def load(mapping, require, case=case, image_path=image_path, label_path=label_path):
            return _read_volume_patient(case, image_path, label_path, Layout.EMIDEC, mapping, require)

        loaders.append(load)
    return loaders


def _nnunet_loaders(root: Path) -> list:
    dataset_json = root / "dataset.json"
    if not dataset_json.exists():
        raise InputError(root, "nnU-Net raw layout (imagesTr/) but no dataset.json")
    try:
        meta = json.loads(dataset_json.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(dataset_json, f"not valid JSON ({exc})") from exc
    file_ending = meta.get("file_ending", ".nii.gz")
    if file_ending not in _NIFTI_SUFFIXES:
        raise InputError(dataset_json, f"file_ending {file_ending!r} not supported (use .nii.gz or .nii)")
    loaders = []
    for image_path in sorted(p for p in (root / "imagesTr").glob(f"*_0000{file_ending}") if not _hidden(p)):
        case = image_path.name[: -len(f"_0000{file_ending}")]
        label_path = root / "labelsTr" / f"{case}{file_ending}"

        def load(mapping, require, case=case, image_path=image_path, label_path=label_path):
            return _read_volume_patient(case, image_path, label_path, Layout.NNUNET, mapping, require)

        loaders.append(load)
    return loaders
