"""`claim aha`: AHA 17-segment maps, bull's-eyes, the orientation sheet and a summary for every patient."""

from __future__ import annotations

import argparse
from pathlib import Path

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.cli.common import add_label_mapping, add_orientation, add_overwrite
from claim.stages.aha import run_aha


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("aha", help="AHA segment maps, bull's-eye plots, orientation.png and summary.json")
    parser.add_argument("--data", required=True, help="data folder (EMIDEC, nnU-Net raw or PNG layout)")
    parser.add_argument("-o", "--out", required=True, help="output folder (mirrors the input layout)")
    parser.add_argument("--no-bullseye", action="store_true", help="skip the per-patient bull's-eye PNGs")
    parser.add_argument(
        "--write-orientation",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the angle origins used (CSV patient_id,insertion_deg,handedness): correct the wrong "
        "ones seen in OUT/orientation.png and pass the file back with --orientation file:PATH",
    )
    add_orientation(parser)
    add_label_mapping(parser)
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    parse_orientation(args.orientation)  # fail before reading any data
    config = AhaConfig(
        orientation=args.orientation,
        handedness=args.handedness,
        label_mapping=args.label_mapping,
        bullseye=not args.no_bullseye,
    )
    summary = run_aha(args.data, args.out, config, write_orientation=args.write_orientation,
                      overwrite=args.overwrite)
    methods = ", ".join(f"{m} {n}" for m, n in summary["orientation_methods"].items())
    low = summary["orientation_low_confidence"]
    outliers = (summary["orientation_cohort"] or {}).get("outliers", [])
    flagged = f"{len(low)} low confidence" + (f" ({len(outliers)} far from the others)" if outliers else "")
    print(
        f"{len(summary['patients'])} patients -> {args.out} (orientation: {methods}; {flagged}, "
        f"check {args.out}/orientation.png; median sector CV {summary['median_sector_cv']:.3f})"
    )
    if args.write_orientation is not None:
        print(f"orientation file -> {args.write_orientation}")
    return 0
