"""Argument types shared by several subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from claim.aha.segments import Handedness
from claim.config import read_run_config
from claim.errors import ClaimError
from claim.labels import parse_label_mapping

T = TypeVar("T")


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within ``[lo, hi]`` (each bound optional); the error names the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range ({_describe(lo, hi)})")
        return value

    parse.__name__ = "integer"
    return parse


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number (never NaN or inf) within the bounds (open where asked)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range ({_describe(lo, hi, lo_open, hi_open)})")
        return value

    parse.__name__ = "number"
    return parse


def _describe(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return "must be " + " and ".join(parts)


SEED = integer(0, 2**32 - 1)
COUNT = integer(1, 10**9)  # steps between events, counts: at least one
STEPS = integer(0, 10**9)  # total steps (0: only evaluate or write the initial state)
BATCH = integer(1, 4096)  # slices per step: beyond this no machine holds the batch
THREADS = integer(1, 1024)  # torch refuses thread counts beyond a C int


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this command's own earlier output in --out (never files claim did not write)")


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


def add_config_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="reproduce a run from the config.json it wrote (flags given explicitly override its fields)",
    )


def add_run_flags(parser: argparse.ArgumentParser, resume_help: str) -> None:
    """Seed, device and resume: the flags every trainer takes (None defaults, so ``-c`` files fill them)."""
    parser.add_argument("-s", "--seed", type=SEED, default=None, help="random seed (same seed, same run; default 0)")
    parser.add_argument("--device", default=None, help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--resume", action="store_true", help=resume_help)
    add_overwrite(parser)


def saved_run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The ``config.json`` named by ``-c/--config`` (empty without it); it holds a whole config, so no --preset."""
    if not getattr(args, "config", None):
        return {}
    if getattr(args, "preset", None):
        raise ClaimError(f"-c/--config holds the run's whole config; drop --preset (or -c) for {command}")
    return read_run_config(args.config, command)


def explicit(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The flags among ``names`` given on the command line (not None), as config field changes."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def first_given(*values: Any) -> Any:
    """The first value that is not None (explicit flag, then the saved run, then the default)."""
    return next((v for v in values if v is not None), None)


def build_config(what: str, make: Callable[[], T]) -> T:
    """``make()``, with a bad value (``ValueError``) reported as one line naming ``what``."""
    try:
        return make()
    except (ValueError, TypeError) as exc:
        raise ClaimError(f"{what}: {exc}") from exc
