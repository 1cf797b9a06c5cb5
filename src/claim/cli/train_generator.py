"""`claim train-generator`: train the lesion-focused diffusion generator on pathological slices."""

from __future__ import annotations

import argparse

from claim.generator.config import Mode, preset_config
from claim.generator.train import train_generator


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-generator", help="train the scar generator (claim or lefusion mode)")
    parser.add_argument("--data", required=True, help="data folder (any layout); its slices with scar are used")
    parser.add_argument("-o", "--out", required=True, help="run folder (generator.pt, train_log.jsonl, samples/)")
    parser.add_argument("--mode", type=Mode, choices=list(Mode), default=Mode.CLAIM,
                        help="claim (context-conditioned, DDIM) or lefusion (faithful baseline, RePaint)")
    parser.add_argument("--preset", choices=["tiny", "standard"], default="standard", help="model size preset")
    parser.add_argument("--steps", type=int, default=2000, help="total optimisation steps (default 2000)")
    parser.add_argument("-s", "--seed", type=int, default=0, help="random seed (same seed, same run)")
    parser.add_argument("--resume", action="store_true", help="continue RUN/generator.pt up to --steps")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--sample-every", type=int, default=0, help="write a sample grid every N steps (0: never)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="write the checkpoint every N steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = {"mode": args.mode, "steps": args.steps}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    config = preset_config(args.preset, **overrides)
    result = train_generator(args.data, args.out, config, seed=args.seed, resume=args.resume,
                             device=args.device, sample_every=args.sample_every,
                             checkpoint_every=args.checkpoint_every)
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    print(f"generator at step {result.step}{last} -> {result.checkpoint}")
    return 0
