"""`claim evaluate`: EMIDEC metrics of predicted label maps against ground truth, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from claim.evaluation.metrics import HD_CONVENTIONS, METRIC_KEYS, evaluate_folders


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="EMIDEC metrics (Dice, volume differences, Hausdorff)")
    parser.add_argument("--pred", required=True, help="predictions (e.g. `claim segment` output)")
    parser.add_argument("--gt", required=True, help="ground-truth folder (same layout and patient ids)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--hd-convention", choices=HD_CONVENTIONS, default="boundary",
                        help="boundary: Hausdorff distance between mask boundaries in mm (default); emidec: the "
                             "official EMIDEC code's numbers, to compare with its leaderboard (it swaps the slice "
                             "and one in-plane spacing; see the README)")
    parser.set_defaults(run=run)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"


def format_table(result: dict) -> str:
    """Plain-text table: one row per patient, then mean and SD."""
    unit = result["unit"]
    header = ["patient", *METRIC_KEYS]
    rows = [[pid, *(_cell(m[k]) for k in METRIC_KEYS)] for pid, m in result["patients"].items()]
    rows.append(["mean", *(_cell(result["mean"][k]) for k in METRIC_KEYS)])
    rows.append(["sd", *(_cell(result["sd"][k]) for k in METRIC_KEYS)])
    present = result["mean_where_present"]
    rows.append(["mean*", *(_cell(present[k]) if k in present else "" for k in METRIC_KEYS)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    volume = "mm3" if unit == "mm" else "voxels" if unit == "px" else "mixed units"
    lines.append(f"units: *_vd in {volume}, myocardium_hd in {unit}; *_ratio_error = |dV| / V_myo_gt (fraction)")
    lines.append(f"mean: over all {result['n_patients']} patients (one without infarct or MVO scores that Dice 1.0 if "
                 f"none is predicted, else 0.0); mean*: infarct_dice over the {result['n_with_infarct']} with infarct, "
                 f"mvo_dice over the {result['n_with_mvo']} with MVO")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = evaluate_folders(args.pred, args.gt, hd_convention=args.hd_convention)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
