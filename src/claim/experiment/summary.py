"""``metrics.json`` of one study: per-arm Dice with paired intervals, fidelity, timing, selection and provenance."""

from __future__ import annotations

import json
from pathlib import Path

from claim import __version__
from claim.experiment.config import ARMS, ExperimentConfig
from claim.experiment.realism import REALISM_FILE
from claim.experiment.records import ORIENTATION_DIR, ORIENTATION_SUMMARY, smile_prior_provenance, timing_record
from claim.experiment.selection import study_selection
from claim.experiment.stats import mean_fidelity, pathological_ids, summarise_arms
from claim.stages.evaluate import PER_PATIENT_FILE

__all__ = ["study_metrics"]


def study_metrics(out: Path, config: ExperimentConfig, seed: int, roles: dict, state: dict) -> dict:
    """The record of the finished study in ``out`` (``state``: its ``state.json``; ``roles``: its ``prepare.json``)."""
    evaluation = json.loads((out / "evaluation" / PER_PATIENT_FILE).read_text())
    realism = out / "realism" / REALISM_FILE
    per_arm = evaluation["arms"]
    return {
        "preset": config.name,
        "seed": seed,
        "arms": summarise_arms(per_arm, ARMS, baseline="real_only", resamples=config.bootstrap, seed=seed),
        "fidelity": mean_fidelity(evaluation["fidelity"]),
        "fidelity_per_patient": evaluation["fidelity"],
        "timing": timing_record(state["stages"], "stages_s", wall_s=state.get("wall_s")),
        "budget": config.budget(),
        "config": json.loads(json.dumps(config.to_dict(), default=list)),
        "patients": {k: v for k, v in roles.items() if k in ("fit", "val", "canvases", "donors", "test")},
        "test_pathological": pathological_ids(per_arm["real_only"]),
        "model_selection": study_selection(out, config),
        "smile_prior": smile_prior_provenance(out / "masks" / "smile" / "smile_prior.json"),
        **({"realism": json.loads(realism.read_text())} if realism.exists() else {}),
        "bullseye": evaluation["bullseye"],
        "orientation": json.loads((out / ORIENTATION_DIR / ORIENTATION_SUMMARY).read_text()),
        "claim_version": __version__,
    }
