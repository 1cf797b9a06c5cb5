"""`claim demo`: run the pipeline on the built-in phantom and write a report."""

from __future__ import annotations

import argparse

from claim.demo import run_demo


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the pipeline on the built-in phantom (report.html, metrics.json)")
    parser.add_argument("-o", "--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.add_argument("--patients", type=int, default=8, help="phantom patients (default 8)")
    parser.add_argument("-s", "--seed", type=int, default=0, help="random seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    metrics = run_demo(args.out, patients=args.patients, seed=args.seed)
    aha = metrics["aha"]
    print(
        f"demo -> {args.out}/report.html  (segment agreement {100 * aha['agreement_known_orientation_mean']:.2f} % "
        f"with true orientation, {100 * aha['agreement_estimated_mean']:.2f} % estimated)"
    )
    return 0
