"""Speed of SMILE: masks per second for one patient stack with the in-memory API (``SmileSampler``).

Times ``SmileSampler.sample`` (spec + render + full label maps) per pattern on one patient, after a one-off
geometry precompute that is reported separately. Uses the largest real EMIDEC stack when the data are present,
else a phantom. Target: >= 20 masks/s on 2 CPU cores, so a fresh mask can be drawn at every training step.

Usage: python benchmarks/smile_speed.py [--data DIR] [--patient Case_P001] [--masks 200] [--out outputs/benchmarks]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from claim.aha.geometry import compute_geometry
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.phantom import make_phantom
from claim.smile import Pattern, SmileConfig, SmileSampler

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CLAIM_SHARED_DATA", REPO.parent / "shared" / "data")) / "emidec-slices"
TARGET_PER_SECOND = 20.0


def _patient(data: Path, patient_id: str | None):
    if data.is_dir():
        patients = read_dataset(data)
        if patient_id:
            return next(p for p in patients if p.patient_id == patient_id)
        return max(patients, key=lambda p: int(p.myocardium_mask.sum()))
    return make_phantom(np.random.default_rng(0), pathological=True).patient


def _rate(sampler: SmileSampler, n: int) -> tuple[float, float]:
    sampler.sample(np.random.default_rng([0, 0]))  # warm-up (imports, caches)
    start = time.perf_counter()
    for k in range(n):
        sampler.sample(np.random.default_rng([1, k]))
    seconds = time.perf_counter() - start
    return n / seconds, 1000.0 * seconds / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--patient", default=None, help="patient id (default: the largest myocardium)")
    parser.add_argument("--masks", type=int, default=200, help="masks timed per pattern")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "outputs" / "benchmarks")
    args = parser.parse_args()
    patient = _patient(args.data, args.patient)
    start = time.perf_counter()
    geometry = compute_geometry(patient)
    geometry_s = time.perf_counter() - start
    start = time.perf_counter()
    SmileSampler(geometry, patient.label_maps)
    canvas_s = time.perf_counter() - start
    print(
        f"patient {patient.patient_id}: {patient.n_slices} slices of {patient.shape}, "
        f"{int(patient.myocardium_mask.sum())} myocardial pixels; {os.cpu_count()} CPUs ({platform.processor()})"
    )
    print(f"one-off: geometry {geometry_s * 1000:.0f} ms, sampler precompute {canvas_s * 1000:.1f} ms")
    results = {}
    for pattern in (
        Pattern.ISCHEMIC,
        Pattern.MIDWALL,
        Pattern.SUBEPICARDIAL,
        Pattern.PATCHY,
        Pattern.MIXED,
        Pattern.BLOBS,
    ):
        sampler = SmileSampler(geometry, patient.label_maps, SmileConfig(pattern=pattern))
        n = args.masks if pattern != Pattern.BLOBS else max(args.masks // 4, 10)
        per_second, ms = _rate(sampler, n)
        results[pattern.value] = {"masks_per_second": round(per_second, 1), "ms_per_mask": round(ms, 2), "n": n}
        flag = "" if pattern == Pattern.BLOBS else ("  ok" if per_second >= TARGET_PER_SECOND else "  BELOW TARGET")
        print(f"{pattern.value:14s} {per_second:8.1f} masks/s  ({ms:6.2f} ms/mask){flag}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "smile_speed.json",
        {
            "patient": patient.patient_id,
            "slices": patient.n_slices,
            "shape": list(patient.shape),
            "myocardial_pixels": int(patient.myocardium_mask.sum()),
            "cpus": os.cpu_count(),
            "geometry_ms": round(geometry_s * 1000, 1),
            "sampler_precompute_ms": round(canvas_s * 1000, 2),
            "target_masks_per_second": TARGET_PER_SECOND,
            "results": results,
        },
    )
    print(f"-> {args.out / 'smile_speed.json'}")


if __name__ == "__main__":
    main()
