"""`claim aha`: AHA 17-segment maps, bull's-eyes and a summary for every patient."""

from __future__ import annotations

import argparse

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.cli.common import add_label_mapping, add_orientation
from claim.stages.aha import run_aha


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("aha", help="AHA segment maps, bull's-eye plots and summary.json")
    parser.add_argument("--data", required=True, help="data folder (EMIDEC, nnU-Net raw or PNG layout)")
    parser.add_argument("-o", "--out", required=True, help="output folder (mirrors the input layout)")
    parser.add_argument("--no-bullseye", action="store_true", help="skip the per-patient bull's-eye PNGs")
    add_orientation(parser)
    add_label_mapping(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    parse_orientation(args.orientation)  # fail before reading any data
    config = AhaConfig(
        orientation=args.orientation,
        handedness=args.handedness,
        label_mapping=args.label_mapping,
        bullseye=not args.no_bullseye,
    )
    summary = run_aha(args.data, args.out, config)
    methods = sorted({p["orientation"]["method"] for p in summary["patients"]})
    print(
        f"{len(summary['patients'])} patients -> {args.out} (orientation: {', '.join(methods)}; "
        f"median sector CV {summary['median_sector_cv']:.3f})"
    )
    return 0
