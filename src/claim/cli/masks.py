"""`claim masks`: SMILE scar/MVO masks on every patient's own myocardium, or `--fit-prior` from real scars."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.aha.segments import Handedness, Territory
from claim.cli.common import (
    SEED,
    add_config_file,
    add_label_mapping,
    add_orientation,
    add_overwrite,
    build_config,
    integer,
    saved_run,
)
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
        help="scar pattern (mixed: one of the four clinical patterns per mask; blobs: the original "
        "SMILE's random blobs, for comparison). Default ischemic",
    )
    parser.add_argument(
        "--territory",
        type=territory_choice,
        metavar="LAD|RCA|LCx|any",
        help="coronary territory the scar stays in (default any: drawn from the prior, and the scar may grow "
        "beyond it unless --strict-territory)",
    )
    parser.add_argument(
        "--segments",
        type=segment_list,
        metavar="S,S,...",
        help="AHA segments the scar stays in, e.g. 7,8,13",
    )
    parser.add_argument(
        "--burden",
        type=percent_range,
        metavar="LO-HI",
        help="scar share of the LV myocardium in percent, e.g. 10-30 (default: from the prior)",
    )
    parser.add_argument(
        "--transmurality",
        type=percent_range,
        metavar="LO-HI",
        help="peak transmural extent in percent of the wall (band width for mid-wall/patchy)",
    )
    parser.add_argument(
        "--mvo",
        type=probability,
        metavar="P",
        help="chance of an MVO core in a large, highly transmural ischemic scar (default: prior)",
    )
    parser.add_argument("--per-patient", type=integer(1, 1000), metavar="K",
                        help="masks per patient (default 1)")
    parser.add_argument("-s", "--seed", type=SEED, help="seed; mask k of patient i uses [seed, i, k]")
    parser.add_argument("--prior", metavar="FILE", help="prior JSON (default: the shipped EMIDEC prior)")
    parser.add_argument(
        "--dominance",
        type=Dominance,
        choices=list(Dominance),
        help="coronary dominance (left: inferior segments 4, 10, 15 belong to the LCx)",
    )
    spread = parser.add_mutually_exclusive_group()
    spread.add_argument(
        "--spread-territory",
        dest="strict_territory",
        action="store_false",
        help="let ischemic scars whose territory is drawn from the prior grow into contiguous segments beyond it as "
        "often as the prior's real scars do (the default; real EMIDEC scars often cross territory borders)",
    )
    spread.add_argument(
        "--strict-territory",
        dest="strict_territory",
        action="store_true",
        help="keep ischemic scars whose territory is drawn from the prior inside its textbook segments",
    )
    add_orientation(parser)
    add_label_mapping(parser)
    add_overwrite(parser)
    add_config_file(parser)
    # A flag left out takes the -c file's value, else the config dataclasses' default: so nothing is set here.
    for action in parser._actions:
        if action.dest in _SMILE_FLAGS or action.dest in _AHA_FLAGS or action.dest in _MASKS_FLAGS:
            action.default = argparse.SUPPRESS
    parser.set_defaults(run=run)


# flag (argparse dest) -> field of SmileConfig / AhaConfig / MasksConfig
_SMILE_FLAGS = {"pattern": "pattern", "territory": "territory", "segments": "segments", "burden": "burden",
                "transmurality": "transmurality", "mvo": "mvo_probability", "dominance": "dominance",
                "strict_territory": "strict_territory"}
_AHA_FLAGS = {"orientation": "orientation", "handedness": "handedness", "label_mapping": "label_mapping"}
_MASKS_FLAGS = {"per_patient": "per_patient", "seed": "seed", "prior": "prior_path"}


def _resolve(args: argparse.Namespace, saved: dict) -> MasksConfig:
    """The masks config: explicit flags over the ``-c`` file's values (``saved``) over the dataclasses' defaults."""
    given = vars(args)

    def pick(flags: dict[str, str]) -> dict:
        return {field: given[flag] for flag, field in flags.items() if flag in given}

    def make() -> MasksConfig:
        smile = SmileConfig.from_json(saved["smile"]) if saved else SmileConfig()
        aha = AhaConfig(bullseye=False)
        masks = MasksConfig()
        if saved:
            mapping = saved.get("label_mapping")
            aha = replace(aha, orientation=saved.get("orientation", aha.orientation),
                          handedness=Handedness(saved.get("handedness", aha.handedness)),
                          label_mapping={int(k): int(v) for k, v in mapping.items()} if mapping else None)
            masks = replace(masks, per_patient=int(saved.get("per_patient", masks.per_patient)),
                            seed=int(saved.get("seed", masks.seed)),
                            prior_path=(saved.get("prior") or {}).get("path"))
        return replace(masks, smile=replace(smile, **pick(_SMILE_FLAGS)), aha=replace(aha, **pick(_AHA_FLAGS)),
                       **pick(_MASKS_FLAGS))

    return build_config(str(args.config) if saved else "masks", make)


def run(args: argparse.Namespace) -> int:
    saved = saved_run(args, "masks")
    config = _resolve(args, saved)
    parse_orientation(config.aha.orientation)  # fail before reading any data
    data = args.data or (saved.get("data") if not args.fit_prior else None)
    if args.fit_prior:
        if args.data:
            raise ClaimError("--fit-prior DIR reads DIR; drop --data (or drop --fit-prior to draw masks)")
        out_file = Path(args.out or DEFAULT_PRIOR_FILE)
        prior = run_fit_prior(Path(args.fit_prior), out_file, aha=config.aha, dominance=config.smile.dominance,
                              progress=True, overwrite=args.overwrite)
        territories = ", ".join(f"{t.value} {p:.0%}" for t, p in prior.territory_probabilities.items())
        print(f"prior from {prior.n_patients} scars ({territories}; MVO p={prior.mvo_probability:.2f}) -> {out_file}")
        return 0
    if not data or not args.out:
        raise ClaimError("masks need --data DIR and -o/--out OUT (or --fit-prior DIR to fit a prior)")
    entries = run_masks(Path(data), Path(args.out), config, overwrite=args.overwrite)
    n_mvo = sum(e["mvo"] for e in entries)
    burdens = sorted(e["achieved_burden"] for e in entries)
    median = burdens[len(burdens) // 2] if burdens else 0.0
    print(
        f"{len(entries)} masks ({config.smile.pattern.value}; median burden {median:.1%}, {n_mvo} with MVO) -> "
        f"{args.out} ({MASKS_FILE}, bullseye_frequency.png)"
    )
    return 0
