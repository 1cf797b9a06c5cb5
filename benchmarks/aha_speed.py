"""Speed of `claim aha` over the real EMIDEC slices and of phantom generation (2 CPU cores).

Usage: python benchmarks/aha_speed.py [--data ../shared/data/emidec-slices] [--out outputs/benchmarks]
Prints a table and saves outputs/benchmarks/aha_speed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from claim.aha.config import AhaConfig
from claim.data.io import write_json
from claim.demo import score_phantom_geometry
from claim.phantom import write_phantom_cohort
from claim.stages.aha import run_aha

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--volumes", type=Path, default=REPO.parent / "shared" / "data" / "emidec-volumes")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    parser.add_argument("--phantom-patients", type=int, default=20)
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        cases = write_phantom_cohort(tmp / "phantom", args.phantom_patients, seed=0, progress=False)
        results["phantom_generation_s"] = time.perf_counter() - start
        scores = [score_phantom_geometry(case) for case in cases]
        results["phantom_agreement_known_orientation_min"] = min(s["agreement_known_orientation"] for s in scores)
        results["phantom_agreement_known_orientation_mean"] = float(
            np.mean([s["agreement_known_orientation"] for s in scores])
        )
        results["phantom_agreement_estimated_mean"] = float(np.mean([s["agreement_estimated"] for s in scores]))
        results["phantom_orientation_error_deg_median"] = float(np.median([s["orientation_error_deg"] for s in scores]))
        if args.data.is_dir():
            for bullseye in (True, False):
                start = time.perf_counter()
                summary = run_aha(args.data, tmp / f"aha_{bullseye}", AhaConfig(bullseye=bullseye), progress=False)
                key = "aha_emidec_slices_s" if bullseye else "aha_emidec_slices_no_bullseye_s"
                results[key] = time.perf_counter() - start
            results["emidec_slices_patients"] = len(summary["patients"])
            results["emidec_slices_median_sector_cv"] = summary["median_sector_cv"]
            myo_ok = all(sum(p["myocardium_pixels"].values()) > 0 for p in summary["patients"])
            results["emidec_slices_all_patients_segmented"] = myo_ok
        if args.volumes.is_dir():
            summary = run_aha(args.volumes, tmp / "aha_volumes", AhaConfig(), progress=False)
            results["emidec_volumes_apex_side"] = {p["patient_id"]: p["apex_side"] for p in summary["patients"]}
            results["emidec_volumes_median_sector_cv"] = summary["median_sector_cv"]
    write_json(args.out / "aha_speed.json", results)
    width = max(len(k) for k in results)
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(f"saved {args.out / 'aha_speed.json'}")


if __name__ == "__main__":
    main()
