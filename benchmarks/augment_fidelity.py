"""How faithfully `claim augment` painted its masks, judged by segmenters trained on real patients only.

Each judge (a `claim train-segmenter` run or checkpoint that never saw the augment output) segments every synthetic
patient of the output. Mask fidelity is its infarct Dice against the scar the patient was painted with, slices
stacked per patient: the study's measure (`claim experiment`'s `fidelity`). Beside it: the volume the judge finds
as a share of the painted volume (below 1: painted scar the judge does not call scar), both split by whether the
mask holds MVO, and, with ``--test``, the judge's own infarct Dice on real held-out patients, the scale to read
fidelity against (painted scar should be found about as well as unseen real scar: much better means too easy,
much worse means not scar-like). Mean fidelity has a patient-bootstrap 95 % CI. No judge is needed for the last
part: how bright painted scar and MVO are against the output's real scarred patients, in contrast units (remote
myocardium 0, blood pool 1), median per slice, scar with its MVO and MVO alone as the study's realism statistics
measure them (`claim.evaluation.realism.scar_levels`; real MVO is a dark core, about 0.5; real scar about 1).

    python benchmarks/augment_fidelity.py --augment AUG --judge RUN1 RUN2 --test SPLIT/test --out fidelity.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.augmented import synthetic_sources  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.metrics import dice  # noqa: E402
from claim.evaluation.realism import contrast_units, scar_levels  # noqa: E402
from claim.experiment.stats import paired_bootstrap_ci  # noqa: E402
from claim.labels import Label, infarct_mask  # noqa: E402
from claim.segmentation import load_segmenter, predict_label_maps  # noqa: E402


def _checkpoint(path: Path) -> Path:
    return path / "segmenter.pt" if path.is_dir() else path


def _mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and patient-bootstrap 95 % interval: the project's one bootstrap, against a zero baseline."""
    ci = paired_bootstrap_ci(values, [0.0] * len(values))
    return {"mean": ci["mean"], "ci_low": ci["low"], "ci_high": ci["high"], "n": int(ci["n"])}


def judge_patients(judge: Path, patients: list) -> list[dict]:
    """Per patient: the judge's infarct Dice, the found/labelled scar volume ratio, and whether it has MVO."""
    model, config = load_segmenter(_checkpoint(judge), "cpu")
    rows = []
    for patient in patients:
        wanted = infarct_mask(patient.label_maps)
        if not wanted.any():
            continue
        found = infarct_mask(predict_label_maps(model, config, patient.images))
        rows.append({"patient_id": patient.patient_id, "dice": dice(found, wanted),
                     "volume_ratio": float(found.sum() / wanted.sum()),
                     "mvo": bool((patient.label_maps == Label.MVO).any())})
    return rows


def summarise(rows: list[dict]) -> dict:
    result: dict = {"fidelity": _mean_ci([r["dice"] for r in rows]),
                    "volume_ratio_median": float(np.median([r["volume_ratio"] for r in rows]))}
    for name, keep in (("with_mvo", True), ("without_mvo", False)):
        part = [r for r in rows if r["mvo"] == keep]
        if part:
            result[name] = {"n": len(part), "fidelity_mean": float(np.mean([r["dice"] for r in part])),
                            "volume_ratio_median": float(np.median([r["volume_ratio"] for r in part]))}
    return result


def contrast_levels(patients: list) -> dict:
    """Per-slice scar (MVO included) and MVO brightness in contrast units, as the study's realism statistics
    measure them (``claim.evaluation.realism.scar_levels``), summarised over the slices."""
    levels: dict[str, list[float]] = {"scar": [], "mvo": []}
    for patient in patients:
        for image, labels in zip(patient.images, patient.label_maps, strict=True):
            measured = contrast_units(image, labels)
            if measured is None:
                continue
            for name, value in scar_levels(measured[0], labels).items():
                levels[name.removesuffix("_contrast")].append(value)
    return {name: {"slices": len(v), "median": float(np.median(v)) if v else None,
                   "p25_p75": [float(q) for q in np.percentile(v, [25, 75])] if v else None}
            for name, v in levels.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--augment", type=Path, required=True, help="a finished claim augment output")
    parser.add_argument("--judge", type=Path, nargs="+", required=True,
                        help="segmenter runs (RUN/segmenter.pt) or checkpoints trained on real patients only")
    parser.add_argument("--test", type=Path, help="labelled real held-out patients: the judges' own infarct Dice")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "augment_fidelity.json")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sources = synthetic_sources(args.augment)
    if not sources:
        parser.error(f"--augment {args.augment}: no augment.json listing synthetic patients")
    everyone = read_dataset(args.augment, progress=False)
    synthetic = [p for p in everyone if p.patient_id in sources]
    test = read_dataset(args.test, progress=False) if args.test else []
    if args.test and not any(p.has_infarct for p in test):
        # The judges' held-out Dice is over scarred patients; without one it would be an empty mean (NaN).
        parser.error(f"--test {args.test}: no patient with infarct labels to score the judges on")
    levels = {"painted": contrast_levels(synthetic),
              "real": contrast_levels([p for p in everyone if p.patient_id not in sources and p.has_infarct])}
    for group, block in levels.items():
        print(f"{group} contrast (myocardium 0, blood 1), median per slice: " + ", ".join(
            f"{name} {v['median']:.2f} over {v['slices']} slices" for name, v in block.items() if v["slices"]))
    results: dict = {"augment": str(args.augment), "test": str(args.test) if args.test else None,
                     "contrast": levels, "judges": {}}
    for judge in args.judge:
        rows = judge_patients(judge, synthetic)
        painted = summarise(rows)
        block = {"synthetic": painted, "per_patient": rows}
        line = (f"{judge}: fidelity {painted['fidelity']['mean']:.3f} [{painted['fidelity']['ci_low']:.3f}, "
                f"{painted['fidelity']['ci_high']:.3f}] over {len(rows)} synthetic patients, "
                f"found/painted volume {painted['volume_ratio_median']:.2f}")
        if test:
            block["held_out_real"] = summarise(judge_patients(judge, test))
            real = block["held_out_real"]
            line += (f" | held-out real infarct Dice {real['fidelity']['mean']:.3f} over {real['fidelity']['n']} "
                     f"patients, found/labelled volume {real['volume_ratio_median']:.2f}")
        print(line)
        results["judges"][str(judge)] = block
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
