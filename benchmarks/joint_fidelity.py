"""Mask fidelity of jointly trained generators as the consistency weight changes, on a finished study.

Reuses a `claim experiment` folder: its training patients, its SMILE masks, its `generator_claim` run (the
starting point of joint training) and its `real_only` segmenter as the judge. For each lambda it re-runs the
joint stage with the study's joint config (only `lambda_consistency` changed), paints the study's SMILE masks
with the resulting generator and reports the judge's mask fidelity (Dice between the conditioning scar and the
scar the judge finds). No test patient is read: this is a test-free way to see whether the consistency term
does what it is meant to.

    python benchmarks/joint_fidelity.py --study outputs/study --lambdas 0,0.1,1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from claim.data.layouts import read_dataset
from claim.evaluation.metrics import dice
from claim.experiment.config import experiment_preset
from claim.joint import train_joint
from claim.labels import infarct_mask
from claim.segmentation import load_segmenter, predict_label_maps
from claim.smile.prior import load_prior
from claim.stages.generate import generate_scars


def judge_fidelity(judge_path: Path, synthetic_dir: Path) -> list[float]:
    """One Dice per synthetic patient: conditioning scar vs the scar the judge segments."""
    model, config = load_segmenter(judge_path, "cpu")
    scores = []
    for patient in read_dataset(synthetic_dir, progress=False):
        pred = predict_label_maps(model, config, patient.images)
        scores.append(dice(infarct_mask(pred), infarct_mask(patient.label_maps)))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, help="finished `claim experiment` output folder")
    parser.add_argument("--lambdas", default="0,0.1,1", help="comma-separated consistency weights")
    parser.add_argument("--out", default="outputs/benchmarks/joint_fidelity", help="work and results folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    study, out = Path(args.study), Path(args.out)
    state = json.loads((study / "state.json").read_text())
    roles = json.loads((study / "prepare.json").read_text())
    identity = state["identity"]
    base = experiment_preset(identity["config"]["name"])
    seed = int(identity["seed"])
    prior_path = study / "masks" / "smile" / "smile_prior.json"  # absent in studies run with the shipped prior
    prior = load_prior(prior_path) if prior_path.exists() else None
    results: dict = {"study": str(study), "seed": seed, "lambdas": {},
                     "smile_prior": str(prior_path) if prior else "shipped"}
    for text in args.lambdas.split(","):
        lam = float(text)
        run = out / f"lambda_{lam:g}"
        t0 = time.perf_counter()
        train_joint(Path(identity["train_dir"]), run / "joint", joint=replace(base.joint(), lambda_consistency=lam),
                    segmenter=base.joint_segmenter(),
                    init_generator=study / "runs" / "generator_claim" / "generator.pt", seed=seed,
                    train_patients=roles["fit"], progress=True, resume=(run / "joint").exists(), smile_prior=prior)
        generate_scars(run / "joint" / "generator.pt", study / "data" / "fit", study / "masks" / "smile",
                       run / "synthetic", sampler=base.claim_sampler, seed=seed, previews=False)
        scores = judge_fidelity(study / "runs" / "real_only" / "segmenter.pt", run / "synthetic")
        log = [json.loads(line) for line in (run / "joint" / "train_log.jsonl").read_text().splitlines() if line]
        consistency = [r["consistency_loss"] for r in log if "consistency_loss" in r]
        results["lambdas"][f"{lam:g}"] = {
            "fidelity_mean": float(np.mean(scores)), "fidelity_sd": float(np.std(scores)),
            "consistency_first50": float(np.mean(consistency[:50])) if consistency else None,
            "consistency_last50": float(np.mean(consistency[-50:])) if consistency else None,
            "seconds": time.perf_counter() - t0,
        }
    smile = judge_fidelity(study / "runs" / "real_only" / "segmenter.pt", study / "synthetic" / "smile")
    results["no_joint_training"] = {"fidelity_mean": float(np.mean(smile)), "fidelity_sd": float(np.std(smile))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "joint_fidelity.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'lambda':<10}{'fidelity':>16}{'consistency first/last 50':>28}")
    print(f"{'no joint':<10}{results['no_joint_training']['fidelity_mean']:>16.3f}")
    for lam, r in results["lambdas"].items():
        first, last = r["consistency_first50"], r["consistency_last50"]
        tail = f"{first:.3f} / {last:.3f}" if first is not None else "-"
        print(f"{lam:<10}{r['fidelity_mean']:>10.3f} ± {r['fidelity_sd']:.3f}{tail:>28}")
    print(f"-> {out / 'joint_fidelity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
