"""`claim experiment`: the four-arm study (real only, LeFusion, SMILE, claim) -> metrics.json + report.html."""

from __future__ import annotations

import argparse

from claim.errors import ClaimError
from claim.experiment.config import experiment_preset
from claim.experiment.study import run_experiment


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment", help="run the study: segmenters trained with each kind of synthetic data, tested on held-out data"
    )
    parser.add_argument("--train-data", required=True, help="training folder (any layout); validation comes from it")
    parser.add_argument("--test-data", required=True, help="held-out test folder: used only for the final metrics")
    parser.add_argument("-o", "--out", required=True, help="study folder (resumable: finished stages are skipped)")
    parser.add_argument("--preset", default="quick", metavar="quick|standard",
                        help="quick (phantom, <= 10 min on 2 cores) | standard (EMIDEC, <= 90 min); default quick")
    parser.add_argument("-s", "--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is faster on busy shared cores)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = experiment_preset(args.preset)
    except ValueError as exc:
        raise ClaimError(str(exc)) from exc
    metrics = run_experiment(args.train_data, args.test_data, args.out, config,
                             seed=args.seed, device=args.device, threads=args.threads)
    arms = ", ".join(f"{arm} {entry['infarct_dice']:.3f}" for arm, entry in metrics["arms"].items())
    print(f"experiment -> {args.out}/report.html  (infarct Dice: {arms})")
    return 0
