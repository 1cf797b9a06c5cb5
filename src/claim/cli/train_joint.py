"""`claim train-joint`: train the generator and the segmenter together (the segmenter's loss reaches the generator)."""

from __future__ import annotations

import argparse
from pathlib import Path

from claim.errors import ClaimError
from claim.generator.config import preset_config
from claim.joint.config import joint_preset
from claim.joint.train import train_joint
from claim.segmentation.config import segmenter_preset
from claim.smile.prior import load_prior


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-joint", help="train generator and segmenter jointly (real feedback)")
    parser.add_argument("--data", required=True, help="data folder (any layout) with normal and pathological patients")
    parser.add_argument("-o", "--out", required=True, help="run folder (generator.pt, segmenter.pt, train_log.jsonl)")
    parser.add_argument("--preset", choices=["tiny", "standard"], default="standard",
                        help="model sizes and schedule preset for G, S and the joint loop")
    parser.add_argument("--steps", type=int, default=None, help="total steps, warm-ups included")
    parser.add_argument("--lambda", dest="lambda_consistency", type=float, default=None,
                        help="weight of the segmentation-consistency term in G's loss (default 0.1)")
    parser.add_argument("--t-max", type=int, default=None, help="largest noise level of the consistency term")
    parser.add_argument("--generator-warmup", type=int, default=None, help="G-only diffusion steps first")
    parser.add_argument("--segmenter-warmup", type=int, default=None, help="then S-only real steps")
    parser.add_argument("--refresh-every", type=int, default=None, help="joint steps between buffer refreshes")
    parser.add_argument("--init-generator", type=Path, default=None, metavar="CKPT",
                        help="start G from this generator checkpoint (its config is used)")
    parser.add_argument("--prior", type=Path, default=None, metavar="FILE",
                        help="SMILE prior JSON for the canvases' masks (default: the shipped EMIDEC prior)")
    parser.add_argument("-s", "--seed", type=int, default=0, help="random seed (same seed, same run)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--resume", action="store_true", help="continue RUN up to --steps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("steps", "lambda_consistency", "t_max", "generator_warmup",
                                               "segmenter_warmup", "refresh_every") if getattr(args, k) is not None}
    try:
        joint = joint_preset(args.preset, **overrides)
    except ValueError as exc:
        raise ClaimError(str(exc)) from exc
    generator = None if args.init_generator else preset_config(args.preset)
    segmenter = segmenter_preset(args.preset)
    prior = load_prior(args.prior) if args.prior else None
    result = train_joint(args.data, args.out, joint=joint, generator=generator, segmenter=segmenter,
                         init_generator=args.init_generator, seed=args.seed, device=args.device, resume=args.resume,
                         smile_prior=prior)
    last = result.history[-1] if result.history else {}
    losses = ", ".join(f"{k} {last[k]:.4f}" for k in ("diffusion_loss", "consistency_loss", "segmenter_loss")
                       if k in last)
    print(f"joint run done{': ' + losses if losses else ''} -> {result.generator_checkpoint}, "
          f"{result.segmenter_checkpoint}")
    return 0
