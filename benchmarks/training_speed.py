"""Training and sampling speed, fp32 against bf16 autocast, in one run (read the ratios; absolute times drift).

Segmenter (standard DynUNet, batch 8): steps/s on the full 256 px slice (no localiser) and of the standard
cascade (64 px localiser + 128 px LV-centred ROI), fp32 and bf16. Generator (standard MONAI diffusion U-Net, 96 px,
batch 8): training steps/s fp32 and bf16, and sampling s/image at the same NFE. Real trainer steps (augmentation,
loss, backward, optimizer) on phantom slices. Prints a table, saves JSON.

    python benchmarks/training_speed.py --threads 2 --out outputs/benchmarks/training_speed.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.generator.config import preset_config  # noqa: E402
from claim.generator.data import build_training_set  # noqa: E402
from claim.generator.inpaint import inpaint_patient  # noqa: E402
from claim.generator.train import GeneratorTrainer  # noqa: E402
from claim.phantom import PhantomConfig, make_phantom_cohort  # noqa: E402
from claim.runtime import bf16_supported  # noqa: E402
from claim.segmentation.config import segmenter_preset  # noqa: E402
from claim.segmentation.data import training_slices  # noqa: E402
from claim.segmentation.train import SegmenterTrainer  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(step, warmup: int, steps: int) -> float:
    for s in range(warmup):
        step(s)
    start = time.perf_counter()
    for s in range(warmup, warmup + steps):
        step(s)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per case (after 2 warm-up steps)")
    parser.add_argument("--nfe", type=int, default=20, help="DDIM steps of the sampling comparison")
    parser.add_argument("--sampling-repeats", type=int, default=5, help="timed sampling calls (the median counts)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "training_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if not bf16_supported(device):
        print("note: this CPU has no fast bf16 (AVX-512 BF16 / AMX); bf16 rows show emulated speed")
    cases = make_phantom_cohort(6, seed=0, config=PhantomConfig(shape=(256, 256), spacing_mm=1.4))
    patients = [c.patient for c in cases]
    results: dict = {"threads": args.threads, "bf16_hardware": bf16_supported(device), "segmenter": {},
                     "generator": {}}

    # Full slice: one network on the whole 256 px slice. ROI: the cascade (64 px localiser + 128 px LV ROI).
    for crop, localiser, label in ((256, 0, "full slice 256 px"), (128, 64, "cascade, ROI 128 px")):
        for precision in ("fp32", "bf16"):
            config = segmenter_preset("standard", crop_size=crop, localiser_size=localiser)
            trainer = SegmenterTrainer(config, training_slices(patients, config), [], seed=0, precision=precision)
            rate = _rate(trainer.step, 2, args.steps)
            results["segmenter"][f"{crop}/{precision}"] = {"steps_per_s": rate, "what": label}
            print(f"segmenter {label:18s} {precision}: {rate:.3f} steps/s")

    gen_config = preset_config("standard")
    data = build_training_set([p for p in patients if p.has_infarct], gen_config)
    for precision in ("fp32", "bf16"):
        trainer = GeneratorTrainer(gen_config, data, seed=0, precision=precision)
        rate = _rate(trainer.step, 2, args.steps)
        sampler = trainer.sampler(Path("benchmark.pt"))
        source = next(p for p in patients if p.has_infarct)
        rng = np.random.default_rng(0)
        hist = trainer.hist_centres[0]
        spec = f"ddim:{args.nfe}"
        inpaint_patient(sampler, source, source.label_maps, sampler=spec, hist=hist, guidance=1.0,
                        torch_generator=torch.Generator().manual_seed(0))  # warm-up
        times = []
        for _ in range(args.sampling_repeats):  # the median of a few calls: one call is at the mercy of load spikes
            start = time.perf_counter()
            _, info = inpaint_patient(sampler, source, source.label_maps, sampler=spec, hist=hist, guidance=1.0,
                                      torch_generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
            times.append(time.perf_counter() - start)
        per_image = float(np.median(times)) / max(len(info["slices"]), 1)
        results["generator"][precision] = {"train_steps_per_s": rate, "sample_s_per_image": per_image,
                                           "nfe": args.nfe, "images_per_batch": len(info["slices"])}
        print(f"generator 96 px {precision}: {rate:.3f} train steps/s, {per_image:.3f} s/image at {args.nfe} NFE")

    seg, gen = results["segmenter"], results["generator"]
    results["ratios"] = {
        "segmenter_bf16_over_fp32_full": seg["256/bf16"]["steps_per_s"] / seg["256/fp32"]["steps_per_s"],
        "segmenter_bf16_over_fp32_crop": seg["128/bf16"]["steps_per_s"] / seg["128/fp32"]["steps_per_s"],
        "segmenter_crop_over_full_fp32": seg["128/fp32"]["steps_per_s"] / seg["256/fp32"]["steps_per_s"],
        "generator_train_bf16_over_fp32": gen["bf16"]["train_steps_per_s"] / gen["fp32"]["train_steps_per_s"],
        "generator_sampling_bf16_over_fp32": gen["fp32"]["sample_s_per_image"] / gen["bf16"]["sample_s_per_image"],
    }
    results["peak_rss_mib"] = _peak_rss_mib()
    for key, value in results["ratios"].items():
        print(f"{key}: {value:.2f}x")
    print(f"peak RSS {results['peak_rss_mib']:.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
