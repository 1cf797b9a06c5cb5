"""Sampler speed: NFE and s per 96x96 image for RePaint 5x5 / 2x2, DDIM 50 / 20 and dpm2:5, training steps/s, peak RSS.

Run by hand (not a test):
    python benchmarks/sampler_speed.py --model RUN/generator.pt --out bench.json --threads 2
Without --model a tiny model is trained for a few steps on a phantom cohort first (speed only, no quality).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from claim.generator.checkpoint import load_generator
from claim.generator.config import preset_config
from claim.generator.context import config_anatomy
from claim.generator.loss import dilate_mask
from claim.generator.sampling import inpaint, make_eps_fn, parse_sampler
from claim.generator.train import train_generator
from claim.labels import Label
from claim.phantom import PhantomConfig, write_phantom_cohort

SAMPLERS = ("repaint:5x5", "repaint:2x2", "ddim:50", "ddim:20", "dpm2:5")


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="generator checkpoint (else a tiny model is trained)")
    parser.add_argument("--out", default="sampler_speed.json", help="results JSON")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated samplers")
    parser.add_argument("--train-steps", type=int, default=5, help="steps of the tiny model when no --model")
    parser.add_argument("--crop", type=int, default=96, help="image side for the tiny model (default 96)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "samplers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            data = Path(tmp) / "phantom"
            write_phantom_cohort(data, 4, seed=0, config=PhantomConfig(shape=(128, 128)), progress=False)
            config = preset_config("tiny", crop_size=args.crop, steps=args.train_steps)
            run = train_generator(data, Path(tmp) / "run", config, seed=0, progress=False)
            results["train_steps_per_s"] = len(run.losses) / run.seconds
            results["train_note"] = f"tiny preset at {args.crop}px, batch {config.batch_size}, incl. data loading"
            model_path = run.checkpoint
        else:
            results.update(_logged_training_speed(Path(model_path)))
        gen = load_generator(model_path)
        cfg = gen.config
        results["model"] = {"path": str(args.model or "tiny (trained here)"), "mode": str(cfg.mode),
                            "prediction": cfg.prediction, "channels": list(cfg.channels), "crop": cfg.crop_size,
                            "T": cfg.timesteps,
                            "params": sum(p.numel() for p in gen.model.parameters())}
        g = torch.Generator().manual_seed(0)
        size = cfg.crop_size
        known = torch.rand(1, 1, size, size, generator=g) * 2 - 1
        lesion = torch.zeros(1, 1, size, size, dtype=torch.bool)
        lesion[..., size // 3 : size // 2, size // 3 : size // 2] = True
        inpaint_mask = dilate_mask(lesion, cfg.boundary_px)
        hist = torch.from_numpy(gen.hist_centres[:1])
        labels = dilate_mask(lesion, 4).long() * Label.MYOCARDIUM  # a myocardium ring around the lesion
        labels[lesion] = Label.INFARCT
        eps_fn = make_eps_fn(gen.model, cfg.mode, known, inpaint_mask, config_anatomy(labels, cfg), hist,
                             schedule=gen.schedule, prediction=cfg.prediction)
        with torch.no_grad():  # warm-up: the first forward pays one-off kernel/allocator set-up
            eps_fn(known, torch.zeros(1, dtype=torch.long))
        for name in args.samplers.split(","):
            spec = parse_sampler(name)
            t0 = time.perf_counter()
            _, calls = inpaint(eps_fn, gen.schedule, known, inpaint_mask, spec, torch.Generator().manual_seed(1))
            seconds = time.perf_counter() - t0
            results["samplers"][str(spec)] = {"nfe": calls, "seconds_per_image": seconds,
                                              "ms_per_nfe": 1000 * seconds / calls}
    results["peak_rss_mib"] = _peak_rss_mib()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'sampler':<14}{'NFE':>6}{'s/image':>10}{'ms/NFE':>9}")
    for name, r in results["samplers"].items():
        print(f"{name:<14}{r['nfe']:>6}{r['seconds_per_image']:>10.2f}{r['ms_per_nfe']:>9.1f}")
    if "train_steps_per_s" in results:
        print(f"training: {results['train_steps_per_s']:.2f} steps/s ({results['train_note']})")
    print(f"peak RSS: {results['peak_rss_mib']:.0f} MiB -> {args.out}")
    return 0


def _logged_training_speed(checkpoint: Path) -> dict:
    """Training steps/s of a given model, from the ``train_log.jsonl`` beside its checkpoint (if present)."""
    log_path = checkpoint.parent / "train_log.jsonl"
    if not log_path.is_file():
        return {}
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    timed = [r for r in records if "loss" in r and "seconds" in r]
    if len(timed) < 2:
        return {}
    steps = timed[-1]["step"] - timed[0]["step"]
    seconds = timed[-1]["seconds"] - timed[0]["seconds"]
    return {"train_steps_per_s": steps / seconds,
            "train_note": f"from {log_path} (steps {timed[0]['step']}-{timed[-1]['step']} of that run)"}


if __name__ == "__main__":
    sys.exit(main())
