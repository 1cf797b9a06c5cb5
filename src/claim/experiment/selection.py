"""Model selection on validation patients, recorded so a reader can check it.

Two choices are made for a study. Each segmenter keeps the checkpoint with the best validation infarct Dice
(``claim.segmentation.train.selection_score``) on the study's validation patients, which come from its training
data. The ``standard`` preset's joint-loss settings for the ``claim`` arm were chosen among screened designs
(``benchmarks/joint_designs.py``) by the same key. ``study_selection`` puts each segmenter's chosen step and
validation scores in ``metrics.json`` and refuses a run whose validation patients include a test patient.
``choose_on_validation`` is the design choice itself: it never sees a test score.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from claim.errors import ClaimError
from claim.experiment.config import ARMS, ExperimentConfig, experiment_preset, segmenter_run_names
from claim.joint.config import JointConfig
from claim.segmentation.checkpoint import read_checkpoint
from claim.segmentation.train import selection_score

__all__ = ["JOINT_HYPERPARAMETERS", "validation_of", "selection_record", "study_selection", "choose_on_validation",
           "nested_choice"]

# The joint-loss settings the design screens varied (the others, e.g. sampler_steps or buffer_size, were held at
# the preset's values).
JOINT_HYPERPARAMETERS = ("lambda_consistency", "lambda_histogram", "histogram_distance", "feedback_start",
                         "consistency_bound", "consistency_border_px", "lambda_feature", "t_max", "segmenter_warmup",
                         "generator_warmup", "refresh_every", "synthetic_per_batch")
_SCREENED = ("the standard preset's: screened with benchmarks/joint_designs.py on the validation patients of a "
             "cross-validated standard study (README: joint training that helps; the real-scar bound on fold 1, "
             "reading G's painting instead of the canvas on all 3 folds); those validation patients are test "
             "patients of that study's other folds, so the choices were not nested within folds")
_NOT_SCREENED = "set by this study's config, not chosen by a screen"


def validation_of(checkpoint: Path, test_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The validation record a segmenter checkpoint was selected by: its step, validation metrics and patients.

    Raises ``ClaimError`` when a validation patient is one of ``test_ids``: such a selection read a test patient.
    """
    payload = read_checkpoint(Path(checkpoint))
    val_patients = sorted(payload.get("val_patients", []))
    leaked = sorted(set(val_patients) & set(test_ids))
    if leaked:
        raise ClaimError(f"{checkpoint}: model selection read test patients {leaked}")
    best = payload.get("best") or {}
    return {"step": int(best.get("step", payload["step"])), "validation": dict(best.get("metrics", {})),
            "val_patients": val_patients}


def selection_record(checkpoints: Mapping[str, Path], test_ids: Iterable[str], joint: JointConfig,
                     joint_selection: str = _NOT_SCREENED) -> dict:
    """``metrics.json``'s ``model_selection``: per segmenter run its selected step and validation scores, the
    validation patients (shared by every run, disjoint from the test patients), and the joint settings in use."""
    test_ids = set(test_ids)
    runs = {name: validation_of(path, test_ids) for name, path in checkpoints.items()}
    patients = {tuple(r.pop("val_patients")) for r in runs.values()}
    if len(patients) > 1:
        raise ClaimError(f"segmenters of one study validated on different patients: {sorted(patients)}")
    return {
        "rule": "best validation infarct Dice (ties: myocardium Dice), validation patients from the training data",
        "validation_patients": list(next(iter(patients), ())),
        "segmenters": runs,
        "joint": {key: getattr(joint, key) for key in JOINT_HYPERPARAMETERS},
        "joint_selection": joint_selection,
    }


def study_selection(study_dir: Path, config: ExperimentConfig) -> dict:
    """``selection_record`` of a study folder's segmenters (every arm, every seed) against its test patients."""
    study_dir = Path(study_dir)
    test_ids = json.loads((study_dir / "prepare.json").read_text())["test"]
    runs = {name: study_dir / "runs" / name / "segmenter.pt"
            for arm in ARMS for name in segmenter_run_names(arm, config.segmenter_seeds)}
    screened = config.joint() == experiment_preset("standard").joint()
    return selection_record(runs, test_ids, config.joint(), _SCREENED if screened else _NOT_SCREENED)


def choose_on_validation(candidates: Mapping[str, Mapping[str, Any]]) -> str:
    """The candidate whose ``validation`` metrics rank best by the segmenter's own selection key.

    Each candidate is a record with ``validation`` (metrics on validation patients); any other entry (test
    scores among them) is ignored, so the choice cannot depend on a test patient.
    """
    if not candidates:
        raise ClaimError("no candidates to choose from")
    missing = sorted(name for name, record in candidates.items() if "validation" not in record)
    if missing:
        raise ClaimError(f"candidates {missing} have no validation record")
    return max(candidates, key=lambda name: selection_score(candidates[name]["validation"]))


def nested_choice(folds: list[Mapping[str, Mapping[str, Any]]]) -> tuple[list[str], dict[str, float]]:
    """A choice made inside each cross-validation fold, scored on that fold's test patients.

    ``folds``: per fold, candidate -> ``{"validation": metrics on the fold's validation patients, "test": patient
    id -> score}``. Per fold the candidate is chosen by ``choose_on_validation`` (it reads no test score); returns
    the names chosen and the chosen candidates' test scores, pooled (a patient id appears in one fold only). A
    choice made on one fold's validation patients and reused on other folds would read those folds' test
    patients: that is why each fold chooses for itself.
    """
    chosen: list[str] = []
    pooled: dict[str, float] = {}
    for fold in folds:
        pick = choose_on_validation({name: {"validation": c["validation"]} for name, c in fold.items()})
        chosen.append(pick)
        overlap = set(pooled) & set(fold[pick]["test"])
        if overlap:
            raise ClaimError(f"patients {sorted(overlap)[:5]} are tested in more than one fold")
        pooled.update(fold[pick]["test"])
    return chosen, pooled
