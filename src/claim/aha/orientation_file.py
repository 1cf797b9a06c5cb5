"""Per-patient angle origins in a small CSV: read by ``--orientation file:PATH``, written by ``--write-orientation``.

Format (a header line, then one patient per line; lines starting with ``#`` are comments)::

    patient_id,insertion_deg,handedness
    Case_P001,215,ccw

``insertion_deg`` is the screen angle of the anterior RV insertion point (counterclockwise from the image's
+column axis, rows pointing down), the same number ``--orientation angle:DEG`` takes; ``handedness`` (``ccw``
or ``cw``) is optional and defaults to ``--handedness``. Further columns (the written file adds ``method``,
``confidence`` and ``low_confidence`` to help editing) are ignored. Patients missing from the file fall back
to the estimate.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from claim.aha.orientation import Orientation, OrientationMethod
from claim.aha.segments import ANTERIOR_INSERTION_DEG, Handedness, origin_from_screen
from claim.data.io import write_text
from claim.errors import InputError

__all__ = [
    "OrientationEntry",
    "read_orientation_file",
    "write_orientation_file",
    "orientation_file_path",
    "orientation_from_entry",
]

_COLUMNS = ("patient_id", "insertion_deg", "handedness")


@dataclass(frozen=True)
class OrientationEntry:
    insertion_deg: float
    handedness: Handedness | None = None


def orientation_file_path(spec: str) -> Path | None:
    """The PATH of an ``--orientation file:PATH`` value, else None."""
    spec = spec.strip()
    return Path(spec.split(":", 1)[1]) if spec.lower().startswith("file:") else None


def read_orientation_file(path: str | Path) -> dict[str, OrientationEntry]:
    """Patient id -> entry; raises ``InputError`` naming the file and line for anything malformed."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(path, f"cannot read the orientation file ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise InputError(path, "the orientation file is not a file")
    return dict(_read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, OrientationEntry], ...]:
    # Every patient's geometry looks its angle up; the key includes mtime and size so an edited file is re-read.
    del mtime_ns, size
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the orientation file ({exc})") from exc
    lines = [
        (n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InputError(path, f"the orientation file has no patients (expected '{','.join(_COLUMNS)}')")
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [cell.strip().lower() for cell in rows[0]]
    if header[:2] == ["patient_id", "insertion_deg"]:
        columns, rows, lines = header, rows[1:], lines[1:]
    else:
        columns = list(_COLUMNS)
    entries: dict[str, OrientationEntry] = {}
    for (number, _), row in zip(lines, rows, strict=True):
        record = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        patient_id = record.get("patient_id", "")
        if not patient_id or "insertion_deg" not in record:
            raise InputError(path, f"line {number}: expected 'patient_id,insertion_deg[,handedness]'")
        try:
            angle = float(record["insertion_deg"])
        except ValueError:
            angle = math.nan
        if not math.isfinite(angle):
            raise InputError(path, f"line {number}: insertion_deg {record['insertion_deg']!r} is not a number")
        handedness = None
        if record.get("handedness"):
            try:
                handedness = Handedness(record["handedness"].lower())
            except ValueError:
                problem = f"line {number}: handedness {record['handedness']!r} must be ccw or cw"
                raise InputError(path, problem) from None
        if patient_id in entries:
            raise InputError(path, f"line {number}: patient {patient_id} is listed twice")
        entries[patient_id] = OrientationEntry(angle % 360.0, handedness)
    return tuple(entries.items())


def orientation_from_entry(entry: OrientationEntry, default_handedness: Handedness) -> Orientation:
    handedness = entry.handedness or default_handedness
    return Orientation(
        OrientationMethod.FILE,
        origin_from_screen(entry.insertion_deg, ANTERIOR_INSERTION_DEG, handedness),
        handedness,
        entry.insertion_deg,
    )


def write_orientation_file(path: str | Path, orientations: Iterable[tuple[str, Orientation]]) -> Path:
    """Write ``(patient_id, orientation)`` pairs in the format above, atomically."""
    buffer = io.StringIO()
    buffer.write(
        "# anterior RV insertion per patient: screen angle, counterclockwise from +column, rows pointing down.\n"
        "# Edit insertion_deg where orientation.png shows a wrong origin; feed back with --orientation file:PATH.\n"
    )
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_COLUMNS, "method", "confidence", "low_confidence"])
    for patient_id, orientation in orientations:
        writer.writerow(
            [
                patient_id,
                f"{orientation.insertion_screen_deg:.1f}",
                orientation.handedness.value,
                orientation.method.value,
                f"{orientation.confidence:.3f}",
                "yes" if orientation.low_confidence else "no",
            ]
        )
    return write_text(Path(path), buffer.getvalue())
