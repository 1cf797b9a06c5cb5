"""What G's feedback terms see: the brightness of its one-step scar estimate, from the canvas and from its own painting.

The joint run's feedback terms (consistency, histogram guard, feature term) read G's one-step x0 estimate of a
noised crop at a small level t. This script measures, for each generator given, on consistency crops drawn as the
joint run draws them (a fold's canvases and SMILE prior, ``mapped`` conditions), the median scar contrast (remote
myocardium 0, blood pool 1; ``claim.evaluation.realism.contrast_units``) of:

- the condition it was asked for (the median of the histogram);
- its one-step estimate at several t, with ``x_t`` noised from the scar-free canvas (``feedback_start=canvas``) and
  from its own DDIM painting (``feedback_start=painted``);
- its DDIM painting itself (what the replay buffer and the synthetic set get).

Each generator is read with its EMA weights (what sampling uses; the joint run reads its online weights, which
the EMA follows). A term that reads the canvas at a small t asks G to paint scar in one step into clean normal
myocardium; sampling never asks that, and what G learns to meet it shows up in the painting. Prints a table and
saves JSON.

    python benchmarks/joint_feedback_estimates.py --study outputs/cv6/folds/fold1/study \\
        --generator before=outputs/more7/fold1/lesion_smile/generator/generator.pt \\
        --generator joint=outputs/more8/fold1/lesion_claim/joint/generator.pt --out outputs/benchmarks/feedback.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.realism import contrast_units  # noqa: E402
from claim.generator.checkpoint import load_generator  # noqa: E402
from claim.generator.context import config_anatomy, inpaint_region  # noqa: E402
from claim.generator.sampling import make_model_fn  # noqa: E402
from claim.generator.schedule import model_outputs  # noqa: E402
from claim.joint.canvas import build_canvases, sample_canvas_crops  # noqa: E402
from claim.joint.consistency import histogram_quantiles, painted_start  # noqa: E402
from claim.labels import Label  # noqa: E402
from claim.smile.prior import load_prior  # noqa: E402


def median_contrast(images: np.ndarray, label_maps: np.ndarray) -> float:
    """Median over crops of the median scar contrast of each ``(C, C)`` crop (crops without remote or blood skip)."""
    values = []
    for image, labels in zip(images, label_maps, strict=True):
        units = contrast_units(image, labels)
        scar = labels == Label.INFARCT
        if units is not None and scar.any():
            values.append(float(np.median(units[0][scar])))
    return float(np.median(values)) if values else float("nan")


@torch.no_grad()
def estimates(path: Path, canvases, n: int, levels: list[int], sampler_steps: int, seed: int) -> dict[str, float]:
    g = load_generator(path)
    if max(levels) >= g.config.timesteps:
        raise SystemExit(f"{path}: --levels must be below its {g.config.timesteps} timesteps")
    batch = sample_canvas_crops(canvases, n, g.config, g.hist_centres, np.random.default_rng(seed), g.hist_context,
                                rule="mapped")
    known, labels, hists = batch.known, batch.label_maps, batch.hists
    label_np = labels[:, 0].numpy()
    asked = known[:, 0].clone()
    for i in range(n):
        asked[i][labels[i, 0] == Label.INFARCT] = float(histogram_quantiles(hists[i], torch.tensor([0.5]))[0])
    out = {"asked": median_contrast(asked.numpy(), label_np)}
    region = inpaint_region(g.config, labels)
    model_fn = make_model_fn(g.model, g.config.mode, known, region, config_anatomy(labels, g.config), hists)
    painted = painted_start(g.model, g.schedule, g.config, known, labels, hists, sampler_steps,
                            torch.Generator().manual_seed(seed))
    for start_name, start in (("canvas", known), ("painted", painted)):
        for t in levels:
            tt = torch.full((n,), t)
            noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(seed + t))
            x_t = g.schedule.add_noise(start, noise, tt)
            _, x0 = model_outputs(model_fn(x_t, tt), x_t, tt, g.schedule, g.config.prediction)
            out[f"{start_name}_t{t}"] = median_contrast(torch.where(region, x0, known)[:, 0].numpy(), label_np)
    ddim = painted_start(g.model, g.schedule, g.config, known, labels, hists, 25, torch.Generator().manual_seed(seed))
    out["ddim25"] = median_contrast(ddim[:, 0].numpy(), label_np)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished study folder (or one CV fold's)")
    parser.add_argument("--generator", action="append", required=True, metavar="NAME=CKPT")
    parser.add_argument("--crops", type=int, default=24)
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 50, 99, 200, 290])
    parser.add_argument("--sampler-steps", type=int, default=10, help="DDIM steps of the painted start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "joint_feedback_estimates.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    named = []
    for item in args.generator:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            parser.error(f"--generator {item!r}: expected NAME=CKPT with an existing checkpoint")
        named.append((name, Path(path)))
    roles = json.loads((args.study / "prepare.json").read_text())
    train = {p.patient_id: p for p in read_dataset(Path(roles["train_dir"]), progress=False)}
    prior_file = args.study / "masks" / "smile" / "smile_prior.json"
    canvases = build_canvases([train[pid] for pid in roles["fit"]],
                              prior=load_prior(prior_file) if prior_file.exists() else None)
    results = {}
    for name, path in named:
        results[name] = estimates(path, canvases, args.crops, args.levels, args.sampler_steps, args.seed)
        print(name, "  ".join(f"{k} {v:.2f}" for k, v in results[name].items()), flush=True)
    write_json(args.out, {"study": str(args.study), "crops": args.crops, "seed": args.seed,
                          "sampler_steps": args.sampler_steps, "generators": {n: str(p) for n, p in named},
                          "median_scar_contrast": results})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
