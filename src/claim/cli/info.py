"""`claim info`: what a data folder holds."""

from __future__ import annotations

import argparse
import json

from claim.cli.common import add_label_mapping
from claim.data.summary import describe_dataset, format_description


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="patients, slices, label counts and scar burden of a data folder")
    parser.add_argument("--data", required=True, help="data folder (EMIDEC, nnU-Net raw or PNG layout)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_label_mapping(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    description = describe_dataset(args.data, label_mapping=args.label_mapping)
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    return 0
