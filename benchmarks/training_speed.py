"""Training and sampling speed, fp32 against bf16 autocast, in one run (read the ratios; absolute times drift).

Segmenter (standard DynUNet, batch 8): steps/s on the full 256 px slice (no localiser) and of the standard
cascade (64 px localiser + 128 px LV-centred ROI), fp32 and bf16. Generator (standard MONAI diffusion U-Net, 96 px,
batch 8): training steps/s fp32 and bf16, and sampling s/image at the same NFE. Real trainer steps (augmentation,
loss, backward, optimizer) on phantom slices, each case's fp32 and bf16 trainers timed in alternating blocks after
a warm-up. Prints a table, saves JSON.

    python benchmarks/training_speed.py --threads 2 --out outputs/benchmarks/training_speed.json
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.io import write_json  # noqa: E402
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


def _rates(steps_of: dict, warmup: int, steps: int, blocks: int) -> dict[str, float]:
    """Steps/s of each trainer's ``step``: ``warmup`` untimed steps each, then ``blocks`` rounds in which every
    trainer runs ``steps`` timed steps in turn. fp32 keeps speeding up over its first tens of steps (allocator and
    oneDNN caches), and machine load drifts: alternating blocks exposes every precision to both alike."""
    for step in steps_of.values():
        for s in range(warmup):
            step(s)
    spent = dict.fromkeys(steps_of, 0.0)
    for block in range(blocks):
        for name, step in steps_of.items():
            first = warmup + block * steps
            start = time.perf_counter()
            for s in range(first, first + steps):
                step(s)
            spent[name] += time.perf_counter() - start
    return {name: blocks * steps / seconds for name, seconds in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per block and case")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per case before timing")
    parser.add_argument("--blocks", type=int, default=3, help="alternating fp32/bf16 blocks per case")
    parser.add_argument("--nfe", type=int, default=20, help="DDIM steps of the sampling comparison")
    parser.add_argument("--sampling-repeats", type=int, default=5, help="timed sampling calls (the median counts)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "training_speed.json")
    args = parser.parse_args(argv)
    if min(args.steps, args.blocks, args.sampling_repeats) < 1 or args.warmup < 0:
        parser.error("--steps, --blocks and --sampling-repeats must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if not bf16_supported(device):
        print("note: this CPU has no fast bf16 (AVX-512 BF16 / AMX); bf16 rows show emulated speed")
    cases = make_phantom_cohort(6, seed=0, config=PhantomConfig(shape=(256, 256), spacing_mm=1.4))
    patients = [c.patient for c in cases]
    results: dict = {"threads": args.threads, "steps": args.steps, "warmup": args.warmup, "blocks": args.blocks,
                     "bf16_hardware": bf16_supported(device), "segmenter": {},
                     "generator": {}}

    # Full slice: one network on the whole 256 px slice. ROI: the cascade (64 px localiser + 128 px LV ROI).
    for crop, localiser, label in ((256, 0, "full slice 256 px"), (128, 64, "cascade, ROI 128 px")):
        config = segmenter_preset("standard", crop_size=crop, localiser_size=localiser,
                                  roi_jitter=0 if localiser == 0 else None, members=1)  # one network's step
        slices = training_slices(patients, config)
        trainers = {precision: SegmenterTrainer(config, slices, [], seed=0, precision=precision)
                    for precision in ("fp32", "bf16")}
        rates = _rates({k: t.step for k, t in trainers.items()}, args.warmup, args.steps, args.blocks)
        for precision, rate in rates.items():
            results["segmenter"][f"{crop}/{precision}"] = {"steps_per_s": rate, "what": label}
            print(f"segmenter {label:18s} {precision}: {rate:.3f} steps/s")
        del trainers

    gen_config = preset_config("standard")
    data = build_training_set([p for p in patients if p.has_infarct], gen_config)
    gen_trainers = {precision: GeneratorTrainer(gen_config, data, seed=0, precision=precision)
                    for precision in ("fp32", "bf16")}
    gen_rates = _rates({k: t.step for k, t in gen_trainers.items()}, args.warmup, args.steps, args.blocks)
    source = next(p for p in patients if p.has_infarct)
    spec = f"ddim:{args.nfe}"
    samplers = {precision: trainer.sampler(Path("benchmark.pt")) for precision, trainer in gen_trainers.items()}
    hists = {precision: trainer.hist_centres[0] for precision, trainer in gen_trainers.items()}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {precision: [] for precision in samplers}
    n_images = 1
    for repeat in range(args.sampling_repeats + 1):  # the first round warms up; the median of the rest counts
        seed = int(rng.integers(1 << 30))
        for precision, sampler in samplers.items():  # alternating, so load drift hits both alike
            start = time.perf_counter()
            _, info = inpaint_patient(sampler, source, source.label_maps, sampler=spec, hist=hists[precision],
                                      guidance=1.0, torch_generator=torch.Generator().manual_seed(seed))
            if repeat:
                times[precision].append(time.perf_counter() - start)
            n_images = max(len(info["slices"]), 1)
    for precision, rate in gen_rates.items():
        per_image = float(np.median(times[precision])) / n_images
        results["generator"][precision] = {"train_steps_per_s": rate, "sample_s_per_image": per_image,
                                           "nfe": args.nfe, "images_per_batch": n_images}
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
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
