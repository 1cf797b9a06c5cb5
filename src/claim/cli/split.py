"""`claim split`: patient-level train/test split into two folders in the input's layout."""

from __future__ import annotations

import argparse

from claim.cli.common import SEED, add_overwrite, integer
from claim.experiment.split import split_dataset


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("split", help="split a data folder by patient into OUT/train and OUT/test")
    parser.add_argument("--data", required=True, help="data folder (any layout); only read")
    parser.add_argument("-o", "--out", required=True, help="output folder (train/, test/, split.json), outside --data")
    parser.add_argument("--test-pathological", type=integer(0), default=12,
                        help="pathological (infarct-labelled) patients in the test side (default 12)")
    parser.add_argument("--test-normal", type=integer(0), default=5,
                        help="normal patients in the test side (default 5)")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="random seed of the choice")
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = split_dataset(args.data, args.out, test_pathological=args.test_pathological,
                           test_normal=args.test_normal, seed=args.seed, overwrite=args.overwrite)
    print(f"split -> {result.train_dir} ({len(result.train_ids)} patients), {result.test_dir} "
          f"({len(result.test_ids)} patients)")
    return 0
