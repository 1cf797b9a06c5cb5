"""Judge an AHA angle origin by anatomy: do real scars fall into one coronary territory under it?

An ischemic infarct follows one coronary artery, so under the right origin a patient's scar should lie in one
territory (LAD, RCA or LCx) more than under a rotated one. For every pathological patient the share of its scar
pixels inside its best territory is computed under the origin in use (``--orientation``) and under that origin
rotated in ``--step`` degree steps. Reported: the mean share under the origin, the mean over all rotations
(what an origin unrelated to anatomy scores), the mean of each patient's best rotation, how often the best
rotation lies within one step of the origin (chance: 3 of 360/step rotations), and a patient bootstrap of
(origin - rotation average) for its noise; also the share with the segment numbering mirrored (the other
``--handedness``), paired per patient. Large scars lie in one territory under many rotations, which bounds how
much this test can tell.

Usage: python benchmarks/aha_territory.py [--data ../shared/data/emidec-slices] [--orientation auto]
       [--handedness ccw|cw] [--step 30] [--out outputs/benchmarks]
Prints the numbers and saves outputs/benchmarks/aha_territory.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from claim.aha.config import AhaConfig, geometry_for
from claim.aha.geometry import PatientGeometry
from claim.aha.orientation import parse_orientation
from claim.aha.segments import SEGMENTS, Handedness, Territory, segment_from_angle
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.labels import INFARCT_LABELS

REPO = Path(__file__).resolve().parents[1]
_TERRITORY_INDEX = {territory: k for k, territory in enumerate(Territory)}
_SEGMENT_TERRITORY = np.array([0] + [_TERRITORY_INDEX[SEGMENTS[s].territory] for s in range(1, 18)])


def best_territory_shares(geometry: PatientGeometry, label_maps: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Share of the scar inside its best territory, for the origin rotated by each of ``rotations`` degrees."""
    scar = np.isin(label_maps, INFARCT_LABELS) & geometry.myocardium_mask
    shares = np.zeros(len(rotations))
    total = int(scar.sum())
    if total == 0:
        return np.full(len(rotations), np.nan)
    for k, rotation in enumerate(rotations):
        counts = np.zeros(len(Territory))
        for s, level in enumerate(geometry.levels):
            if level is None or not scar[s].any():
                continue
            segments = segment_from_angle((geometry.angle_deg[s][scar[s]] - rotation) % 360.0, level)
            counts += np.bincount(_SEGMENT_TERRITORY[segments], minlength=len(Territory))
        shares[k] = counts.max() / total
    return shares


def gain_over_rotations(table: np.ndarray) -> np.ndarray:
    """Per patient (rows of ``best_territory_shares`` over the rotations, origin first): the share under the
    origin minus the patient's rotation average."""
    return table[:, 0] - table.mean(axis=1)


def patient_resamples(n: int, bootstrap: int, seed: int = 0) -> np.ndarray:
    """``(bootstrap, n)`` patient indices drawn with replacement: the bootstrap of every paired gain here."""
    return np.random.default_rng(seed).integers(0, n, (bootstrap, n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--orientation", default="auto", help="as for claim aha (auto, angle:DEG, file:PATH, ...)")
    parser.add_argument("--handedness", type=Handedness, choices=list(Handedness), default=Handedness.CCW)
    parser.add_argument("--step", type=float, default=30.0, help="rotation step in degrees")
    parser.add_argument("--bootstrap", type=int, default=2000, help="patient bootstrap resamples for the noise")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    args = parser.parse_args()
    parse_orientation(args.orientation)
    config = AhaConfig(orientation=args.orientation, handedness=args.handedness, bullseye=False)
    rotations = np.arange(0.0, 360.0, args.step)
    patients = [p for p in read_dataset(args.data, progress=False) if np.isin(p.label_maps, INFARCT_LABELS).any()]
    table = np.array([best_territory_shares(geometry_for(p, config), p.label_maps, rotations) for p in patients])
    # The same origins with the numbering mirrored: which handedness the scars favour, paired per patient.
    other = Handedness.CW if args.handedness == Handedness.CCW else Handedness.CCW
    mirrored_config = AhaConfig(orientation=args.orientation, handedness=other, bullseye=False)
    mirrored = np.array(
        [best_territory_shares(geometry_for(p, mirrored_config), p.label_maps, rotations[:1])[0] for p in patients]
    )
    under_origin, rotation_mean, best = table[:, 0], table.mean(axis=1), table.max(axis=1)
    # A patient's best rotation "agrees" when it is the origin or one step either side (ties count as agreeing).
    near = np.minimum(rotations, 360.0 - rotations) <= args.step + 1e-9
    agrees = table[:, near].max(axis=1) >= best - 1e-12
    gain = gain_over_rotations(table)
    resamples = patient_resamples(len(gain), args.bootstrap)
    boot = gain[resamples].mean(axis=1)
    mirror_gain = table[:, 0] - mirrored
    mirror_boot = mirror_gain[resamples].mean(axis=1)
    results = {
        "data": str(args.data),
        "orientation": args.orientation,
        "handedness": args.handedness.value,
        "patients": len(patients),
        "step_deg": args.step,
        "share_under_origin": float(under_origin.mean()),
        "share_rotation_average": float(rotation_mean.mean()),
        "share_best_rotation": float(best.mean()),
        "gain_over_rotation_average": float(gain.mean()),
        "gain_bootstrap_sd": float(boot.std()),
        "gain_bootstrap_95ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "share_under_origin_mirrored": float(mirrored.mean()),
        "gain_over_mirrored": float(mirror_gain.mean()),
        "gain_over_mirrored_95ci": [float(np.percentile(mirror_boot, 2.5)), float(np.percentile(mirror_boot, 97.5))],
        "best_rotation_near_origin": float(agrees.mean()),
        "best_rotation_near_origin_chance": float(near.sum() / len(rotations)),
        "share_by_rotation": {f"{r:.0f}": float(v) for r, v in zip(rotations, table.mean(axis=0), strict=True)},
        "median_scar_share_of_myocardium": float(
            np.median([np.isin(p.label_maps, INFARCT_LABELS).sum() / p.myocardium_mask.sum() for p in patients])
        ),
    }
    for key, value in results.items():
        if key != "share_by_rotation":
            print(f"{key:34s} {value}")
    print("mean share by rotation:", " ".join(f"{r}:{v:.3f}" for r, v in results["share_by_rotation"].items()))
    write_json(args.out / "aha_territory.json", results)


if __name__ == "__main__":
    main()
