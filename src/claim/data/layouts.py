"""Discover, read and write the three folder layouts (EMIDEC, nnU-Net raw, PNG pairs) as ``Patient`` records."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from claim.data.io import (
    check_finite,
    check_label_values,
    read_nifti,
    read_png,
    write_json,
    write_nifti,
    write_png,
)
from claim.data.patient import Layout, Patient
from claim.errors import InputError
from claim.labels import ALL_LABELS, EMIDEC_LABELS, apply_label_mapping

__all__ = [
    "detect_layout",
    "read_dataset",
    "patient_files",
    "write_patient",
    "write_label_maps",
    "write_nnunet_dataset_json",
    "check_output_location",
    "copy_patient",
    "NNUNET_LABELS",
]

_SLICE_STEM = re.compile(r"^(?P<patient>.+)_slice(?P<k>\d+)$")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
NNUNET_LABELS = {"background": 0, "cavity": 1, "myocardium": 2, "infarct": 3, "mvo": 4}


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_NIFTI_SUFFIXES)


def _nifti_stem(path: Path) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _emidec_case_dirs(root: Path) -> list[Path]:
    if (root / "Images").is_dir() and (root / "Contours").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "Images").is_dir())


def detect_layout(root: Path) -> Layout:
    """Which layout ``root`` holds. Raises ``InputError`` for a missing/empty folder, no layout, or mixed layouts."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "folder not found")
    if not root.is_dir():
        raise InputError(root, "is a file; expected a data folder")
    if not any(root.iterdir()):
        raise InputError(root, "empty folder: expected EMIDEC case folders, nnU-Net imagesTr/labelsTr, or images/ PNGs")
    found: dict[Layout, str] = {}
    if (root / "images").is_dir() and any((root / "images").glob("*.png")):
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


def _png_loaders(root: Path) -> list:
    groups: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for image_path in sorted((root / "images").glob("*.png")):
        match = _SLICE_STEM.match(image_path.stem)
        patient_id, k = (match["patient"], int(match["k"])) if match else (image_path.stem, 0)
        groups[patient_id].append((k, image_path))
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
        shape = None
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
            extra={"png_dtype": "uint8"},
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
    for image_path in sorted((root / "imagesTr").glob(f"*_0000{file_ending}")):
        case = image_path.name[: -len(f"_0000{file_ending}")]
        label_path = root / "labelsTr" / f"{case}{file_ending}"

        def load(mapping, require, case=case, image_path=image_path, label_path=label_path):
            return _read_volume_patient(case, image_path, label_path, Layout.NNUNET, mapping, require)

        loaders.append(load)
    return loaders


# ---------------------------------------------------------------- writers

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
    source_ids = {_SLICE_STEM.match(s)["patient"] for s in patient.slice_stems if _SLICE_STEM.match(s)}
    if patient.slice_stems and source_ids == {patient.patient_id}:
        return list(patient.slice_stems)
    return [f"{patient.patient_id}_slice{k:03d}" for k in patient.slice_positions]


def _png_image_array(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


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
            write_png(path, _png_image_array(array) if role == "image" else array.astype(np.uint8))
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
