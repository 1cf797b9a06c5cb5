"""`claim augment`: a labelled folder in, the same dataset plus synthetic scar patients out (one command)."""

from __future__ import annotations

import argparse

from claim.cli.common import SEED, STEPS, THREADS, add_orientation, add_overwrite, build_config, integer
from claim.runtime import PRECISIONS, torch_threads
from claim.smile.spec import Pattern
from claim.stages.augment import AUGMENT_FILE, FORMATS, AugmentConfig, run_augment

_DEFAULTS = AugmentConfig()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "augment",
        help="augment a labelled folder with synthetic scar patients (trains the generator if no --model)",
        description="Train the generator on DIR's scar slices (unless --model), fit the SMILE prior on DIR's scars, "
        "draw --per-patient masks on every normal patient, paint them, and write OUT: DIR's patients and the "
        f"synthetic ones in DIR's layout (or nnU-Net v2 raw), {AUGMENT_FILE} and preview.png. Default budget: "
        "~12 min on a 2-core CPU with fast bf16 (AVX-512 BF16), ~25-30 min on one without, a few minutes on a GPU.",
    )
    parser.add_argument("--data", required=True, help="labelled data folder (EMIDEC, nnU-Net raw or PNG layout)")
    parser.add_argument("-o", "--out", required=True, help="new or empty output folder (or this run's, with --resume)")
    parser.add_argument("--model", default=None, help="generator checkpoint (default: train one on --data first)")
    parser.add_argument("--per-patient", type=integer(1, 1000), default=_DEFAULTS.per_patient,
                        help=f"synthetic patients per normal patient (default {_DEFAULTS.per_patient})")
    parser.add_argument("--pattern", choices=[p.value for p in Pattern], default=_DEFAULTS.pattern,
                        help=f"SMILE scar pattern (default {_DEFAULTS.pattern})")
    parser.add_argument("--format", dest="output_format", choices=FORMATS, default=_DEFAULTS.output_format,
                        help="same: the input's layout (default); nnunet: nnU-Net v2 raw dataset")
    parser.add_argument("--sampler", default=None, help="ddim:K, ddpm:K, repaint:LxN, dpmO:K or unipcO:K (default: the "
                        "generator's, dpm2:5 for claim models)")
    parser.add_argument("--generator-steps", type=STEPS, default=_DEFAULTS.generator_steps,
                        help=f"training steps of the generator trained without --model "
                        f"(default {_DEFAULTS.generator_steps})")
    parser.add_argument("--mvo-channel", action=argparse.BooleanOptionalAction, default=None,
                        help="train the generator with the MVO mask as a context channel, so MVO is painted as the "
                             "dark core real MVO is (default; --no-mvo-channel paints it as scar, as runs before "
                             "this option did); not with --model, which brings its own")
    parser.add_argument("-s", "--seed", type=SEED, default=_DEFAULTS.seed, help="random seed (same seed, same files)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--threads", type=THREADS, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--precision", choices=PRECISIONS, default=_DEFAULTS.precision,
                        help="auto (default): bf16 autocast for the generator's training and painting where the CPU "
                             "or GPU has fast bf16 (weights stay fp32), else fp32; or fp32 | bf16")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    add_overwrite(parser)
    add_orientation(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = build_config("augment", lambda: AugmentConfig(
        per_patient=args.per_patient, pattern=args.pattern, output_format=args.output_format, seed=args.seed,
        sampler=args.sampler, generator_steps=args.generator_steps, orientation=args.orientation,
        handedness=str(args.handedness), precision=args.precision, mvo_channel=args.mvo_channel))
    with torch_threads(args.threads):
        result = run_augment(args.data, args.out, config, model=args.model, device=args.device, resume=args.resume,
                             overwrite=args.overwrite)
    minutes = result.record["timings_s"]["total_s"] / 60
    print(f"{result.n_real} real + {result.n_synthetic} synthetic patients ({result.record['sampler']['name']}, "
          f"{result.record['precision']}) "
          f"-> {result.out_dir} in {minutes:.1f} min")
    return 0
