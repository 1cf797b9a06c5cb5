"""`claim demo`: the whole chain on the built-in phantom (AHA, SMILE, generators, joint training, study)."""

from __future__ import annotations

import argparse

from claim.cli.common import SEED, THREADS, integer
from claim.demo import run_demo


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the pipeline on the built-in phantom (report.html, metrics.json)")
    parser.add_argument("-o", "--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.add_argument("--patients", type=integer(6), default=12, help="phantom patients (default 12, at least 6)")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="random seed")
    parser.add_argument("--threads", type=THREADS, default=None,
                        help="torch CPU threads for the study (default: torch's choice; 1 is faster on busy cores)")
    # Tests only: "smoke" runs the chain with toy models on a smaller phantom in about a minute.
    parser.add_argument("--preset", default="quick", choices=["quick", "smoke"], help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    metrics = run_demo(args.out, patients=args.patients, seed=args.seed, preset=args.preset, threads=args.threads)
    aha = metrics["aha"]
    arms = ", ".join(f"{arm} {entry['infarct_dice']:.3f}" for arm, entry in metrics["arms"].items())
    print(
        f"demo -> {args.out}/report.html  (segment agreement {100 * aha['agreement_known_orientation_mean']:.2f} % "
        f"with true orientation, {100 * aha['agreement_estimated_mean']:.2f} % estimated; infarct Dice {arms})"
    )
    return 0
