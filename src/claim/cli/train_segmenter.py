"""`claim train-segmenter`: train the scar segmenter on real (+ synthetic) patients."""

from __future__ import annotations

import argparse

from claim.segmentation.config import SEGMENTER_PRESETS, segmenter_preset
from claim.segmentation.train import train_segmenter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-segmenter", help="train the scar segmenter (DynUNet 2D) on real + synthetic")
    parser.add_argument("--data", required=True, action="append",
                        help="real data folder (any layout); repeat for several; validation is drawn from these")
    parser.add_argument("--synthetic", action="append", default=[],
                        help="folder written by `claim generate` (training only); repeat for several")
    parser.add_argument("-o", "--out", required=True, help="run folder (segmenter.pt, train_log.jsonl, curves.png)")
    parser.add_argument("--preset", choices=sorted(SEGMENTER_PRESETS), default="standard", help="model size preset")
    parser.add_argument("--steps", type=int, default=None, help="total optimisation steps (default: the preset's)")
    parser.add_argument("--val-every", type=int, default=None, help="validate every N steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    parser.add_argument("--synthetic-fraction", type=float, default=None,
                        help="fraction of each batch drawn from --synthetic (default: pool them with the real slices)")
    parser.add_argument("--val-patients", default=None, help="comma-separated patient ids to validate on")
    parser.add_argument("-s", "--seed", type=int, default=0, help="random seed (same seed, same run)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--resume", action="store_true", help="continue RUN/last.pt up to --steps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = segmenter_preset(args.preset, steps=args.steps, val_every=args.val_every, batch_size=args.batch_size,
                              synthetic_fraction=args.synthetic_fraction)
    val = [v.strip() for v in args.val_patients.split(",") if v.strip()] if args.val_patients else None
    result = train_segmenter(args.data, args.out, config, synthetic_dirs=args.synthetic, seed=args.seed,
                             device=args.device, val_patients=val, resume=args.resume)
    dice = result.best_metrics.get("infarct_dice")
    shown = f"{dice:.3f}" if isinstance(dice, float) else "n/a"
    print(f"segmenter at step {result.step}; best validation infarct Dice {shown} (step {result.best_step}) "
          f"-> {result.checkpoint}")
    return 0
