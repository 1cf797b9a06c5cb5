"""Does a weight EMA make the standard segmenter better, and with which decay? One training run decides.

An EMA never changes training, so one fixed-seed run of the standard recipe can carry the online weights and
several EMAs side by side (the trainer's own EMA for the first decay, copies moved by the same rule for the others).
Every ``val_every`` steps each variant is scored on the run's validation patients (the split ``claim
train-segmenter`` makes with the same seed), and each keeps its best weights by the same selection key. The decay
is chosen on those validation patients; the test folder is only scored, once, at the end: best and final weights
of every variant, and each EMA minus the online weights with a patient-level paired bootstrap 95 % CI.

The run resumes from ``OUT/state.pt`` (written atomically at every validation) when started again with the same
arguments.

    python benchmarks/segmenter_ema.py --data outputs/split/train --test outputs/split/test \
        --out outputs/benchmarks/segmenter_ema --decays 0.99 0.995 0.999
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from segmenter_holdout import METRICS, patient_scores  # noqa: E402

from claim.data.layouts import read_dataset  # noqa: E402
from claim.experiment.stats import mean_sd, paired_bootstrap_ci  # noqa: E402
from claim.segmentation.config import segmenter_preset  # noqa: E402
from claim.segmentation.data import training_slices  # noqa: E402
from claim.segmentation.patients import split_patients  # noqa: E402
from claim.segmentation.train import selection_score  # noqa: E402
from claim.segmentation.trainer import SegmenterTrainer  # noqa: E402
from claim.training import ema_horizon, update_ema  # noqa: E402


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _plot(path: Path, log: list[dict], names: list[str]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, METRICS, strict=True):
        for name in names:
            ax.plot([e["step"] for e in log], [e["val"][name][metric] for e in log], marker="o", ms=2.5,
                    lw=1.2 if name == "online" else 0.9, label=name)
        ax.set(xlabel="step", title=f"validation {metric.replace('_', ' ')}", ylim=(0, 1))
        ax.legend(fontsize=6)
    fig.suptitle("standard segmenter, one run: online weights and weight EMAs on the validation patients", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="training folder (split into train/validation)")
    parser.add_argument("--test", type=Path, required=True, help="labelled test folder, scored once at the end")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--decays", type=float, nargs="+", default=[0.99, 0.995, 0.999])
    parser.add_argument("--steps", type=int, default=None, help="default: the standard preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    # One network: the EMAs are compared within one member's training.
    config = segmenter_preset("standard", ema_decay=args.decays[0], steps=args.steps, members=1)
    train_p, val_p = split_patients(read_dataset(args.data), config.val_fraction, args.seed)
    trainer = SegmenterTrainer(config, training_slices(train_p, config), val_p, seed=args.seed)
    extra = {d: copy.deepcopy(trainer.ema) for d in args.decays[1:]}
    names = ["online"] + [f"ema {d}" for d in args.decays]

    def networks() -> dict[str, torch.nn.Module]:
        return {"online": trainer.network, f"ema {args.decays[0]}": trainer.ema,
                **{f"ema {d}": net for d, net in extra.items()}}

    state_path = args.out / "state.pt"
    identity = {"decays": args.decays, "steps": config.steps, "seed": args.seed, "data": str(args.data),
                "val_patients": [p.patient_id for p in val_p]}
    log: list[dict] = []
    best: dict[str, dict] = {}
    seconds = 0.0
    if state_path.exists():
        saved = torch.load(state_path, weights_only=False)
        if saved["identity"] != identity:
            raise SystemExit(f"{state_path}: made with other arguments ({saved['identity']}); use another --out")
        trainer.load_state_dict(saved["trainer"])
        for d, net in extra.items():
            net.load_state_dict(saved["extra"][str(d)])
        log, best, seconds = saved["log"], saved["best"], saved["seconds"]

    def validate() -> None:
        entry = {"step": trainer.steps_done, "seconds": seconds, "val": {}}
        for name, net in networks().items():
            metrics = trainer.validate(net)
            entry["val"][name] = metrics
            if name not in best or selection_score(metrics) > selection_score(best[name]["metrics"]):
                best[name] = {"step": trainer.steps_done, "metrics": metrics,
                              "weights": copy.deepcopy(net.state_dict())}
        log.append(entry)
        _save(state_path, {"identity": identity, "trainer": trainer.state_dict(), "log": log, "best": best,
                           "seconds": seconds,
                           "extra": {str(d): net.state_dict() for d, net in extra.items()}})
        tqdm.write(f"step {trainer.steps_done}: " + "  ".join(
            f"{n} {entry['val'][n]['infarct_dice']:.3f}" for n in names))

    bar = tqdm(range(trainer.steps_done, config.steps), desc="train (online + EMAs)", initial=trainer.steps_done,
               total=config.steps)
    for step in bar:
        started = time.perf_counter()
        trainer.step(step)
        for d, net in extra.items():
            update_ema(net, trainer.network, trainer.steps_done, every=1, warmup=ema_horizon(d), decay=d)
        seconds += time.perf_counter() - started
        if trainer.steps_done % config.val_every == 0 or trainer.steps_done == config.steps:
            validate()
    if not log or log[-1]["step"] != trainer.steps_done:
        validate()

    test = read_dataset(args.test)
    scores: dict[str, dict] = {}
    for name, net in networks().items():
        scores[f"{name} final"] = patient_scores(net, config, test)
        frozen = copy.deepcopy(net)
        frozen.load_state_dict(best[name]["weights"])
        scores[f"{name} best"] = patient_scores(frozen, config, test)
    ids = sorted(p.patient_id for p in test)
    results = {"identity": identity, "train_seconds": seconds, "n_test": len(test),
               "validation": {n: {"best_step": best[n]["step"], "best": best[n]["metrics"],
                                  "last5_infarct": float(np.mean([e["val"][n]["infarct_dice"] for e in log[-5:]])),
                                  "final": log[-1]["val"][n]} for n in names},
               "test": {k: {m: mean_sd([v[m] for v in s.values()]) for m in METRICS} for k, s in scores.items()},
               "test_per_patient": scores, "pairs": {}}
    for name in names[1:]:
        for which in ("best", "final"):
            a, b = scores[f"{name} {which}"], scores[f"online {which}"]
            results["pairs"][f"{name} - online ({which})"] = {
                m: paired_bootstrap_ci([a[i][m] for i in ids], [b[i][m] for i in ids], resamples=args.bootstrap,
                                       seed=0) for m in METRICS}
    print(f"{config.steps} steps in {seconds / 60:.1f} min of training (validation excluded)")
    for n in names:
        v = results["validation"][n]
        print(f"validation {n}: best infarct {v['best']['infarct_dice']:.3f} (step {v['best_step']}), mean of the "
              f"last five {v['last5_infarct']:.3f}, final {v['final']['infarct_dice']:.3f}")
    for k, t in results["test"].items():
        print(f"test {k}: " + "  ".join(f"{m.split('_')[0]} {t[m][0]:.3f}" for m in METRICS))
    for k, pair in results["pairs"].items():
        print(f"{k}: " + "  ".join(f"{m.split('_')[0]} {pair[m]['mean']:+.3f} [{pair[m]['low']:+.3f}, "
                                   f"{pair[m]['high']:+.3f}]" for m in METRICS))
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    _plot(args.out / "curves.png", log, names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
