"""``claim experiment --folds K``: the four-arm study cross-validated over patients, resumable per fold and stage.

Layout of ``OUT``::

    state.json          finished folds (seconds, RSS) + the run's identity (config, seed, data)
    folds.json          patient -> fold (1..K), stratified by normal / pathological
    folds/fold<k>/data/{train,test}/   the fold's patients, copied in the input's layout
    folds/fold<k>/study/               a complete single-split study (``claim.experiment.study``) of that fold
    metrics.json, report.html          pooled over folds (every patient tested exactly once)

Every model of fold k (both generators, the SMILE prior, the joint run, the segmenters, the judge) is trained by
the fold's own study on ``data/train`` only, so nothing of the fold's test patients reaches any of them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from claim import __version__
from claim.aha.config import geometry_for
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.evaluation.c2st import C2stConfig
from claim.experiment.config import ARMS, ExperimentConfig
from claim.experiment.realism import REALISM_FILE, realism_fold, study_realism
from claim.experiment.records import (
    identity_config,
    json_safe,
    open_study_folder,
    orientation_identity,
    peak_rss_mb,
    realism_is_current,
    timing_record,
)
from claim.experiment.schedule import check_workers
from claim.experiment.selection import study_selection
from claim.experiment.split import write_subsets
from claim.experiment.stats import ARM_METRICS, mean_fidelity, pathological_ids, summarise_arms
from claim.output import data_identity, fingerprint, write_manifest
from claim.runtime import torch_threads
from claim.stages.evaluate import PER_PATIENT_FILE

__all__ = ["FOLDS_FILE", "assign_folds", "fold_dir", "run_crossval", "pooled_metrics"]

log = logging.getLogger(__name__)

FOLDS_FILE = "folds.json"
_STATE_FILE = "state.json"


def assign_folds(pathological: list[str], normal: list[str], k: int, seed: int) -> dict[str, int]:
    """Patient id -> fold in 1..k: each class shuffled (seeded) and dealt round-robin, the normal patients continuing
    where the pathological ones stopped, so fold sizes differ by at most one overall and per class."""
    rng = np.random.default_rng([seed, 11])
    folds: dict[str, int] = {}
    dealt = 0
    for group in (sorted(pathological), sorted(normal)):
        for i in rng.permutation(len(group)):
            folds[group[int(i)]] = dealt % k + 1
            dealt += 1
    return folds


def fold_dir(out_dir: Path, fold: int) -> Path:
    return Path(out_dir) / "folds" / f"fold{fold}"


def _check_folds(k: int, pathological: list[str], normal: list[str], train_dir: Path) -> None:
    # Each fold's training side must still hold what one study needs (claim.experiment.study's prepare stage).
    most_path, most_normal = -(-len(pathological) // k), -(-len(normal) // k)
    if k < 2 or len(pathological) - most_path < 2 or len(normal) - most_normal < 1 or len(pathological) < k:
        raise ClaimError(f"--folds {k}: {train_dir} has {len(pathological)} pathological and {len(normal)} normal "
                         "patients; every fold must test >= 1 pathological patient and train on >= 2 pathological "
                         "and >= 1 normal one")


class _CrossValidation:
    def __init__(self, train_dir: Path, out_dir: Path, config: ExperimentConfig, seed: int, device: str,
                 progress: bool, overwrite: bool) -> None:
        self.train_dir, self.out = Path(train_dir), Path(out_dir)
        self.config, self.seed, self.device, self.progress, self.overwrite = config, seed, device, progress, overwrite

    def identity(self) -> dict:
        return {"config": identity_config(self.config.to_dict()), "seed": self.seed,
                "train_dir": str(self.train_dir.resolve()), "test_dir": None,
                "data": data_identity([self.train_dir]), "orientation_file": orientation_identity(self.config.aha())}

    def _start(self) -> dict:
        identity = self.identity()
        state = open_study_folder(self.out, [self.train_dir], identity, self.overwrite)
        assignment_record = self._assignment()  # bad fold counts fail before anything is written
        self.out.mkdir(parents=True, exist_ok=True)
        write_manifest(self.out, "experiment", config=self.config.to_dict(), inputs=fingerprint([self.train_dir]),
                       owns_folder=True)
        write_json(self.out / "config.json", {"command": "experiment", "config": self.config.to_dict(),
                                              "seed": self.seed, "train_data": str(self.train_dir),
                                              "test_data": None, "device": self.device,
                                              "claim_version": __version__})
        if not (self.out / FOLDS_FILE).exists():
            write_json(self.out / FOLDS_FILE, assignment_record)
        state = {"identity": identity, "claim_version": __version__, "folds": state.get("folds", {}),
                 **({"realism": state["realism"]} if "realism" in state else {})}
        # Recorded at once: a run killed in its first fold resumes only with the same identity.
        write_json(self.out / _STATE_FILE, state)
        return state

    def _assignment(self) -> dict:
        """The ``folds.json`` record: the stored one when resuming, else drawn (and checked) from the data."""
        path = self.out / FOLDS_FILE
        if path.exists():
            return json.loads(path.read_text())
        patients = read_dataset(self.train_dir, progress=self.progress)
        if len({p.patient_id for p in patients}) != len(patients):
            raise ClaimError(f"{self.train_dir}: duplicate patient ids")
        pathological = sorted(p.patient_id for p in patients if p.has_infarct)
        normal = sorted(p.patient_id for p in patients if not p.has_infarct)
        k = self.config.folds
        _check_folds(k, pathological, normal, self.train_dir)
        assignment = assign_folds(pathological, normal, k, self.seed)
        return {"folds": k, "seed": self.seed, "stratified_by": "normal / pathological",
                "assignment": dict(sorted(assignment.items())), "pathological": pathological, "normal": normal}

    def _fold_data(self, fold: int, assignment: dict[str, int]) -> Path:
        data = fold_dir(self.out, fold) / "data"
        if (data / "train").is_dir() and (data / "test").is_dir():
            return data
        partial = data.with_name("data.partial")  # renamed when complete: a killed copy is redone, never used
        if partial.exists():
            shutil.rmtree(partial)
        patients = read_dataset(self.train_dir)
        write_subsets(patients, self.train_dir, partial, {
            "train": sorted(pid for pid, f in assignment.items() if f != fold),
            "test": sorted(pid for pid, f in assignment.items() if f == fold)})
        partial.rename(data)
        return data

    def realism(self) -> dict:
        """Realism per fold (each fold's synthetic arms and blob masks against its own held-out real scars), averaged
        over folds. Each fold's test runs ``realism_repeats // folds`` repeats (at least 1), so the whole costs about
        what one test of ``realism_repeats`` repeats would."""
        aha = self.config.aha()
        folds = []
        for fold in range(1, self.config.folds + 1):
            data = fold_dir(self.out, fold) / "data"
            training = {p.patient_id: p for p in read_dataset(data / "train")}
            folds.append(realism_fold(fold_dir(self.out, fold) / "study", data / "test", training.__getitem__,
                                      lambda p: geometry_for(p, aha), self.seed + fold))
        return study_realism(folds, aha=aha, c2st=self._c2st(), seed=self.seed, out_dir=self.out / "realism",
                             progress=self.progress)

    def _c2st(self) -> C2stConfig:
        c2st = self.config.c2st()
        return replace(c2st, repeats=max(1, c2st.repeats // self.config.folds))

    def run(self, threads: int | None, workers: int = 1) -> dict:
        from claim.experiment.study import run_experiment
        from claim.report.crossval import write_crossval_report

        state = self._start()
        assignment = {pid: int(f) for pid, f in json.loads((self.out / FOLDS_FILE).read_text())["assignment"].items()}
        for fold in range(1, self.config.folds + 1):
            name = f"fold{fold}"
            study = fold_dir(self.out, fold) / "study"
            if name in state["folds"] and (study / "metrics.json").exists():
                log.info("experiment: %s already complete, skipped", name)
                continue
            log.info("experiment: %s of %d ...", name, self.config.folds)
            start = time.perf_counter()
            data = self._fold_data(fold, assignment)
            run_experiment(data / "train", data / "test", study, self.config, seed=self.seed, device=self.device,
                           threads=threads, progress=self.progress, overwrite=self.overwrite, realism=False,
                           workers=workers)
            # The fold study's own stage total: it counts the stages of earlier sessions of a resumed fold too.
            fold_timing = json.loads((study / "metrics.json").read_text())["timing"]
            state["folds"][name] = {"seconds": fold_timing.get("total_s", round(time.perf_counter() - start, 3)),
                                    "peak_rss_mb": max(round(peak_rss_mb(), 1), fold_timing.get("peak_rss_mb", 0))}
            write_json(self.out / _STATE_FILE, state)
            finished = [f for f in range(1, self.config.folds + 1) if f"fold{f}" in state["folds"]]
            if len(finished) < self.config.folds:  # an interim record of the folds so far, replaced at the end
                interim = json_safe(pooled_metrics(self.out, self.config, self.seed, state, assignment, finished))
                write_json(self.out / "metrics.json", interim)
                write_crossval_report(self.out, interim)
        realism = self.out / "realism" / REALISM_FILE
        if not realism_is_current(realism, asdict(self._c2st())):
            log.info("experiment: realism (all folds) ...")
            start = time.perf_counter()
            self.realism()
            state["realism"] = {"seconds": round(time.perf_counter() - start, 3),
                                "peak_rss_mb": round(peak_rss_mb(), 1)}
            write_json(self.out / _STATE_FILE, state)
        metrics = json_safe(pooled_metrics(self.out, self.config, self.seed, state, assignment))
        write_json(self.out / "metrics.json", metrics)
        write_crossval_report(self.out, metrics)
        write_manifest(self.out, "experiment", config=self.config.to_dict(), inputs=fingerprint([self.train_dir]),
                       owns_folder=True)
        return metrics


def pooled_metrics(out_dir: Path, config: ExperimentConfig, seed: int, state: dict,
                   assignment: dict[str, int], folds: list[int] | None = None) -> dict:
    """``metrics.json`` of a cross-validated study: each fold's per-patient records pooled (a patient is tested in
    exactly one fold), per-arm summaries with the paired bootstrap resampling patients within folds, and each
    fold's own summary. ``folds``: only these finished folds (an interim record while the others run; its
    ``cross_validation.complete`` is false)."""
    k = config.folds
    chosen = list(range(1, k + 1)) if folds is None else sorted(folds)
    per_arm: dict[str, dict] = {arm: {} for arm in ARMS}
    fidelity: dict[str, dict] = {}
    per_fold, fold_of = [], {}
    for fold in chosen:
        study = fold_dir(out_dir, fold) / "study"
        evaluation = json.loads((study / "evaluation" / PER_PATIENT_FILE).read_text())
        fold_metrics = json.loads((study / "metrics.json").read_text())
        for arm in ARMS:
            for pid, record in evaluation["arms"][arm].items():
                if pid in fold_of and fold_of[pid] != fold:
                    raise ClaimError(f"patient {pid} was tested in folds {fold_of[pid]} and {fold}")
                if assignment.get(pid) != fold:
                    raise ClaimError(f"patient {pid} was tested in fold {fold} but belongs to fold "
                                     f"{assignment.get(pid)}")
                fold_of[pid] = fold
                per_arm[arm][pid] = record
        for arm, scores in evaluation["fidelity"].items():
            fidelity.setdefault(arm, {}).update({f"fold{fold}/{pid}": v for pid, v in scores.items()})
        per_fold.append({
            "fold": fold,
            "test_patients": sorted(evaluation["arms"]["real_only"]),
            "test_pathological": pathological_ids(evaluation["arms"]["real_only"]),
            "arms": {arm: {key: entry[key] for key in ARM_METRICS}
                     | {"ci95_minus_real_only": entry.get("ci95_minus_real_only", {})}
                     for arm, entry in fold_metrics["arms"].items()},
            "fidelity": fold_metrics["fidelity"],
            # A fold finished by an older version has none in its metrics.json: rebuilt from its checkpoints.
            "model_selection": fold_metrics.get("model_selection") or study_selection(study, config),
            "seconds": state["folds"].get(f"fold{fold}", {}).get("seconds"),
        })
    missing = sorted(pid for pid, f in assignment.items() if f in chosen and pid not in fold_of)
    if missing:
        raise ClaimError(f"patients {missing[:5]} were never tested")
    arms = summarise_arms(per_arm, ARMS, baseline="real_only", resamples=config.bootstrap, seed=seed,
                          strata=fold_of)
    return {
        "preset": config.name,
        "seed": seed,
        "cross_validation": {
            "folds": k,
            "folds_pooled": chosen,
            "complete": len(chosen) == k,
            "assignment": dict(sorted(assignment.items())),
            "bootstrap": "paired, patients resampled with replacement within each fold (each fold keeps its "
                         "number of patients in every resample)",
            "segmenter_seeds": config.segmenter_seeds,
            "ensemble": "softmax of the arm's segmenters averaged per test patient before the argmax",
        },
        "arms": arms,
        "per_fold": per_fold,
        "detectable": detectable_differences(arms),
        "fidelity": mean_fidelity(fidelity),
        "fidelity_per_patient": fidelity,
        "timing": timing_record({**state["folds"], **({"realism": state["realism"]} if "realism" in state else {})},
                                "folds_s"),
        **({"realism": json.loads(realism.read_text())} if (realism := out_dir / "realism" / REALISM_FILE).exists()
           else {}),
        "budget": config.budget(),
        "config": json.loads(json.dumps(config.to_dict(), default=list)),
        "test_pathological": pathological_ids(per_arm["real_only"]),
        "claim_version": __version__,
    }


def detectable_differences(arms: dict, z: float = 1.96, target: float = 0.04) -> dict[str, dict]:
    """Per arm and metric: the sd of the paired differences, the CI half-width it gives with n patients
    (z * sd / sqrt(n)), the bootstrap's half-width, and the patients a half-width of ``target`` would need."""
    out: dict[str, dict] = {}
    base = arms["real_only"]["per_patient"]
    for arm, entry in arms.items():
        if arm == "real_only":
            continue
        out[arm] = {}
        for key in ARM_METRICS:
            diffs = np.array([entry["per_patient"][pid][key] - base[pid][key] for pid in base
                              if np.isfinite(entry["per_patient"][pid][key]) and np.isfinite(base[pid][key])])
            ci = entry.get("ci95_minus_real_only", {}).get(key, {})
            sd = float(diffs.std(ddof=1)) if diffs.size > 1 else float("nan")
            out[arm][key] = {
                "n": int(diffs.size), "sd_of_differences": sd,
                "normal_half_width": z * sd / np.sqrt(diffs.size) if diffs.size > 1 else float("nan"),
                "bootstrap_half_width": (ci["high"] - ci["low"]) / 2 if ci.get("low") is not None else float("nan"),
                "patients_for_half_width_0.04": int(np.ceil((z * sd / target) ** 2)) if np.isfinite(sd) else None,
            }
    return out


def run_crossval(
    train_dir: Path,
    out_dir: Path,
    config: ExperimentConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    workers: int = 1,
) -> dict:
    """Run (or resume) the ``config.folds``-fold cross-validated study of ``train_dir``; returns ``metrics.json``.

    Finished folds are skipped and an unfinished fold resumes at its last finished stage; restarting with another
    config, seed or data is refused unless ``overwrite`` starts over. ``workers``: as
    :func:`claim.experiment.study.run_experiment` (the folds run one after another, their stages in the workers).
    """
    check_workers(workers)
    if config.folds < 2:
        raise ClaimError(f"cross-validation needs --folds >= 2, got {config.folds}")
    with torch_threads(threads):
        return _CrossValidation(train_dir, out_dir, config, seed, device, progress, overwrite).run(threads, workers)
