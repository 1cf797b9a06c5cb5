"""Output folders a stage owns: claimed by a record file, refused when they hold files the stage did not write.

A stage that writes a whole folder (``claim augment``) claims it with ``OUT/.claim-<stage>/run.json`` before
writing anything; a second run into it is refused unless it resumes the same run with the same settings, and a
folder that already holds other files (for example the user's data) is never written into.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from claim import __version__
from claim.data.io import atomic_path, write_json
from claim.data.layouts import check_output_location
from claim.errors import ClaimError, InputError

__all__ = ["RUN_RECORD", "work_dir", "claim_folder", "copy_file_atomic", "file_sha256"]

RUN_RECORD = "run.json"


def work_dir(out_dir: Path, stage: str) -> Path:
    """The hidden folder inside ``out_dir`` where ``stage`` keeps its record and intermediate files."""
    return Path(out_dir) / f".claim-{stage}"


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def claim_folder(out_dir: Path, stage: str, settings: dict[str, Any], *, resume: bool, inputs: list[Path]) -> Path:
    """Claim ``out_dir`` for ``stage`` and return its work folder.

    Args:
        out_dir: the output folder (created if missing).
        stage: the command's name (``augment``), used in the record's folder name and in messages.
        settings: everything that defines the run's outputs; a resume must give the same.
        resume: continue the run recorded in ``out_dir``.
        inputs: folders the output may not lie in.

    Raises:
        InputError: ``out_dir`` is inside an input, holds files the stage did not write, or already holds a run
            and ``resume`` is False.
        ClaimError: ``resume`` with settings that differ from the recorded run's.
    """
    out_dir = Path(out_dir)
    check_output_location(out_dir, inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file; expected an output folder")
    record_path = work_dir(out_dir, stage) / RUN_RECORD
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not record_path.is_file():
            raise InputError(out_dir, f"holds files that claim {stage} did not write; choose a new or empty folder")
        if not resume:
            raise InputError(out_dir, f"already holds a claim {stage} run; pass --resume to continue it, "
                                      "or choose a new folder")
        try:
            recorded = json.loads(record_path.read_text())["settings"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise InputError(record_path, f"unreadable run record ({exc}); choose a new folder") from exc
        now = _normalised(settings)
        changed = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
        if changed:
            shown = ", ".join(f"{k}: {recorded.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise ClaimError(f"{out_dir}: --resume with settings that differ from the run's ({shown})")
        return record_path.parent
    write_json(record_path, {"stage": stage, "claim_version": __version__, "settings": _normalised(settings)})
    return record_path.parent


def copy_file_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` byte for byte; ``dst`` appears whole or not at all."""
    return atomic_path(Path(dst), lambda tmp: shutil.copyfile(src, tmp))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
