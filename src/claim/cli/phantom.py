"""`claim phantom`: procedural LGE patients with exact labels, in EMIDEC layout."""

from __future__ import annotations

import argparse

from claim.cli.common import SEED, add_overwrite, integer, number
from claim.phantom import PhantomConfig, write_phantom_cohort


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("phantom", help="write procedural LGE phantom patients (EMIDEC layout)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--patients", type=integer(1, 10000), default=10, help="number of patients (default 10)")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="random seed (same seed, same files)")
    parser.add_argument(
        "--pathological-fraction", type=number(0.0, 1.0), default=0.5, help="share of patients with scar (default 0.5)"
    )
    parser.add_argument("--rv-label", action="store_true", help="keep the RV blood pool as its own label (5)")
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = PhantomConfig(pathological_fraction=args.pathological_fraction, rv_label=args.rv_label)
    cases = write_phantom_cohort(args.out, args.patients, args.seed, config, overwrite=args.overwrite)
    n_path = sum(case.truth.pathological for case in cases)
    print(f"{len(cases)} phantom patients ({n_path} pathological) -> {args.out}")
    return 0
