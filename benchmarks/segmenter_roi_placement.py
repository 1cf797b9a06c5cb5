"""Where the segmenter's ROI sits: each run's validation patients scored under the ROI-placement rules.

For every ``train-segmenter`` run, segments the run's own validation patients (``config.json``'s ``val_patients``,
read from ``--data``) with its best checkpoint three ways: the localiser's per-slice hearts pooled by their union
over the stack (the rule before consensus pooling), by slice consensus (``claim.segmentation.predict``), and by
consensus with the ROI re-centred on the heart the first window found (``refine_roi``). Prints the mean infarct
(patients with infarct) and myocardium Dice (all) per run and rule, and, for ``--compare A:B`` (comma-separated run
names on either side, paired by position, so list both sides in the same seed order, then by patient), the paired
difference with a patient-bootstrap 95 % CI. Saves JSON.

    python benchmarks/segmenter_roi_placement.py --data outputs/split/train --runs runs/a_s0 runs/a_s1 runs/b_s0 \
        runs/b_s1 --compare a_s0,a_s1:b_s0,b_s1 --out outputs/benchmarks/roi_placement.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import claim.segmentation.predict as predict  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.metrics import patient_metrics  # noqa: E402
from claim.experiment.stats import paired_bootstrap_ci  # noqa: E402
from claim.segmentation import load_segmenter, predict_patient  # noqa: E402

RULES = ("union", "consensus", "consensus+refine")


def union_heart(heart: np.ndarray) -> np.ndarray | None:
    """The rule consensus pooling replaced: the largest component of the union of the slices' hearts."""
    components, n = ndimage.label(np.asarray(heart, dtype=bool).any(axis=0))
    if n == 0:
        return None
    return components == 1 + int(np.argmax(np.bincount(components.ravel())[1:]))


def score_run(run: Path, patients: dict) -> dict[str, dict[str, list[float]]]:
    """``{rule: {patient_id: [infarct Dice or nan, myocardium Dice]}}`` on the run's validation patients."""
    model, config = load_segmenter(run / "segmenter.pt")
    ids = json.loads((run / "config.json").read_text())["val_patients"]
    missing = [i for i in ids if i not in patients]
    if missing:
        raise SystemExit(f"{run}: validation patients {missing} are not in --data")
    consensus = predict.consensus_heart
    out: dict[str, dict[str, list[float]]] = {}
    try:
        for rule in RULES:
            predict.consensus_heart = union_heart if rule == "union" else consensus
            rule_config = config.replace(refine_roi=rule.endswith("refine"))
            out[rule] = {}
            for pid in ids:
                p = patients[pid]
                m = patient_metrics(predict_patient(model, rule_config, p.images).label_maps, p.label_maps,
                                    p.spacing_mm, p.slice_thickness_mm)
                out[rule][pid] = [m["infarct_dice"] if p.has_infarct else float("nan"), m["myocardium_dice"]]
    finally:
        predict.consensus_heart = consensus
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder the runs trained and validated on")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="train-segmenter run folders")
    parser.add_argument("--compare", nargs="*", default=[], metavar="A:B",
                        help="paired differences: run names (comma-separated) on each side, paired by position, "
                             "then patient")
    parser.add_argument("--rule", choices=RULES, default="consensus", help="the rule the comparisons use")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "roi_placement.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    patients = {p.patient_id: p for p in read_dataset(args.data)}
    scores = {}
    for run in args.runs:
        scores[run.name] = score_run(run, patients)
        cells = []
        for rule in RULES:
            values = np.array(list(scores[run.name][rule].values()))
            cells.append(f"{rule} {np.nanmean(values[:, 0]):.3f} / {values[:, 1].mean():.3f}")
        print(f"{run.name} (infarct / myocardium Dice): " + " | ".join(cells), flush=True)
    results: dict = {"data": str(args.data), "scores": scores, "compare": {}}
    for spec in args.compare:
        left, right = (side.split(",") for side in spec.split(":"))
        # Runs pair up by position (A_s0 with B_s0, ...); a patient in two runs' validation sets counts once per run.
        a = {(k, pid): v for k, name in enumerate(left) for pid, v in scores[name][args.rule].items()}
        b = {(k, pid): v for k, name in enumerate(right) for pid, v in scores[name][args.rule].items()}
        ids = sorted(set(a) & set(b))
        entry = {}
        for k, metric in enumerate(("infarct_dice", "myocardium_dice")):
            pairs = [(a[i][k], b[i][k]) for i in ids if not (np.isnan(a[i][k]) or np.isnan(b[i][k]))]
            ci = paired_bootstrap_ci([x for x, _ in pairs], [y for _, y in pairs], resamples=args.bootstrap, seed=0)
            entry[metric] = {**ci, "n": len(pairs)}
        results["compare"][spec] = entry
        print(f"{spec} ({args.rule}): " + "  ".join(
            f"{m.split('_')[0]} {e['mean']:+.3f} [{e['low']:+.3f}, {e['high']:+.3f}] (n={e['n']})"
            for m, e in entry.items()))
    write_json(args.out, results)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
