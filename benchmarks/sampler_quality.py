"""Sampler quality against cost on one trained generator: judge fidelity, scar-contrast realism and s/image vs NFE.

Every sampler paints the same SMILE masks on the same normal canvases (same histogram, same start noise), so each is
compared with the reference (DDIM 50) pair by pair. Per synthetic patient (one mask on one canvas):

- fidelity: Dice of the judge's infarct (scar + MVO) against the mask over the patient's slices (the study's judge
  fidelity; the judge is a segmenter trained on real patients only, none of them a canvas here);
- realism: scar minus remote myocardium and scar minus blood pool (normalised units, ``claim.generator.quality``),
  averaged over the patient's painted slices, and their gap to the same contrasts of the real scars in ``--data``;
- cost: network calls per image and seconds per painted slice, batched per patient as ``claim generate`` runs, and
  for one slice alone (batch 1).

Means come with 95 % bootstrap intervals over synthetic patients, and differences from the reference with paired
ones. RePaint is slow (598 / 1480 NFE), so it runs on the first ``--repaint-canvases`` canvases only and its paired
differences use those patients.

Usage:
    python benchmarks/sampler_quality.py --model RUN/generator.pt --judge SEG/segmenter.pt \
        --canvases Case_N018-Case_N025 [--samplers ddim:1,...] [--threads 2] [--out outputs/benchmarks/sampler_quality]
Prints a table and saves sampler_quality.json and sampler_quality.png in --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from claim.aha.geometry import compute_geometry  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.evaluation.metrics import dice  # noqa: E402
from claim.experiment.stats import paired_bootstrap_ci  # noqa: E402
from claim.generator.checkpoint import load_generator  # noqa: E402
from claim.generator.data import patient_norm  # noqa: E402
from claim.generator.inpaint import inpaint_patient  # noqa: E402
from claim.generator.quality import patient_scar_contrasts, scar_contrast  # noqa: E402
from claim.generator.sampling import parse_sampler  # noqa: E402
from claim.generator.solvers import make_scheduler  # noqa: E402
from claim.labels import Label, infarct_mask  # noqa: E402
from claim.report.figures import save_figure  # noqa: E402
from claim.smile import SmileConfig, SmileSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLERS = ("ddim:1,ddim:2,ddim:5,ddim:10,ddim:25,ddim:50,dpm2:1,dpm2:2,dpm2:5,dpm2:8,dpm2:10,unipc2:5,unipc2:8,"
            "unipc2:10,repaint:2x2,repaint:5x5")
REFERENCE = "ddim:50"
CONTRASTS = ("scar_vs_remote", "scar_vs_blood")


def _canvas_ids(text: str, normal_ids: list[str]) -> list[str]:
    """``A-B`` (inclusive, sorted ids), ``a,b,c``, or ``all``: the normal patients used as canvases."""
    if text == "all":
        return normal_ids
    if "-" in text and "," not in text:
        low, high = text.split("-")
        return [p for p in normal_ids if low <= p <= high]
    return [p.strip() for p in text.split(",") if p.strip()]


def _mean_ci(values: list[float]) -> dict[str, float]:
    ci = paired_bootstrap_ci(values, [0.0] * len(values))
    return {"mean": ci["mean"], "low": ci["low"], "high": ci["high"], "n": ci["n"],
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def _score(patient, images, label_maps, judge) -> dict[str, float]:
    """Fidelity and contrasts of one synthetic patient."""
    from claim.segmentation import predict_label_maps

    scar = infarct_mask(label_maps)
    record: dict[str, float] = {}
    if judge is not None:
        pred = predict_label_maps(judge[0], judge[1], images)
        record["fidelity"] = dice(infarct_mask(pred), scar)
    norm = patient_norm(patient)  # the source's window: the background is the source's, so is its normalisation
    found = [scar_contrast(norm.normalise(images[k]), label_maps[k]) for k in range(len(images)) if scar[k].any()]
    found = [c for c in found if c is not None]
    for key in CONTRASTS:
        record[key] = float(np.mean([getattr(c, key) for c in found])) if found else float("nan")
    return record


def _time_one_slice(gen, patient, label_maps, sampler: str, hist: np.ndarray) -> float:
    """Seconds to paint one slice alone (the other slices' scar removed, so the batch is 1)."""
    scar_slices = np.flatnonzero(infarct_mask(label_maps).reshape(len(label_maps), -1).any(axis=1))
    one = label_maps.copy()
    for k in scar_slices[1:]:
        one[k][infarct_mask(one[k])] = Label.MYOCARDIUM
    t0 = time.perf_counter()
    inpaint_patient(gen, patient, one, sampler=sampler, hist=hist, guidance=1.0,
                    torch_generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--judge", type=Path, default=None, help="segmenter trained on real data (fidelity)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "emidec-slices")
    parser.add_argument("--canvases", default="all", help="normal patients to paint: A-B, a,b,c or all")
    parser.add_argument("--masks-per-canvas", type=int, default=2)
    parser.add_argument("--samplers", default=SAMPLERS)
    parser.add_argument("--repaint-canvases", type=int, default=2, help="canvases RePaint runs on (it is slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "sampler_quality")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samplers = [str(parse_sampler(s)) for s in args.samplers.split(",")]
    if REFERENCE not in samplers:
        samplers.insert(0, REFERENCE)

    gen = load_generator(args.model)
    judge = None
    if args.judge is not None:
        from claim.segmentation import load_segmenter

        judge = load_segmenter(args.judge)
    patients = read_dataset(args.data)
    real = [c for p in patients if p.has_infarct for c in patient_scar_contrasts(p)]
    by_id = {p.patient_id: p for p in patients if not p.has_infarct}
    wanted = _canvas_ids(args.canvases, sorted(by_id))
    unknown = [c for c in wanted if c not in by_id]
    if unknown or not wanted:
        parser.error(f"--canvases {args.canvases!r}: {unknown or 'none'} not among the normal patients of {args.data}")
    canvases = [by_id[c] for c in wanted]
    jobs = []  # (canvas, canvas index, mask k, label maps, hist, noise seed): the same for every sampler
    for i, canvas in enumerate(canvases):
        smile = SmileSampler(compute_geometry(canvas), canvas.label_maps, SmileConfig())
        for k in range(args.masks_per_canvas):
            rng = np.random.default_rng([args.seed, i, k])
            label_maps, _ = smile.sample(rng)
            hist = gen.hist_centres[int(rng.integers(len(gen.hist_centres)))]
            jobs.append((canvas, i, k, label_maps, hist, int(rng.integers(2**62))))

    results: dict = {"model": str(args.model), "train_step": gen.step, "judge": str(args.judge),
                     "canvases": [c.patient_id for c in canvases], "masks_per_canvas": args.masks_per_canvas,
                     "threads": args.threads, "crop_px": gen.config.crop_size, "reference": REFERENCE,
                     "seed": args.seed,
                     "real": {key: _mean_ci([getattr(c, key) for c in real]) for key in CONTRASTS},
                     "samplers": {}}
    per_job: dict[str, list[dict]] = {}
    # Warm-up outside the timings: the first forward pass sets up kernels, and diffusers takes seconds to import.
    make_scheduler(gen.schedule, "dpm", 2)
    canvas, _, _, label_maps, hist, _ = jobs[0]
    _time_one_slice(gen, canvas, label_maps, "ddim:1", hist)
    for name in samplers:
        spec = parse_sampler(name)
        mine = [j for j in jobs if spec.kind != "repaint" or j[1] < args.repaint_canvases]
        rows = []
        for canvas, i, k, label_maps, hist, noise_seed in tqdm(mine, desc=name, unit="patient"):
            images, info = inpaint_patient(gen, canvas, label_maps, sampler=name, hist=hist, guidance=1.0,
                                           torch_generator=torch.Generator().manual_seed(noise_seed))
            rows.append({"canvas": i, "mask": k, "nfe": info["nfe"], "seconds_per_slice": info["seconds"],
                         "slices": len(info["slices"]), **_score(canvas, images, label_maps, judge)})
        per_job[name] = rows
        canvas, _, _, label_maps, hist, _ = jobs[0]
        batched = float(np.mean([r["seconds_per_slice"] for r in rows]))
        results["samplers"][name] = {"nfe": spec.nfe(gen.config.timesteps), "patients": len(rows),
                                     "seconds_per_slice_batched": batched,
                                     "seconds_one_slice": _time_one_slice(gen, canvas, label_maps, name, hist)}
    for name, rows in per_job.items():
        record = results["samplers"][name]
        ref = {(r["canvas"], r["mask"]): r for r in per_job[REFERENCE]}
        for key in ("fidelity", *CONTRASTS):
            if key not in rows[0]:
                continue
            values = [r[key] for r in rows]
            record[key] = _mean_ci(values)
            record[f"{key}_minus_reference"] = paired_bootstrap_ci(values, [ref[(r["canvas"], r["mask"])][key]
                                                                            for r in rows])
        for key in CONTRASTS:
            record[f"{key}_gap_to_real"] = record[key]["mean"] - results["real"][key]["mean"]
    results["per_patient"] = per_job
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sampler_quality.json", results)
    _plot(results, args.out / "sampler_quality.png")
    _print_table(results)
    print(f"-> {args.out / 'sampler_quality.json'}, {args.out / 'sampler_quality.png'}")


def _fmt(stat: dict | None) -> str:
    if not stat:
        return "n/a"
    return f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]"


def _print_table(results: dict) -> None:
    real = results["real"]
    print(f"real scars: scar-remote {real['scar_vs_remote']['mean']:.3f}, "
          f"scar-blood {real['scar_vs_blood']['mean']:.3f}")
    print(f"{'sampler':<12}{'NFE':>5}{'s/img b1':>9}{'s/img':>7}  {'fidelity':<26}{'vs ' + REFERENCE:<28}"
          f"{'scar-remote':<26}{'vs ' + REFERENCE:<28}{'scar-blood vs ' + REFERENCE:<28}n")
    for name, r in results["samplers"].items():
        print(f"{name:<12}{r['nfe']:>5}{r['seconds_one_slice']:>9.2f}{r['seconds_per_slice_batched']:>7.2f}  "
              f"{_fmt(r.get('fidelity')):<26}{_fmt(r.get('fidelity_minus_reference')):<28}"
              f"{_fmt(r.get('scar_vs_remote')):<26}{_fmt(r.get('scar_vs_remote_minus_reference')):<28}"
              f"{_fmt(r.get('scar_vs_blood_minus_reference')):<28}{r['patients']}")


def _plot(results: dict, path: Path) -> None:
    keys = [k for k in ("fidelity", "scar_vs_remote", "scar_vs_blood") if k in next(iter(results["samplers"].values()))]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.2 * (len(keys) + 1), 3.6))
    families: dict[str, list[tuple[str, dict]]] = {}
    for name, r in results["samplers"].items():
        families.setdefault(name.split(":")[0], []).append((name, r))
    for ax, key in zip(axes, [*keys, "seconds_one_slice"], strict=True):
        for family, members in families.items():
            members = sorted(members, key=lambda m: m[1]["nfe"])
            x = [m[1]["nfe"] for m in members]
            if key == "seconds_one_slice":
                ax.plot(x, [m[1][key] for m in members], "o-", label=family)
                continue
            y = np.array([m[1][key]["mean"] for m in members])
            err = np.array([[y[j] - m[1][key]["low"], m[1][key]["high"] - y[j]] for j, m in enumerate(members)]).T
            ax.errorbar(x, y, yerr=err, fmt="o-" if family != "repaint" else "s", capsize=3, label=family)
        if key in CONTRASTS:
            ax.axhline(results["real"][key]["mean"], color="k", ls="--", lw=1, label="real scars")
        ax.set_xscale("log")
        ticks = sorted({r["nfe"] for r in results["samplers"].values()})
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if key == "seconds_one_slice":
            ax.set_yscale("log")
        ax.set_xlabel("network calls per image (NFE)")
        ax.set_title({"fidelity": "judge Dice (95% CI)", "scar_vs_remote": "scar - remote myocardium",
                      "scar_vs_blood": "scar - blood pool",
                      "seconds_one_slice": f"s / {results['crop_px']} px slice (batch 1)"}[key])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"samplers on one generator (step {results['train_step']}), {len(results['canvases'])} canvases "
                 f"x {results['masks_per_canvas']} masks, {results['threads']} threads", y=1.04)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
