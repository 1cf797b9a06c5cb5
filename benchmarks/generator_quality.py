"""Scar-contrast quality proxy of trained generators: synthetic scars (SMILE masks on normal patients) vs real scars.

For every model, SMILE draws one ischemic mask on each normal patient of ``--data``; the generator paints it with its
default sampler (or ``--sampler``); the contrast of scar against the same slice's remote myocardium and blood pool
(normalised [-1, 1] units) is compared with the real pathological patients' scars. A preview grid (source crop |
mask | synthetic crop) is saved per model for looking at.

Usage:
    python benchmarks/generator_quality.py \
        --models outputs/runs/gen_claim/generator.pt outputs/runs/gen_lefusion/generator.pt \
        [--data ../shared/data/emidec-slices] [--patients 10] [--out outputs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from claim.aha.geometry import compute_geometry  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.generator.checkpoint import load_generator  # noqa: E402
from claim.generator.inpaint import inpaint_patient  # noqa: E402
from claim.generator.quality import compare_scar_contrast, patient_scar_contrasts  # noqa: E402
from claim.report.figures import save_figure  # noqa: E402
from claim.smile import SmileConfig, SmileSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--patients", type=int, default=10, help="normal patients used as canvases")
    parser.add_argument("--sampler", default=None, help="override every model's default sampler")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    patients = read_dataset(args.data)
    pathological = [p for p in patients if p.has_infarct]
    normal = [p for p in patients if not p.has_infarct][: args.patients]
    real = [c for p in pathological for c in patient_scar_contrasts(p)]
    samplers = {p.patient_id: SmileSampler(compute_geometry(p), p.label_maps, SmileConfig()) for p in normal}

    results: dict = {"data": str(args.data), "real_patients": len(pathological), "canvases": len(normal), "models": {}}
    for model_path in args.models:
        generator = load_generator(model_path)
        mode = str(generator.config.mode)
        sampler = args.sampler or generator.config.default_sampler
        synthetic, crops, nfe, seconds = [], [], 0, []
        start = time.perf_counter()
        for i, patient in enumerate(normal):
            rng = np.random.default_rng([args.seed, i])
            label_maps, _ = samplers[patient.patient_id].sample(rng)
            cluster = int(rng.integers(len(generator.hist_centres)))
            images, info = inpaint_patient(
                generator,
                patient,
                label_maps,
                sampler=sampler,
                hist=generator.hist_centres[cluster],
                guidance=1.0,
                torch_generator=torch.Generator().manual_seed(args.seed * 1000 + i),
            )
            synthetic += patient_scar_contrasts(patient.with_arrays(images=images, label_maps=label_maps))
            crops += info["crops"][:1]
            nfe = info["nfe"]
            seconds.append(info["seconds"])
        record = compare_scar_contrast(real, synthetic)
        record.update(
            mode=mode,
            sampler=sampler,
            nfe_per_image=nfe,
            seconds_per_slice_mean=float(np.mean(seconds)),
            total_seconds=time.perf_counter() - start,
            synthetic_slices=len(synthetic),
            train_step=generator.step,
        )
        results["models"][str(model_path)] = record
        _save_grid(crops, args.out / f"generator_samples_{mode}.png", f"{mode} ({sampler}) step {generator.step}")
        record.update(_training_summary(model_path.parent / "train_log.jsonl"))

    _save_loss_curves(args.models, args.out / "generator_loss.png")

    write_json(args.out / "generator_quality.json", results)
    keys = ("scar_vs_remote", "scar_vs_blood")
    print(f"real scars: {len(real)} slices of {len(pathological)} patients")
    for key in keys:
        print(f"  real {key}: {np.mean([getattr(c, key) for c in real]):.3f}")
    for record in results["models"].values():
        print(
            f"{record['mode']:>9} {record['sampler']:>12} NFE {record['nfe_per_image']:>5}  "
            f"{record['seconds_per_slice_mean']:.2f} s/slice  synthetic slices {record['synthetic_slices']}"
        )
        for key in keys:
            print(
                f"    {key}: synthetic {record[f'synthetic_{key}_mean']:.3f} ± {record[f'synthetic_{key}_sd']:.3f}"
                f"  real {record[f'real_{key}_mean']:.3f} ± {record[f'real_{key}_sd']:.3f}"
                f"  gap {record[f'gap_{key}']:+.3f}"
            )
    print(f"-> {args.out / 'generator_quality.json'}")


def _read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _training_summary(log_path: Path) -> dict:
    """Wall time and throughput of the run that produced a checkpoint (from its train_log.jsonl)."""
    log = _read_log(log_path)
    if not log:
        return {}
    seconds = float(log[-1].get("seconds", float("nan")))
    return {"train_steps": log[-1]["step"], "train_seconds": seconds, "train_steps_per_s": log[-1]["step"] / seconds}


def _save_loss_curves(models: list[Path], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    for model_path in models:
        log = _read_log(model_path.parent / "train_log.jsonl")
        if not log:
            continue
        steps = np.array([entry["step"] for entry in log])
        losses = np.array([entry["loss"] for entry in log])
        window = max(len(losses) // 50, 1)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps, losses, alpha=0.2)
        ax.plot(steps[window - 1 :], smooth, label=f"{model_path.parent.name} (moving mean of {window})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=100)


def _save_grid(crops: list, path: Path, title: str) -> None:
    rows = max(len(crops), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(6.0, 2.0 * rows), squeeze=False)
    for r, (image, label_map, synthetic) in enumerate(crops):
        for c, (panel, name) in enumerate(((image, "source"), (label_map, "mask"), (synthetic, "synthetic"))):
            ax = axes[r, c]
            ax.imshow(panel, cmap="gray" if c != 1 else "viridis", vmin=-1 if c != 1 else 0, vmax=1 if c != 1 else 4)
            ax.axis("off")
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=90)


if __name__ == "__main__":
    main()
