"""Read and write single NIfTI volumes and PNG slices, with checks and atomic writes; nothing else."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image, UnidentifiedImageError

from claim.errors import InputError

__all__ = [
    "NiftiVolume",
    "read_nifti",
    "write_nifti",
    "read_png",
    "write_png",
    "write_json",
    "write_text",
    "atomic_path",
    "check_finite",
    "check_label_values",
]


class NiftiVolume:
    """A 3D NIfTI volume: data ``(X, Y, Z)``, affine and voxel sizes ``(dx, dy, dz)`` in mm."""

    def __init__(self, data: np.ndarray, affine: np.ndarray, zooms: tuple[float, float, float]) -> None:
        self.data = data
        self.affine = affine
        self.zooms = zooms


def read_nifti(path: Path) -> NiftiVolume:
    """Read a 2D or 3D NIfTI (a 2D image becomes one slice). Errors name the file and the problem."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    except Exception as exc:  # nibabel raises many types for corrupt files (ImageFileError, EOFError, zlib...)
        raise InputError(path, f"unreadable NIfTI ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise InputError(path, f"expected a 2D or 3D volume, got shape {data.shape}")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    zooms = zooms + (1.0,) * (3 - len(zooms))
    return NiftiVolume(data, np.asarray(img.affine, dtype=np.float64), zooms)  # type: ignore[arg-type]


def read_png(path: Path) -> np.ndarray:
    """Read a single-channel PNG as a 2D array (RGB images with equal channels are accepted)."""
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img)
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"unreadable PNG ({type(exc).__name__}: {exc})") from exc
    if array.ndim == 3:
        if (
            array.shape[2] in (3, 4)
            and np.array_equal(array[..., 0], array[..., 1])
            and np.array_equal(array[..., 0], array[..., 2])
        ):
            array = array[..., 0]
        else:
            raise InputError(path, f"expected a grayscale PNG, got {array.shape[2]} colour channels")
    return array


def check_finite(array: np.ndarray, path: Path) -> None:
    """Reject NaN/inf intensities, naming the file and how many."""
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            raise InputError(path, f"{int(bad.sum())} NaN/inf intensity values; fix or mask them before use")


def check_label_values(label_map: np.ndarray, allowed: frozenset[int], path: Path) -> np.ndarray:
    """Return ``label_map`` as uint8 after checking every value is an allowed integer label."""
    if np.issubdtype(label_map.dtype, np.floating):
        if not np.all(np.isfinite(label_map)):
            raise InputError(path, "label map contains NaN/inf values")
        if not np.all(label_map == np.round(label_map)):
            raise InputError(path, "label map has non-integer values (is this an image rather than a label map?)")
    values = np.unique(label_map)
    unexpected = sorted(int(v) for v in values if int(v) not in allowed)
    if unexpected:
        raise InputError(
            path,
            f"label values {unexpected} outside the declared set {sorted(allowed)}; "
            "map them with --label-mapping SRC:DST (e.g. '3:rv')",
        )
    return label_map.astype(np.uint8)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_path(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place.

    The temporary name keeps the final suffixes so format-sniffing writers (nibabel) behave; a crash leaves
    at worst a hidden ``.tmp-*`` file, never a truncated output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.stem.split('.')[0]}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); outputs get the permissions any other new file would (umask).
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_nifti(
    path: Path, data: np.ndarray, affine: np.ndarray | None, zooms: tuple[float, ...] | None = None
) -> Path:
    """Write a volume atomically; ``affine`` None gives a diagonal affine from ``zooms``."""
    if affine is None:
        affine = np.diag([*(zooms or (1.0, 1.0, 1.0))[:3], 1.0])
    img = nib.Nifti1Image(data, affine)
    if zooms is not None:
        img.header.set_zooms(tuple(zooms)[: data.ndim])
    return atomic_path(path, lambda tmp: nib.save(img, str(tmp)))


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a 2D uint8/uint16 array (or RGB/RGBA uint8) as PNG atomically."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG data must be uint8 or uint16, got {array.dtype}")
    return atomic_path(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically (indent 2, numpy scalars converted)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return write_text(path, text)


def write_text(path: Path, text: str) -> Path:
    return atomic_path(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
