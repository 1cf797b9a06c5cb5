"""Output folders that claim owns: a manifest of what it wrote, refusal of anything else, staged replacement.

Every command records what it wrote in ``OUT/.claim-output.json`` (command, claim version, config, a fingerprint
of its inputs, the files). A command refuses an ``--out`` that holds a file no manifest there lists (a user's
labelled data above all), replaces its own earlier output only when asked (``--overwrite``), and continues it
with ``--resume``. Folder-in/folder-out commands build their output in a hidden staging folder beside ``--out``
and rename it into place at the end, so a kill leaves the old output or nothing, never a half-written folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from claim import __version__
from claim.data.io import write_json
from claim.errors import ClaimError, InputError

__all__ = ["MANIFEST_PREFIX", "MANIFEST_NAME", "is_hidden", "visible_files", "file_sha256", "fingerprint",
           "data_identity", "OutputFolder", "check_new_file", "staged_output", "write_manifest"]

MANIFEST_PREFIX = ".claim-output"
MANIFEST_NAME = f"{MANIFEST_PREFIX}.json"
_STAGING_SUFFIX = ".claim-staging"
_OLD_SUFFIX = ".claim-replaced"
_RESUMABLE_COMMANDS = ("train", "experiment", "augment")  # long jobs that continue their own output


def is_hidden(path: Path, root: Path | None = None) -> bool:
    """Whether any part of ``path`` (below ``root``) starts with a dot: staging folders, ``.tmp-*`` files,
    manifests. Readers skip them."""
    parts = Path(path).relative_to(root).parts if root is not None else (Path(path).name,)
    return any(part.startswith(".") for part in parts)


def visible_files(root: Path) -> list[Path]:
    """Every file below ``root`` that is not hidden, sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and not is_hidden(p, root))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_identity(inputs: Iterable[Path | str | None]) -> list[str]:
    """The content hashes of ``inputs`` alone (not their paths): equal lists mean the same data."""
    return [entry["sha256"] for entry in fingerprint(inputs).values()]


def fingerprint(inputs: Iterable[Path | str | None]) -> dict[str, Any]:
    """Identity of input files and folders: per input, its file count and a SHA-256 over every visible file's
    relative name, size and content. Equal fingerprints mean the same data, whatever the folder is called."""
    out: dict[str, Any] = {}
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        if not path.exists():
            raise InputError(path, "not found")
        files = [path] if path.is_file() else visible_files(path)
        digest = hashlib.sha256()
        for f in files:
            name = f.name if path.is_file() else str(f.relative_to(path))
            digest.update(f"{name}\0{f.stat().st_size}\0{file_sha256(f)}\n".encode())
        out[str(path)] = {"files": len(files), "sha256": digest.hexdigest()}
    return out


def _is_claim_artifact(relative: Path) -> bool:
    return any(part.startswith((".tmp-", MANIFEST_PREFIX)) or part.endswith((_STAGING_SUFFIX, _OLD_SUFFIX))
               for part in relative.parts)


def _manifests(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{MANIFEST_PREFIX}*.json"))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable claim output manifest ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("files"), list):
        raise InputError(path, "not a claim output manifest")
    return record


def write_manifest(folder: Path, command: str, *, config: Any = None, inputs: Mapping[str, Any] | None = None,
                   name: str = MANIFEST_NAME, owns_folder: bool = False) -> Path:
    """Record every visible file under ``folder`` as written by ``command`` (atomically, last).

    ``owns_folder``: the folder is a run folder that claim created as a whole (a trainer's, a study's); files
    appearing in it while it runs are claim's too.
    """
    folder = Path(folder)
    files = [str(p.relative_to(folder)) for p in visible_files(folder)]
    record = {"command": command, "claim_version": __version__, "config": config, "inputs": dict(inputs or {}),
              "owns_folder": owns_folder, "files": files}
    return write_json(folder / name, record)


class OutputFolder:
    """The ``--out`` folder of one command.

    Args:
        path: the folder.
        command: the command that writes it (``aha``, ``train-generator``, ...), recorded in the manifest.
        overwrite: replace an earlier claim output there.
        resume: continue an earlier claim output there (long jobs).
    """

    def __init__(self, path: Path, command: str, *, overwrite: bool = False, resume: bool = False,
                 part: str | None = None) -> None:
        self.path, self.command, self.overwrite, self.resume = Path(path), command, overwrite, resume
        self.part = part  # one of several runs sharing the folder (a shard): its own manifest, the others' kept

    @property
    def manifest_name(self) -> str:
        return MANIFEST_NAME if self.part is None else f"{MANIFEST_PREFIX}-{self.part}.json"

    def owned_files(self) -> set[str]:
        owned: set[str] = set()
        for manifest in _manifests(self.path):
            owned |= set(_read_manifest(manifest).get("files", []))
        return owned

    def foreign_files(self) -> list[Path]:
        """Files no manifest here lists, other than claim's own hidden artifacts (manifests, ``.tmp-*`` files of
        atomic writes); in a folder without a manifest, every such file."""
        if not self.path.is_dir():
            return []
        manifests = _manifests(self.path)
        if any(_read_manifest(m).get("owns_folder") for m in manifests):
            return []  # a run folder: claim made it, and its checkpoints and logs appear while it runs
        owned = self.owned_files() if manifests else set()
        found = [p for p in self.path.rglob("*") if p.is_file() or p.is_symlink()]
        return sorted(p for p in found if str(p.relative_to(self.path)) not in owned
                      and not _is_claim_artifact(p.relative_to(self.path)))

    def check(self) -> str:
        """Refuse what must not be touched; returns ``new`` (absent or empty), ``ours`` (an earlier claim output
        that may be replaced or resumed). One-line errors name the folder."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise InputError(out, "--out is an existing file; choose a folder")
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise InputError(out, f"Not a directory: {blocking} is a file, so no folder can be made below it")
        if out.is_symlink():
            raise InputError(out, "--out is a symbolic link; choose a real folder")
        if not out.exists() or not any(out.iterdir()):
            return "new"
        foreign = self.foreign_files()
        if foreign:
            shown = ", ".join(str(p.relative_to(out)) for p in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise InputError(out, f"holds {len(foreign)} file(s) claim did not write ({shown}{more}); claim never "
                                  "writes over them: choose an empty or new --out")
        if not _manifests(out):
            return "new"  # only hidden leftovers (e.g. .tmp-* of a killed run): nothing of the user's
        if self.part is not None and not (out / self.manifest_name).exists():
            return "new"  # other parts' output: kept beside this part's
        if not (self.overwrite or self.resume):
            resumable = self.command.startswith(_RESUMABLE_COMMANDS)
            raise ClaimError(f"{out}: holds an earlier claim output; pass --overwrite to replace it"
                             + (" or --resume to continue it" if resumable else "") + " (or choose another --out)")
        return "ours"

    def clear(self) -> None:
        """Remove an earlier claim output (only after :meth:`check` said ``ours``)."""
        if self.path.is_dir():
            shutil.rmtree(self.path)

    @property
    def staging(self) -> Path:
        part = "" if self.part is None else f"-{self.part}"
        return self.path.parent / f".{self.path.name}{part}{_STAGING_SUFFIX}"


def check_new_file(path: Path, *, overwrite: bool, flag: str) -> Path:
    """A single output file (a prior, an orientation table): never a folder, never over an existing file unless
    ``overwrite``. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, f"{flag} is a folder; give a file path")
    if path.exists() and not overwrite:
        raise InputError(path, f"{flag} exists already; pass --overwrite to replace it (or choose another path)")
    return path


@contextmanager
def staged_output(path: Path, command: str, *, overwrite: bool = False, config: Any = None,
                  inputs: Sequence[Path | str | None] = (), part: str | None = None) -> Iterator[Path]:
    """Build a folder-in/folder-out command's output in a hidden staging folder; on success, record the manifest
    and rename the folder into place (replacing an earlier claim output only with ``overwrite``). On failure or
    kill, ``path`` keeps its old content; the staging folder is removed (or, after a kill, on the next run).

    With ``part`` (shards writing one folder), the finished files are moved into ``path`` one by one beside the
    other parts' files, after this part's manifest (written first, so every file there is always accounted for).
    """
    folder = OutputFolder(path, command, overwrite=overwrite, part=part)
    folder.check()
    fingerprints = fingerprint(inputs)
    staging = folder.staging
    if staging.exists():
        shutil.rmtree(staging)  # a killed earlier run's: hidden, claim's own
    path = folder.path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        raise InputError(path, f"cannot create the output folder there ({exc.strerror or exc})") from exc
    try:
        yield staging
        if part is None:
            write_manifest(staging, command, config=config, inputs=fingerprints)
            _replace_folder(staging, path)
        else:
            _merge_part(staging, path, folder, config=config, inputs=fingerprints)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(staging: Path, target: Path) -> None:
    # Two renames: a kill between them leaves the old output aside (hidden) and nothing at ``target``.
    if target.exists():
        old = target.parent / f".{target.name}{_OLD_SUFFIX}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def _merge_part(staging: Path, target: Path, folder: OutputFolder, *, config: Any, inputs: Mapping[str, Any]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    manifest = target / folder.manifest_name
    old = set(_read_manifest(manifest)["files"]) if manifest.exists() else set()
    files = [p.relative_to(staging) for p in visible_files(staging)]
    record = {"command": folder.command, "claim_version": __version__, "config": config, "inputs": dict(inputs),
              "part": folder.part, "files": sorted(str(f) for f in files)}
    write_json(manifest, {**record, "files": sorted(old | set(record["files"]))})  # covers the move below
    for f in files:
        (target / f).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / f, target / f)
    for stale in old - set(record["files"]):
        (target / stale).unlink(missing_ok=True)
    write_json(manifest, record)
