"""Realism of SMILE masks against real EMIDEC scars: SMILE (fitted prior) vs the original random blobs.

Patient-level splits (seeded): for each split the prior is fitted on the real scars of half of the pathological
patients; masks are drawn on the held-out patients' own myocardium (``--on heldout``, default) and/or on the normal
patients (``--on normal``) and compared with the held-out patients' real scars on

* involvement bull's-eye: mean absolute difference of per-segment involvement frequencies (a segment is involved
  when at least 10 % of it is scarred), and of the mean scarred share per segment;
* burden distribution: two-sample Kolmogorov-Smirnov statistic;
* share of scar pixels at transmural depth < 0.5 (|generated - real|);
* MVO frequency (|generated - real|).

"SMILE" (the default) keeps every ischemic scar inside one coronary territory, the textbook rule; "SMILE spread"
(``--spread-territory``) lets the fitted prior decide how far a scar reaches beyond its main territory.
The "real fit half" column compares the fit half's real scars with the held-out half's: the noise floor of a
split this small. Metrics are averaged over ``--splits`` seeded splits (seed, seed + 1, ...).

Usage: python benchmarks/smile_realism.py [--data DIR] [--out outputs/benchmarks] [--seed 0] [--splits 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from claim.aha.config import AhaConfig, geometry_for
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.report.figures import save_bullseye
from claim.smile import Pattern, ScarCanvas, SmileConfig, SmileSampler, compare_statistics, fit_prior
from claim.smile.realism import involvement_frequency, label_map_statistics, scar_statistics

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CLAIM_SHARED_DATA", REPO.parent / "shared" / "data")) / "emidec-slices"
METRICS = {
    "involvement bull's-eye distance": lambda c: c["involvement_distance"],
    "segment scar-share distance": lambda c: c["segment_fraction_distance"],
    "burden KS statistic": lambda c: c["burden_ks"],
    "|depth<0.5 share - real|": lambda c: c["subendocardial_fraction"]["difference"],
    "|MVO frequency - real|": lambda c: c["mvo_frequency"]["difference"],
}
VALUES = {
    "burden median": lambda c: c["burden_median"]["generated"],
    "depth<0.5 share": lambda c: c["subendocardial_fraction"]["generated"],
    "MVO frequency": lambda c: c["mvo_frequency"]["generated"],
}
REAL_VALUES = {
    "burden median": lambda c: c["burden_median"]["real"],
    "depth<0.5 share": lambda c: c["subendocardial_fraction"]["real"],
    "MVO frequency": lambda c: c["mvo_frequency"]["real"],
}
METHODS = ("smile", "blobs", "smile spread", "real fit half")


def _generated_stats(sampler: SmileSampler, seed: int, index: int, per_patient: int) -> list:
    stats, pixels = [], np.arange(sampler.canvas.n_pixels)
    for k in range(1, per_patient + 1):
        result = sampler.sample_result(np.random.default_rng([seed, index, k]))
        stats.append(
            scar_statistics(sampler.canvas, np.isin(pixels, result.scar_pixels), np.isin(pixels, result.mvo_pixels))
        )
    return stats


def _one_split(seed: int, scarred: list, normal: list, canvases: dict, args: argparse.Namespace) -> dict:
    order = np.random.default_rng(seed).permutation(len(scarred))
    n_fit = int(round(args.fit_fraction * len(scarred)))
    fit_set = [scarred[i] for i in sorted(order[:n_fit])]
    heldout = [scarred[i] for i in sorted(order[n_fit:])]
    fit_stats = [label_map_statistics(canvases[p.patient_id], p.label_maps) for p in fit_set]
    prior = fit_prior(fit_stats, source=f"{args.data.name}: {len(fit_set)} patients (benchmark fit split {seed})")
    real = [label_map_statistics(canvases[p.patient_id], p.label_maps) for p in heldout]
    targets = {"heldout": heldout, "normal": normal, "both": heldout + normal}[args.on]
    configs = {
        "smile": SmileConfig(),  # default: one territory only
        "blobs": SmileConfig(pattern=Pattern.BLOBS),
        "smile spread": SmileConfig(strict_territory=False),  # grows beyond its territory as the prior says
    }
    generated: dict[str, list] = {name: [] for name in configs}
    for name, config in configs.items():
        for i, patient in enumerate(targets):
            sampler = SmileSampler(canvases[patient.patient_id].geometry, patient.label_maps, config, prior)
            generated[name] += _generated_stats(sampler, seed, i, args.per_patient)
    generated["real fit half"] = fit_stats
    return {
        "seed": seed,
        "fit_patients": [p.patient_id for p in fit_set],
        "heldout_patients": [p.patient_id for p in heldout],
        "comparisons": {name: compare_statistics(real, stats) for name, stats in generated.items()},
        "involvement": {"real": involvement_frequency(real).tolist()}
        | {name: involvement_frequency(stats).tolist() for name, stats in generated.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled EMIDEC-like folder")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "outputs" / "benchmarks")
    parser.add_argument("-s", "--seed", type=int, default=0, help="first split seed (also seeds the masks)")
    parser.add_argument("--splits", type=int, default=5, help="number of seeded patient-level splits")
    parser.add_argument("--per-patient", type=int, default=4, help="generated masks per target patient")
    parser.add_argument("--fit-fraction", type=float, default=0.5, help="share of pathological patients for the fit")
    parser.add_argument(
        "--on", choices=("heldout", "normal", "both"), default="heldout", help="whose myocardium the masks are drawn on"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    aha = AhaConfig(bullseye=False)
    patients = read_dataset(args.data)
    scarred = [p for p in patients if p.has_infarct]
    normal = [p for p in patients if not p.has_infarct]
    canvases = {p.patient_id: ScarCanvas.from_geometry(geometry_for(p, aha)) for p in scarred + normal}
    splits = [_one_split(args.seed + j, scarred, normal, canvases, args) for j in range(args.splits)]

    def mean(get, method: str) -> float:
        return float(np.mean([get(split["comparisons"][method]) for split in splits]))

    table = {label: {m: mean(get, m) for m in METHODS} for label, get in METRICS.items()}
    values = {
        label: {"real (held-out)": mean(REAL_VALUES[label], "smile")} | {m: mean(get, m) for m in METHODS}
        for label, get in VALUES.items()
    }
    closer = {label: row["smile"] < row["blobs"] for label, row in table.items()}
    print(
        f"{len(scarred)} pathological patients, {args.splits} seeded splits ({args.fit_fraction:.0%} fit); "
        f"masks drawn on {args.on} x {args.per_patient}; mean over splits"
    )
    header = f"{'SMILE':>8s} {'blobs':>8s} {'SMILE spread':>13s} {'real fit half':>14s}"
    print(f"{'distance to real (lower = closer)':34s} {header}")
    for label, row in table.items():
        print(f"{label:34s} " + " ".join(f"{row[m]:{w}.3f}" for m, w in zip(METHODS, (8, 8, 13, 14), strict=True)))
    print(f"{'value':34s} {'real':>8s} {header}")
    for label, row in values.items():
        cells = " ".join(f"{row[m]:{w}.3f}" for m, w in zip(METHODS, (8, 8, 13, 14), strict=True))
        print(f"{label:34s} {row['real (held-out)']:8.3f} {cells}")
    print("SMILE closer to real than blobs on every metric:", all(closer.values()))

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "smile_realism.json",
        {
            "data": str(args.data),
            "seed": args.seed,
            "splits": args.splits,
            "per_patient": args.per_patient,
            "on": args.on,
            "fit_fraction": args.fit_fraction,
            "distances": table,
            "values": values,
            "smile_closer": closer,
            "per_split": splits,
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    first = splits[0]["involvement"]
    panels = [
        (
            title,
            {s + 1: 100 * float(v) for s, v in enumerate(first[key])},
            {"cmap": "magma", "vmin": 0.0, "vmax": 100.0},
        )
        for title, key in (
            ("real (held-out)", "real"),
            ("SMILE (fitted prior)", "smile"),
            ("blobs (original)", "blobs"),
        )
    ]
    save_bullseye(
        panels,
        args.out / "smile_realism_bullseye.png",
        suptitle=f"segments involved (% of scars, >= 10 % of the segment scarred), split seed {args.seed}",
    )
    print(f"-> {args.out / 'smile_realism.json'}, {args.out / 'smile_realism_bullseye.png'}")


if __name__ == "__main__":
    main()
