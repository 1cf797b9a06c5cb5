"""Shape realism of scar masks on real EMIDEC: SMILE and the original's blobs against held-out real scars.

Patient-level halves of the pathological patients (seeded): the SMILE prior is fitted on the first half's scars,
masks are drawn on the normal patients' myocardium (as the study does), and every source is compared with the
second half's real scars on what a mask alone shows: the mask two-sample test in the polar frame (AUC, 0.5 =
indistinguishable), the shape statistics of ``claim.evaluation.realism.SHAPE_STATISTICS`` (1-D Wasserstein
distance to the real slices, medians beside), the bull's-eye frequency Dice, where MVO sits (the share of
patients with MVO among those with scar, and the share of their scar slices that carry it), and how far along the
stack the scar runs (the share of myocardium slices with scar; the share of patients scarred on every slice).
The first half's real scars are scored the same way: the real-vs-real floor of every number at these sample sizes.

Usage: python benchmarks/mask_shape.py [--data ../shared/data/emidec-slices] [--masks-per-canvas 2] [--seed 0]
       [--strict-territory] [--out outputs/benchmarks/mask_shape.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.aha.config import AhaConfig, geometry_for  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.c2st import C2stConfig, without_draws  # noqa: E402
from claim.evaluation.realism import SHAPE_STATISTICS  # noqa: E402
from claim.experiment.realism import blob_masks  # noqa: E402
from claim.labels import Label, infarct_mask, myocardium_mask  # noqa: E402
from claim.smile.canvas import ScarCanvas  # noqa: E402
from claim.smile.prior import fit_prior  # noqa: E402
from claim.smile.realism import label_map_statistics  # noqa: E402
from claim.smile.sampler import SmileSampler  # noqa: E402
from claim.smile.spec import SmileConfig  # noqa: E402
from claim.stages.realism import canvas_group, real_set, realism_of_source  # noqa: E402


def _occupied_slices(patient) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice of a patient: whether it holds scar (infarct, MVO included), MVO, and myocardium."""
    labels = patient.label_maps
    return (infarct_mask(labels).any(axis=(1, 2)), (labels == Label.MVO).any(axis=(1, 2)),
            myocardium_mask(labels).any(axis=(1, 2)))


def mvo_extent(patients: list) -> dict:
    """Of the patients with scar: the share with MVO, and over those, the mean share of their scar slices that
    carry MVO (real EMIDEC MVO sits on fewer slices than the scar around it)."""
    scarred = [p for p in patients if p.has_infarct]
    shares = []
    for patient in scarred:
        scar, mvo, _ = _occupied_slices(patient)
        if mvo.any():
            shares.append(float(mvo.sum() / scar.sum()))
    return {"patients_with_scar": len(scarred), "share_with_mvo": len(shares) / max(len(scarred), 1),
            "mvo_slice_share": float(np.mean(shares)) if shares else None}


def long_axis_extent(patients: list) -> dict:
    """Of the patients with scar: the mean share of their myocardium slices that carry scar, and the share of
    patients whose scar runs through every slice (real infarcts thin out or stop towards the stack's ends)."""
    coverage = []
    for patient in (p for p in patients if p.has_infarct):
        scar, _, myocardium = _occupied_slices(patient)
        coverage.append(float(scar.sum() / max(myocardium.sum(), 1)))
    return {"slice_coverage": float(np.mean(coverage)) if coverage else None,
            "share_whole_stack": float(np.mean(np.asarray(coverage) >= 1.0)) if coverage else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--masks-per-canvas", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strict-territory", action="store_true",
                        help="SMILE keeps each scar inside its territory's textbook segments (the default before)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "mask_shape.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    aha = AhaConfig()
    patients = read_dataset(args.data, progress=False)
    pathological = sorted((p for p in patients if p.has_infarct), key=lambda p: p.patient_id)
    normal = sorted((p for p in patients if not p.has_infarct), key=lambda p: p.patient_id)
    order = np.random.default_rng([args.seed, 41]).permutation(len(pathological))
    fit = [pathological[i] for i in order[: len(order) // 2]]
    held_out = [pathological[i] for i in order[len(order) // 2:]]
    geometry = {p.patient_id: geometry_for(p, aha) for p in patients}
    prior = fit_prior([label_map_statistics(ScarCanvas.from_geometry(geometry[p.patient_id]), p.label_maps)
                       for p in fit], source=f"{args.data} (benchmark fit half)")

    smile = []
    for i, canvas in enumerate(normal):
        sampler = SmileSampler(geometry[canvas.patient_id], canvas.label_maps,
                               SmileConfig(strict_territory=args.strict_territory), prior)
        for k in range(args.masks_per_canvas):
            label_maps, _ = sampler.sample(np.random.default_rng([args.seed, 43, i, k]))
            smile.append(canvas.with_arrays(patient_id=f"{canvas.patient_id}_smile{k}", label_maps=label_maps))
    blobs = [p for p, _ in blob_masks(normal, lambda p: geometry[p.patient_id], args.seed)]

    def geometry_of(patient):
        return geometry.get(patient.patient_id) or geometry[canvas_group(patient.patient_id)]

    reference = real_set(held_out, aha)
    c2st = C2stConfig()
    sources = {"smile": smile, "blobs": blobs, "real (fit half)": fit}
    results: dict = {"seed": args.seed, "strict_territory": args.strict_territory,
                     "fit_half": [p.patient_id for p in fit], "held_out": [p.patient_id for p in held_out],
                     "statistics": SHAPE_STATISTICS, "sources": {}}
    for name, members in sources.items():
        groups = {p.patient_id: canvas_group(p.patient_id) if name != "real (fit half)" else p.patient_id
                  for p in members}
        record = realism_of_source(reference, members, aha=aha, groups=groups, c2st=c2st, seed=args.seed,
                                   images=False, name=name, geometry_of=geometry_of)
        results["sources"][name] = without_draws(record) | {"mvo": mvo_extent(members),
                                                             "long_axis": long_axis_extent(members)}
    results["minutes"] = round((time.perf_counter() - start) / 60, 1)
    print(f"{'source':18s} {'mask AUC [95% CI]':24s} {'freq Dice':9s} " +
          " ".join(f"{k[5:]:>22s}" for k in SHAPE_STATISTICS))
    for name, record in results["sources"].items():
        c = record["mask_c2st"]
        cells = [f"{record['shape'][k]['median']:.3f}/{record['shape'][k]['real_median']:.3f} "
                 f"W1 {record['shape'][k]['wasserstein']:.3f}" for k in SHAPE_STATISTICS]
        print(f"{name:18s} {c['auc']:.3f} [{c['low']:.3f}, {c['high']:.3f}]    {record['frequency_dice']:.3f}     " +
              " ".join(f"{cell:>22s}" for cell in cells))
    print(f"(cells: source median / real median, W1 to the held-out real slices; {results['minutes']} min)")
    results["held_out_mvo"] = mvo_extent(held_out)
    for name, extent in (("held-out real", results["held_out_mvo"]),
                         *((n, r["mvo"]) for n, r in results["sources"].items())):
        share = extent["mvo_slice_share"]
        print(f"MVO {name:16s}: in {extent['share_with_mvo']:.2f} of {extent['patients_with_scar']} scarred "
              f"patients, on {'-' if share is None else f'{share:.2f}'} of their scar slices")
    results["held_out_long_axis"] = long_axis_extent(held_out)
    for name, extent in (("held-out real", results["held_out_long_axis"]),
                         *((n, r["long_axis"]) for n, r in results["sources"].items())):
        print(f"long axis {name:16s}: scar on {extent['slice_coverage']:.2f} of the myocardium slices, "
              f"{extent['share_whole_stack']:.2f} of patients scarred through the whole stack")
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
