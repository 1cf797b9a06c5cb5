"""Pooling of ``benchmarks/joint_designs.py`` results over cross-validation folds (its ``--pool``).

``pairs`` are ``STUDY=OUT``: a fold's study folder and that script's output folder for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from claim.experiment.selection import nested_choice as nested_choice_of
from claim.experiment.selection import validation_of
from claim.experiment.stats import paired_bootstrap_ci
from claim.stages.evaluate import PER_PATIENT_FILE

RESULT = "result.json"
STUDY_ARMS = ("real_only", "lefusion", "smile", "claim")
SOURCE_ARM = {"real": "real_only", "smile": "smile", "claim": "claim"}  # ``source=`` -> the study arm it retrains


def pathological_ids(arms: dict) -> list[str]:
    """The pathological test patients of a study's per-patient record (the study's tables average over them)."""
    return sorted(pid for pid, r in arms["real_only"].items() if r["pathological"])


def pool(pairs: list[str], name: str, seed: int = 0) -> dict:
    """One design pooled over cross-validation folds: ``pairs`` are ``STUDY=OUT`` (a fold's study, this script's
    output folder for it)."""
    scores: dict[str, dict[str, list[float]]] = {}
    strata: dict[str, list[int]] = {}
    validation: dict[str, list[float]] = {}  # per fold: validation infarct Dice (what a choice may read)
    for k, pair in enumerate(pairs):
        study, out = (Path(part) for part in pair.split("=", 1))
        test_ids = json.loads((study / "prepare.json").read_text())["test"]
        runs = {arm: study / "runs" / arm / "segmenter.pt" for arm in STUDY_ARMS}
        runs[name] = out / name / "segmenter" / "segmenter.pt"
        for arm, checkpoint in runs.items():
            validation.setdefault(arm, []).append(validation_of(checkpoint, test_ids)["validation"]["infarct_dice"])
        theirs = json.loads((study / "evaluation" / PER_PATIENT_FILE).read_text())["arms"]
        ours = json.loads((out / name / "evaluation" / PER_PATIENT_FILE).read_text())["arms"][name]
        for metric in ("infarct_dice", "myocardium_dice"):
            ids = pathological_ids(theirs)
            table = scores.setdefault(metric, {})
            for arm, records in (*((a, theirs[a]) for a in ("real_only", "lefusion", "smile", "claim")), (name, ours)):
                table.setdefault(arm, []).extend(records[pid][metric] for pid in ids)
            strata.setdefault(metric, []).extend([k] * len(ids))
    result: dict = {"design": name, "folds": len(pairs), "bootstrap": "paired, patients resampled within folds",
                    "validation_infarct_dice": validation}
    for metric, table in scores.items():
        design = np.asarray(table[name])
        entry = {"n": int(design.size), "means": {arm: float(np.mean(v)) for arm, v in table.items()}}
        for arm in ("real_only", "smile", "claim"):
            ci = paired_bootstrap_ci(design, np.asarray(table[arm]), seed=seed, strata=strata[metric])
            entry[f"minus_{arm}"] = {"mean": ci["mean"], "ci95": [ci["low"], ci["high"]]}
        result[metric] = entry
    return result


def nested_choice(pairs: list[str], names: list[str], seed: int = 0) -> dict:
    """The choice made inside each fold: per fold, the candidate (each design, or the study's ``claim`` arm as run)
    with the best validation infarct Dice of that fold's own validation patients; the chosen candidates' test
    scores pooled over folds. This scores the selection procedure itself, with no fold's test patient in any
    choice (a choice on one fold's validation patients, reused on others, would use their test patients)."""
    folds, table, strata = [], {}, []
    for k, pair in enumerate(pairs):
        study, out = (Path(part) for part in pair.split("=", 1))
        test_ids = json.loads((study / "prepare.json").read_text())["test"]
        theirs = json.loads((study / "evaluation" / PER_PATIENT_FILE).read_text())["arms"]
        ids = pathological_ids(theirs)
        runs = {"claim": (study / "runs" / "claim" / "segmenter.pt", theirs["claim"])}
        runs |= {name: (out / name / "segmenter" / "segmenter.pt", json.loads(
            (out / name / "evaluation" / PER_PATIENT_FILE).read_text())["arms"][name]) for name in names}
        folds.append({name: {"validation": validation_of(checkpoint, test_ids)["validation"],
                             "test": {pid: records[pid]["infarct_dice"] for pid in ids}}
                      for name, (checkpoint, records) in runs.items()})
        for arm in STUDY_ARMS:
            table.setdefault(arm, []).extend(theirs[arm][pid]["infarct_dice"] for pid in ids)
        table.setdefault("patients", []).extend(ids)
        strata.extend([k] * len(ids))
    chosen, pooled = nested_choice_of(folds)
    table["chosen"] = [pooled[pid] for pid in table.pop("patients")]
    result: dict = {"candidates": ["claim", *names], "chosen_per_fold": chosen,
                    "infarct_dice": {arm: float(np.mean(v)) for arm, v in table.items()}, "n": len(strata)}
    for arm in ("real_only", "smile", "claim"):
        ci = paired_bootstrap_ci(np.asarray(table["chosen"]), np.asarray(table[arm]), seed=seed, strata=strata)
        result[f"chosen_minus_{arm}"] = {"mean": ci["mean"], "ci95": [ci["low"], ci["high"]]}
    return result


def seed_probe(result: dict) -> bool:
    """A design that probes the segmenter rather than the synthesis: trained on real slices only, with another
    segmenter seed or another segmenter recipe. Probes are not candidates for the ``claim`` arm."""
    return (result.get("source") == "real" or result.get("segmenter_seed") is not None
            or bool(result.get("segmenter_recipe")))


def _retrains_arm(result: dict) -> bool:
    """A design that trains a segmenter on a study arm's own data (``source``), unfiltered and not repainted
    (``synthetic_patients`` or its own generator paint a new set, which is a new arm)."""
    return bool(result.get("source") and not result.get("qc") and not result.get("synthetic_patients")
                and not result.get("generator_changes"))


def pooled_differences(pairs: list[str], names: list[str], seed: int = 0) -> dict:
    """Every pair among the study's arms and the designs, pooled over folds (infarct Dice, pathological test
    patients, the fold-stratified paired bootstrap); plus each study arm that designs retrained with other
    segmenter seeds (``source`` + ``segmenter_seed``, nothing else changed), averaged per patient over all its
    seeds, against the other such arms; and likewise, under ``recipe_seed_pairs``, each arm retrained with another
    segmenter recipe (``segmenter.KEY=VALUE``), averaged over the seeds it was retrained with under that recipe,
    against the other arms retrained with the same recipe."""
    columns: dict[str, list[float]] = {}
    strata: list[int] = []
    seeds: dict[str, list[str]] = {}  # study arm -> the designs retraining it with another segmenter seed
    recipes: dict[tuple[str, str], dict[int, str]] = {}  # (recipe, study arm) -> seed -> the design
    for k, pair in enumerate(pairs):
        study, out = (Path(part) for part in pair.split("=", 1))
        theirs = json.loads((study / "evaluation" / PER_PATIENT_FILE).read_text())["arms"]
        ids = pathological_ids(theirs)
        for arm in STUDY_ARMS:
            columns.setdefault(arm, []).extend(theirs[arm][pid]["infarct_dice"] for pid in ids)
        for name in names:
            result = json.loads((out / name / RESULT).read_text())
            if (k == 0 and _retrains_arm(result) and result.get("segmenter_seed") is not None
                    and int(result["segmenter_seed"]) != int(result["seed"]) and not result.get("segmenter_recipe")):
                seeds.setdefault(SOURCE_ARM[result["source"]], []).append(name)
            if k == 0 and _retrains_arm(result) and result.get("segmenter_recipe"):
                recipe = ",".join(f"{key}={value}" for key, value in sorted(result["segmenter_recipe"].items()))
                trained_seed = int(result["seed"] if result.get("segmenter_seed") is None else result["segmenter_seed"])
                # Two designs that differ only in how the study's seed was spelled trained the same segmenter.
                recipes.setdefault((recipe, SOURCE_ARM[result["source"]]), {}).setdefault(trained_seed, name)
            ours = json.loads((out / name / "evaluation" / PER_PATIENT_FILE).read_text())["arms"][name]
            columns.setdefault(name, []).extend(ours[pid]["infarct_dice"] for pid in ids)
        strata.extend([k] * len(ids))
    table = {key: np.asarray(values) for key, values in columns.items()}
    averaged = {f"{arm} ({1 + len(others)} seeds)": np.mean([table[arm], *(table[n] for n in others)], axis=0)
                for arm, others in seeds.items()}

    def differences(group: dict[str, np.ndarray]) -> list[dict]:
        keys = list(group)
        rows = []
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                ci = paired_bootstrap_ci(group[a], group[b], seed=seed, strata=strata)
                rows.append({"a": a, "b": b, "mean": ci["mean"], "ci95": [ci["low"], ci["high"]]})
        return rows

    by_recipe: dict[str, dict[str, np.ndarray]] = {}
    for (recipe, arm), members in recipes.items():
        label = f"{arm} [{recipe}] ({len(members)} seed{'s' if len(members) > 1 else ''})"
        by_recipe.setdefault(recipe, {})[label] = np.mean([table[n] for n in members.values()], axis=0)
    recipe_averaged = {key: v for group in by_recipe.values() for key, v in group.items()}
    return {"metric": "infarct_dice", "n": len(strata), "bootstrap": "paired, patients resampled within folds",
            "means": {key: float(v.mean()) for key, v in (table | averaged | recipe_averaged).items()},
            "pairs": differences(table), "two_seed_pairs": differences(averaged),
            "recipe_seed_pairs": [row for group in by_recipe.values() for row in differences(group)]}
