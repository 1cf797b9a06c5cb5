"""Held-out accuracy of trained segmenters, and whether two runs differ beyond noise.

Segments a labelled test folder with each run's best checkpoint (``RUN/segmenter.pt``) and scores it per patient
(EMIDEC convention: slices stacked per patient; infarct and MVO Dice over the patients whose labels hold them,
myocardium over all). Prints each run's mean Dice (with and without the anatomical post-processing), its training
time and steps, and for every pair of runs the paired difference with a patient-level bootstrap 95 % CI: a pair
whose CI covers 0 is "not decided". Saves JSON.

With ``--snapshots``, every weight snapshot a run kept (``--snapshot-every``, ``RUN/snapshots/step_*.pt``) is scored
on the test folder as well: the held-out learning curve of a run that had no validation patients (a refit with
``--val-fraction 0``). It is read after training and selects nothing; ``--plot`` draws it dashed.

    python benchmarks/segmenter_holdout.py --test outputs/split/test --runs fp32_s0 bf16_s0 bf16_s1 \
        --out outputs/benchmarks/segmenter_holdout.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.metrics import patient_metrics  # noqa: E402
from claim.experiment.stats import mean_sd, paired_bootstrap_ci  # noqa: E402
from claim.segmentation import load_segmenter, predict_patient  # noqa: E402
from claim.segmentation.run_files import list_snapshots  # noqa: E402

METRICS = ("infarct_dice", "myocardium_dice", "mvo_dice")


def patient_scores(model: torch.nn.Module, config, patients, post: bool = True) -> dict[str, dict[str, float]]:
    """Per-patient Dice of ``model`` (slices stacked): infarct and MVO only where the labels hold them."""
    out = {}
    for p in patients:
        pred = predict_patient(model, config, p.images, postprocess=post).label_maps
        m = patient_metrics(pred, p.label_maps, p.spacing_mm, p.slice_thickness_mm)
        out[p.patient_id] = {
            "infarct_dice": m["infarct_dice"] if p.has_infarct else float("nan"),
            "myocardium_dice": m["myocardium_dice"],
            "mvo_dice": m["mvo_dice"] if p.has_mvo else float("nan"),
        }
    return out


def _run_info(run: Path) -> dict:
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line]
    config = json.loads((run / "config.json").read_text())
    timed = [e for e in log if "seconds" in e]
    return {"steps": max((e["step"] for e in log), default=0),
            "minutes": timed[-1]["seconds"] / 60 if timed else float("nan"),
            "precision": config.get("precision"), "seed": config.get("seed"),
            # The run's own validation steps (an ensemble's root log adds a summary line per member, and one for
            # the ensemble at the end; a run without validation patients has none).
            "curve": [(e["step"], e["val"]) for e in log if e.get("val") and "member" not in e]}


def _plot_curves(path: Path, runs: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 3)
    for i, (name, entry) in enumerate(runs.items()):
        colour = f"C{i % 10}"
        for ax, metric in zip(axes, METRICS, strict=True):
            label = f"{name} (test {entry['postprocess'][metric][0]:.3f})"
            if entry["curve"]:
                ax.plot([s for s, _ in entry["curve"]], [v[metric] for _, v in entry["curve"]], marker="o", ms=3,
                        color=colour, label=label)
                label = None
            if entry.get("snapshot_curve"):
                ax.plot([e["step"] for e in entry["snapshot_curve"]], [e[metric] for e in entry["snapshot_curve"]],
                        ls="--", marker="s", ms=3, color=colour, label=label)
            elif label is not None:  # no curve to draw: the run still gets its line in the legend
                ax.plot([], [], color=colour, label=label)
    for ax, metric in zip(axes, METRICS, strict=True):
        ax.set(xlabel="step", title=metric.replace("_", " "), ylim=(0, 1))
        ax.legend(fontsize=6)
    snapshots = any(entry.get("snapshot_curve") for entry in runs.values())
    fig.suptitle("standard segmenter: validation patients during training (solid)"
                 + ("\nheld-out test patients on weight snapshots, scored after training, selecting nothing (dashed)"
                    if snapshots else "") + "; legend: held-out test mean of the final model", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, required=True, help="labelled test folder (any layout)")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="train-segmenter run folders")
    parser.add_argument("--checkpoint", default="segmenter.pt",
                        help="checkpoint in each run: segmenter.pt (best on validation) or last.pt (final weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "segmenter_holdout.json")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write the runs' validation curves (with --snapshots, their held-out ones too) as a PNG")
    parser.add_argument("--snapshots", action="store_true",
                        help="also score every RUN/snapshots/step_*.pt on the test folder (a learning curve; "
                             "selects nothing)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    patients = read_dataset(args.test)
    results: dict = {"test": str(args.test), "checkpoint": args.checkpoint, "n_patients": len(patients),
                     "n_pathological": sum(p.has_infarct for p in patients), "runs": {}}
    scores = {}
    for run in args.runs:
        info = _run_info(run)
        entry = {**info, "postprocess": {}, "raw": {}}
        for post, key in ((True, "postprocess"), (False, "raw")):
            per_patient = patient_scores(*load_segmenter(run / args.checkpoint), patients, post)
            if post:
                scores[run.name] = per_patient
            entry[key] = {m: mean_sd([v[m] for v in per_patient.values()]) for m in METRICS}
        entry["per_patient"] = scores[run.name]
        if args.snapshots:
            entry["snapshot_curve"] = []
            for step, path in list_snapshots(run).items():
                per_patient = patient_scores(*load_segmenter(path), patients)
                means = {m: mean_sd([v[m] for v in per_patient.values()])[0] for m in METRICS}
                entry["snapshot_curve"].append({"step": step, **means})
                print(f"  {run.name} step {step}: " + "  ".join(f"{m.split('_')[0]} {means[m]:.3f}" for m in METRICS))
        results["runs"][run.name] = entry
        shown = "  ".join(f"{m.split('_')[0]} {entry['postprocess'][m][0]:.3f} (raw {entry['raw'][m][0]:.3f})"
                          for m in METRICS)
        print(f"{run.name}: {info['precision']} seed {info['seed']}, {info['steps']} steps in "
              f"{info['minutes']:.1f} min | {shown}")
    results["pairs"] = {}
    for a, b in itertools.combinations(scores, 2):
        ids = sorted(scores[a])
        pair = {}
        for m in METRICS:
            ci = paired_bootstrap_ci([scores[a][i][m] for i in ids], [scores[b][i][m] for i in ids],
                                     resamples=args.bootstrap, seed=0)
            pair[m] = ci
        results["pairs"][f"{a} - {b}"] = pair
        print(f"{a} - {b}: " + "  ".join(f"{m.split('_')[0]} {pair[m]['mean']:+.3f} "
                                         f"[{pair[m]['low']:+.3f}, {pair[m]['high']:+.3f}]" for m in METRICS))
    if args.plot:
        _plot_curves(args.plot, results["runs"])
    write_json(args.out, results)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
