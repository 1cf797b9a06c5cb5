"""`claim masks`: SMILE scar/MVO masks on every patient's own myocardium, or `--fit-prior` from real scars."""

from __future__ import annotations

import argparse
from pathlib import Path

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.aha.segments import Territory
from claim.cli.common import SEED, add_label_mapping, add_orientation, add_overwrite, integer
from claim.errors import ClaimError
from claim.smile.adjacency import Dominance
from claim.smile.spec import Pattern, SmileConfig
from claim.stages.masks import MASKS_FILE, MasksConfig, run_fit_prior, run_masks

DEFAULT_PRIOR_FILE = "smile_prior.json"


def percent_range(text: str) -> tuple[float, float]:
    """``"LO-HI"`` or ``"V"`` in percent -> fractions ``(lo, hi)``."""
    parts = text.replace("%", "").split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not LO-HI in percent (e.g. 10-30)") from exc
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not 0.0 <= values[0] <= values[1] <= 100.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO-HI with 0 <= LO <= HI <= 100 (percent)")
    return values[0] / 100.0, values[1] / 100.0


def segment_list(text: str) -> tuple[int, ...]:
    try:
        segments = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of segments (e.g. 7,8,13)") from exc
    if not segments or any(not 1 <= s <= 17 for s in segments):
        raise argparse.ArgumentTypeError(f"{text!r}: segments must be AHA ids 1-17")
    return segments


def territory_choice(text: str) -> Territory | None:
    names = {t.value.lower(): t for t in Territory}
    if text.lower() == "any":
        return None
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LAD, RCA, LCx or any")
    return names[text.lower()]


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a probability lies in [0, 1]")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "masks",
        help="SMILE scar/MVO masks on each patient's own myocardium (or --fit-prior from real scars)",
        description="Draw clinically guided scar (3) and MVO (4) masks on every patient's myocardium; the new label "
        f"maps mirror the input layout and {MASKS_FILE} logs each mask's spec and seed. With --fit-prior DIR, fit "
        "the distributions of real scars instead and save them as a prior JSON for --prior.",
    )
    parser.add_argument("--data", help="labelled data folder (EMIDEC, nnU-Net raw or PNG layout)")
    parser.add_argument(
        "-o",
        "--out",
        help=f"output folder (masks), or the prior JSON file with --fit-prior (default {DEFAULT_PRIOR_FILE})",
    )
    parser.add_argument(
        "--fit-prior",
        metavar="DIR",
        help="fit a prior from the real scars of the labelled patients in DIR and save it (-o FILE)",
    )
    parser.add_argument(
        "--pattern",
        type=Pattern,
        choices=list(Pattern),
        default=Pattern.ISCHEMIC,
        help="scar pattern (mixed: one of the four clinical patterns per mask; blobs: the original "
        "SMILE's random blobs, for comparison). Default ischemic",
    )
    parser.add_argument(
        "--territory",
        type=territory_choice,
        default=None,
        metavar="LAD|RCA|LCx|any",
        help="coronary territory the scar stays in (default any: drawn from the prior; the scar stays inside it "
        "unless --spread-territory)",
    )
    parser.add_argument(
        "--segments",
        type=segment_list,
        default=None,
        metavar="S,S,...",
        help="AHA segments the scar stays in, e.g. 7,8,13",
    )
    parser.add_argument(
        "--burden",
        type=percent_range,
        default=None,
        metavar="LO-HI",
        help="scar share of the LV myocardium in percent, e.g. 10-30 (default: from the prior)",
    )
    parser.add_argument(
        "--transmurality",
        type=percent_range,
        default=None,
        metavar="LO-HI",
        help="peak transmural extent in percent of the wall (band width for mid-wall/patchy)",
    )
    parser.add_argument(
        "--mvo",
        type=probability,
        default=None,
        metavar="P",
        help="chance of an MVO core in a large, highly transmural ischemic scar (default: prior)",
    )
    parser.add_argument("--per-patient", type=integer(1, 1000), default=1, metavar="K",
                        help="masks per patient (default 1)")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="seed; mask k of patient i uses [seed, i, k]")
    parser.add_argument("--prior", default=None, metavar="FILE", help="prior JSON (default: the shipped EMIDEC prior)")
    parser.add_argument(
        "--dominance",
        type=Dominance,
        choices=list(Dominance),
        default=Dominance.RIGHT,
        help="coronary dominance (left: inferior segments 4, 10, 15 belong to the LCx)",
    )
    parser.add_argument(
        "--spread-territory",
        dest="strict_territory",
        action="store_false",
        help="let ischemic scars grow into contiguous segments beyond their territory as often as the prior's real "
        "scars do (with the estimated EMIDEC orientation, real scars often cross territory borders)",
    )
    add_orientation(parser)
    add_label_mapping(parser)
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    parse_orientation(args.orientation)  # fail before reading any data
    aha = AhaConfig(
        orientation=args.orientation, handedness=args.handedness, label_mapping=args.label_mapping, bullseye=False
    )
    if args.fit_prior:
        if args.data:
            raise ClaimError("--fit-prior DIR reads DIR; drop --data (or drop --fit-prior to draw masks)")
        out_file = Path(args.out or DEFAULT_PRIOR_FILE)
        prior = run_fit_prior(Path(args.fit_prior), out_file, aha=aha, dominance=args.dominance, progress=True,
                              overwrite=args.overwrite)
        territories = ", ".join(f"{t.value} {p:.0%}" for t, p in prior.territory_probabilities.items())
        print(f"prior from {prior.n_patients} scars ({territories}; MVO p={prior.mvo_probability:.2f}) -> {out_file}")
        return 0
    if not args.data or not args.out:
        raise ClaimError("masks need --data DIR and -o/--out OUT (or --fit-prior DIR to fit a prior)")
    smile = SmileConfig(
        pattern=args.pattern,
        territory=args.territory,
        segments=args.segments,
        burden=args.burden,
        transmurality=args.transmurality,
        mvo_probability=args.mvo,
        dominance=args.dominance,
        strict_territory=args.strict_territory,
    )
    config = MasksConfig(smile=smile, aha=aha, per_patient=args.per_patient, seed=args.seed, prior_path=args.prior)
    entries = run_masks(Path(args.data), Path(args.out), config, overwrite=args.overwrite)
    n_mvo = sum(e["mvo"] for e in entries)
    burdens = sorted(e["achieved_burden"] for e in entries)
    median = burdens[len(burdens) // 2] if burdens else 0.0
    print(
        f"{len(entries)} masks ({args.pattern.value}; median burden {median:.1%}, {n_mvo} with MVO) -> {args.out} "
        f"({MASKS_FILE}, bullseye_frequency.png)"
    )
    return 0
