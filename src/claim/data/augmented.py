"""Which patients of a folder ``claim augment`` painted: its ``augment.json`` names each and its source patient.

A segmenter trained on an augmented folder must never validate on a synthetic patient, nor train on the synthetic
copies of a real patient it validates on: they share that patient's anatomy and, outside the scar, its pixels.
The file names live here, below every reader of such a folder (``claim.stages.augment`` writes them).
"""

from __future__ import annotations

import json
from pathlib import Path

from claim.errors import InputError

__all__ = ["AUGMENT_FILE", "AUGMENT_WORK_DIR", "refuse_augmented", "synthetic_sources"]

AUGMENT_FILE = "augment.json"
AUGMENT_WORK_DIR = ".claim-augment"  # hidden: readers of OUT never see the intermediate masks, paintings, generator


def synthetic_sources(folder: Path) -> dict[str, str]:
    """``{synthetic patient id: its source patient id}`` of a ``claim augment`` output; empty for other folders.

    An unfinished augment output (its work folder without ``augment.json``, written last) is refused: its
    synthetic patients could not be told from the real ones.
    """
    folder = Path(folder)
    path = folder / AUGMENT_FILE
    if not path.is_file():
        if (folder / AUGMENT_WORK_DIR).is_dir():
            raise InputError(folder, "an unfinished claim augment output (no augment.json yet); finish it with "
                                     "claim augment --resume first")
        return {}
    try:
        cases = json.loads(path.read_text())["synthetic_cases"]
        return {str(case["id"]): str(case["source_patient"]) for case in cases}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a claim augment record ({type(exc).__name__}: {exc})") from exc


def refuse_augmented(folder: Path, why: str) -> None:
    """Refuse a ``claim augment`` output (finished or not) where only real patients belong, in one line."""
    folder = Path(folder)
    if (folder / AUGMENT_FILE).is_file() or (folder / AUGMENT_WORK_DIR).is_dir():
        raise InputError(folder, f"a claim augment output (real and synthetic patients): {why}")
