"""What the study records beside its stages: its identity, the orientation overview, memory and strict JSON."""

from __future__ import annotations

import contextlib
import math
import resource
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from claim.aha.config import AhaConfig, geometry_for
from claim.aha.geometry import PatientGeometry
from claim.aha.orientation_file import orientation_file_path
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.output import data_identity
from claim.stages.aha import flag_outlier_entries, orientation_overview, orientation_tile

__all__ = [
    "ORIENTATION_DIR",
    "ORIENTATION_SUMMARY",
    "ORIENTATION_SHEET",
    "peak_rss_mb",
    "TreeMemory",
    "json_safe",
    "patient_ids",
    "orientation_identity",
    "differing_identity_keys",
    "write_orientation_overview",
    "DONOR_PRIOR_SOURCE",
    "smile_prior_provenance",
    "open_study_folder",
    "timing_record",
    "identity_config",
    "realism_is_current",
]

ORIENTATION_DIR = "orientation"
ORIENTATION_SUMMARY = "orientation.json"
ORIENTATION_SHEET = "orientation.png"

# Marks a SMILE prior fitted by the study on its training donors (in the prior's ``source``).
DONOR_PRIOR_SOURCE = "(study training donors)"

# Config fields added after studies were first recorded, with the value every earlier study used: an earlier
# study's identity lacks them and is still the same study.
_ADDED_CONFIG_DEFAULTS = {"orientation": "auto", "handedness": "ccw", "precision": "fp32", "folds": 0,
                          "segmenter_seeds": 1}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and of finished children), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0  # Linux reports KiB


def _memory_of(process: psutil.Process) -> int:
    """Bytes of memory ``process`` holds, shared pages split among the processes sharing them (PSS) where the
    system reports it, else its resident set (RSS)."""
    with contextlib.suppress(psutil.AccessDenied, AttributeError, NotImplementedError):
        pss = getattr(process.memory_full_info(), "pss", None)
        if pss is not None:
            return int(pss)
    return int(process.memory_info().rss)


class TreeMemory:
    """Peak memory of this process and its live child processes together, MB, sampled every ``interval`` seconds in
    a thread (``with TreeMemory() as memory: ...; memory.peak_mb``). Worker processes run at once, so the machine
    holds their sum, which neither process's own peak shows. Each process counts its proportional share of the
    pages it shares (PSS, on Linux): summing resident sets would count torch's libraries once per worker."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while True:
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a child may end between listing and reading
                    total += _memory_of(process)
            self.peak_mb = max(self.peak_mb, total / 2**20)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON: metrics.json must load in any JSON reader)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def patient_ids(data_dir: Path) -> list[str]:
    """Patient ids of the test folder: read only to check that no patient is on both sides."""
    return sorted(p.patient_id for p in read_dataset(data_dir, require_labels=False, require_myocardium=False))


def orientation_identity(config: AhaConfig) -> str | None:
    """Content hash of an ``--orientation file:PATH`` file (None otherwise): an edited file is another study."""
    path = orientation_file_path(config.orientation)
    return data_identity([path])[0] if path is not None else None


# Config fields of the realism measure only: a study differing in them is the same study (its realism stage reruns
# when the recorded protocol differs, see ``realism_is_current``).
_REALISM_FIELDS = ("realism_repeats", "realism_steps")


def identity_config(config_dict: dict) -> dict:
    """A study config as its identity records it: plain JSON, without the realism measure's own fields."""
    import json

    return {k: v for k, v in json.loads(json.dumps(config_dict, default=list)).items() if k not in _REALISM_FIELDS}


def realism_is_current(path: Path, c2st: dict) -> bool:
    """Whether a written ``realism.json`` was measured with the two-sample protocol ``c2st`` (as a dict)."""
    import json

    if not Path(path).exists():
        return False
    return json.loads(Path(path).read_text()).get("protocol", {}).get("c2st") == json.loads(json.dumps(c2st,
                                                                                                        default=list))


def differing_identity_keys(stored: dict, identity: dict) -> list[str]:
    """Keys of ``identity`` that a stored identity disagrees on (fields added since it was written take the value
    those studies ran with)."""
    from claim.experiment.config import ExperimentConfig

    stored = dict(stored)
    if isinstance(stored.get("config"), dict):
        config = _ADDED_CONFIG_DEFAULTS | stored["config"]
        # A round trip fills fields added to the nested configs (generator, joint, segmenter) with their defaults,
        # which are the behaviour those studies ran with; a config this version cannot read is compared as stored.
        with contextlib.suppress(TypeError, ValueError):
            config = ExperimentConfig.from_dict(config).to_dict()
        stored["config"] = identity_config(config)
    stored.setdefault("orientation_file", None)
    return sorted(k for k in identity if stored.get(k) != identity[k])


def write_orientation_overview(
    out_dir: Path,
    train: Sequence[Patient],
    test_dir: Path,
    geometry: Callable[[Patient], PatientGeometry],
    config: AhaConfig,
    *,
    progress: bool = False,
) -> dict:
    """``OUT/orientation/``: the orientation sheet and summary of the study's training and test patients.

    Training patients use the study's own (cached) geometry; test patients are read here only to show where
    their origin lies (their labels train nothing).
    """
    entries, roles = [], {}
    for role, patients in (("train", train), ("test", read_dataset(test_dir, progress=progress))):
        for patient in patients:
            g = geometry(patient) if role == "train" else geometry_for(patient, config)
            entries.append((patient.patient_id, g.orientation, orientation_tile(patient, g)))
            roles[patient.patient_id] = role
    folder = Path(out_dir) / ORIENTATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"orientation": config.orientation, "handedness": config.handedness.value,
               "orientation_file_sha256": orientation_identity(config), "orientation_sheet": ORIENTATION_SHEET}
    entries, cohort = flag_outlier_entries(entries)
    summary |= orientation_overview(entries, folder / ORIENTATION_SHEET, title="AHA angle origin: study patients",
                                    cohort=cohort)
    summary["roles"] = roles
    write_json(folder / ORIENTATION_SUMMARY, summary)
    return summary


def smile_prior_provenance(path: Path) -> dict:
    """Where a study's SMILE masks' prior (``masks/smile/smile_prior.json``) came from; studies run before the prior
    was fitted per study used the shipped prior, fitted on all EMIDEC pathological patients."""
    import json

    if path.exists():
        record = json.loads(path.read_text())
        return {"source": record["source"], "n_patients": record["n_patients"],
                "training_donors_only": record["source"].endswith(DONOR_PRIOR_SOURCE)}
    from claim.smile.prior import default_prior

    shipped = default_prior()
    return {"source": shipped.source, "n_patients": shipped.n_patients, "training_donors_only": False}


def open_study_folder(out: Path, inputs: Sequence[Path], identity: dict, overwrite: bool) -> dict:
    """Check a study's ``--out`` (outside its inputs, nothing claim did not write) and return its stored
    ``state.json`` (empty for a new study). A stored study of another identity is refused, or removed with
    ``overwrite``."""
    import json
    import shutil

    from claim.data.augmented import refuse_augmented
    from claim.data.write import check_output_location
    from claim.errors import ClaimError
    from claim.output import OutputFolder

    out = Path(out)
    check_output_location(out, list(inputs))
    for folder in inputs:  # the study paints its own synthetic patients, per fold, with generators blind to its tests
        refuse_augmented(folder, "give the study the real data; it paints its own synthetic patients")
    for folder in inputs:
        if out.resolve() in Path(folder).resolve().parents:
            raise ClaimError(f"input folder {folder} lies inside --out {out}; choose another --out")
    OutputFolder(out, "experiment", resume=True).check()  # nothing claim did not write
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    changed = differing_identity_keys(state["identity"], identity) if state else []
    if changed:
        if not overwrite:
            raise ClaimError(f"{out} holds a study with another configuration, seed or data ({', '.join(changed)} "
                             "differ); pass --overwrite to start over, or choose another --out")
        shutil.rmtree(out)
        state = {}
    return state


def timing_record(finished: dict[str, dict], key: str, wall_s: float | None = None) -> dict:
    """Seconds per finished stage (or fold) under ``key``, the run's total and the peak RSS of the run.

    ``total_s`` is the wall time ``wall_s`` when given (stages that ran at once in workers overlap), else the sum of
    the stages' seconds; ``stage_sum_s`` is always that sum.
    """
    seconds = {name: record["seconds"] for name, record in finished.items()}
    stage_sum = round(sum(seconds.values()), 3)
    return {key: seconds, "total_s": stage_sum if wall_s is None else round(wall_s, 3), "stage_sum_s": stage_sum,
            "peak_rss_mb": round(max([peak_rss_mb()] + [r.get("peak_rss_mb", 0) for r in finished.values()]), 1)}
