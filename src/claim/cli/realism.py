"""`claim realism`: how far synthetic scar lies from real scar (two-sample tests, intensity statistics,
frequency-map Dice), each beside its real-against-real reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from claim.aha.config import AhaConfig
from claim.aha.orientation import parse_orientation
from claim.cli.common import SEED, add_orientation, add_overwrite, integer
from claim.data.io import atomic_path, write_json
from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.evaluation.c2st import C2stConfig, without_draws
from claim.experiment.records import json_safe
from claim.output import check_new_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "realism", help="realism of synthetic scar against real scar: classifier two-sample tests (AUC, 0.5 = "
                        "indistinguishable), intensity statistics, bull's-eye frequency Dice")
    parser.add_argument("--real", required=True, help="real labelled patients (its pathological ones are the "
                                                      "reference)")
    parser.add_argument("--synthetic", required=True, action="append", metavar="DIR",
                        help="synthetic patients (`claim generate` / `claim augment` output); repeat for several")
    parser.add_argument("--json", action="store_true", help="print the full record as JSON")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the record to FILE")
    parser.add_argument("--gallery", type=Path, default=None, metavar="PNG",
                        help="also write a gallery: a row of scar-centred crops per source, real first, at the same "
                             "scale and grey window")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="random seed of splits and classifiers")
    parser.add_argument("--repeats", type=integer(1, 1000), default=C2stConfig.repeats,
                        help=f"two-sample test repeats (default {C2stConfig.repeats})")
    parser.add_argument("--steps", type=integer(1, 10**6), default=C2stConfig.steps,
                        help=f"training steps of each two-sample classifier (default {C2stConfig.steps})")
    add_orientation(parser)
    add_overwrite(parser)
    parser.set_defaults(run=run)


def _cell(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def format_table(record: dict) -> str:
    """Plain text: one row per source, then real against real."""
    lines = [f"real reference: {record['real']['patients']} pathological patients, "
             f"{record['real']['slices_with_scar']} slices with scar"]
    header = ["source", "patients", "image AUC [95% CI]", "mask AUC [95% CI]", "W1 scar contrast",
              "W1 texture sd", "frequency Dice"]
    rows = []

    def auc(entry: dict | None) -> str:
        if not entry:
            return "-"
        return f"{_cell(entry['auc'])} [{_cell(entry['low'])}, {_cell(entry['high'])}]"

    for name, entry in record["sources"].items():
        intensity = entry.get("intensity", {})
        rows.append([name, str(entry["patients"]), auc(entry.get("image_c2st")), auc(entry.get("mask_c2st")),
                     _cell(intensity.get("scar_contrast", {}).get("wasserstein")),
                     _cell(intensity.get("scar_texture_sd", {}).get("wasserstein")), _cell(entry["frequency_dice"])])
    ref = record["real_vs_real"]
    rows.append(["real vs real", str(record["real"]["patients"]), auc(ref["image_c2st"]), auc(ref["mask_c2st"]),
                 _cell(ref["intensity_floor"]["scar_contrast"]["mean"]),
                 _cell(ref["intensity_floor"]["scar_texture_sd"]["mean"]),
                 _cell(ref["frequency_dice_ceiling"]["mean"])])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.append("AUC 0.5 = a classifier cannot tell the source from real; W1 = Wasserstein distance to the real "
                 "slices (real vs real: split-half floor); frequency Dice: real vs real is the ceiling")
    return "\n".join(lines)


def _synthetic_patients(folder: Path) -> list:
    """The folder's synthetic patients: those its ``generation.json`` lists when it has one (real patients merged in
    by ``claim generate --include-real`` are not synthetic), else every patient."""
    patients = read_dataset(folder)
    index = folder / "generation.json"
    if not index.exists():
        return patients
    try:
        listed = {entry["mask_id"] for entry in json.loads(index.read_text())}
    except (ValueError, TypeError, KeyError) as exc:
        raise ClaimError(f"{index}: not a claim generation record ({exc})") from exc
    chosen = [p for p in patients if p.patient_id in listed]
    if not chosen:
        raise ClaimError(f"{folder}: none of its patients is listed in generation.json")
    return chosen


def run(args: argparse.Namespace) -> int:
    from claim.stages.realism import gallery_examples, real_set, realism_of_source, realism_record

    parse_orientation(args.orientation)
    out = check_new_file(args.out, overwrite=args.overwrite, flag="--out") if args.out else None
    gallery_png = check_new_file(args.gallery, overwrite=args.overwrite, flag="--gallery") if args.gallery else None
    if out is not None and gallery_png is not None and out.resolve() == gallery_png.resolve():
        raise ClaimError(f"--out and --gallery are the same file ({out})")
    aha = AhaConfig(orientation=args.orientation, handedness=args.handedness, bullseye=False)
    c2st = C2stConfig(repeats=args.repeats, steps=args.steps)
    reference = real_set(read_dataset(Path(args.real), progress=True), aha, progress=True)
    if not reference.samples:
        raise ClaimError(f"{args.real}: no pathological patient with a measurable scar (scar, remote myocardium "
                         "and blood pool on one slice)")
    sources = {}
    gallery = {"real": gallery_examples(reference.samples, seed=args.seed)}
    for folder in args.synthetic:
        name = Path(folder).name
        if name in sources:
            raise ClaimError(f"--synthetic {folder}: two synthetic folders are named {name}")
        if name == "real":
            raise ClaimError(f"--synthetic {folder}: a synthetic folder may not be named 'real' (the real reference's "
                             "name in the record and gallery); rename it")
        sources[name] = realism_of_source(reference, _synthetic_patients(Path(folder)), aha=aha, c2st=c2st,
                                          seed=args.seed, progress=True, name=name, gallery=gallery)
    record = json_safe(without_draws(realism_record(reference, sources, c2st=c2st, seed=args.seed)))
    if out is not None:
        write_json(out, record)
    if gallery_png is not None:
        from claim.report.realism import realism_gallery_png

        png = realism_gallery_png(gallery)
        atomic_path(gallery_png, lambda tmp: tmp.write_bytes(png))
    print(json.dumps(record, indent=2) if args.json else format_table(record))
    return 0
