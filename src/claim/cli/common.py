"""Argument types shared by several subcommands."""

from __future__ import annotations

import argparse

from claim.aha.segments import Handedness
from claim.labels import parse_label_mapping


def label_mapping_type(text: str) -> dict[int, int]:
    try:
        return parse_label_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_label_mapping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-mapping",
        type=label_mapping_type,
        default=None,
        metavar="SRC:DST,...",
        help="map another label encoding to EMIDEC ids, e.g. '1:rv,2:myocardium,3:cavity' (RV kept for orientation)",
    )


def add_orientation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orientation",
        default="auto",
        metavar="auto|rv|image|angle:DEG|file:PATH",
        help="AHA angle origin: RV label if present else image estimate (auto), or the screen angle DEG "
        "(counterclockwise from the image's +column axis, rows pointing down) of the anterior RV insertion point, "
        "or per-patient angles from a CSV (patient_id,insertion_deg[,handedness]; patients missing from it use "
        "the estimate; `claim aha --write-orientation PATH` writes one to edit)",
    )
    parser.add_argument(
        "--handedness",
        type=Handedness,
        choices=list(Handedness),
        default=Handedness.CCW,
        help="direction on screen in which segments 1->6 run (ccw = standard view from the apex)",
    )
