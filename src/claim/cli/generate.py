"""`claim generate`: paint synthetic scar into normal patients inside `claim masks` label maps."""

from __future__ import annotations

import argparse

from claim.cli.common import COUNT, SEED, add_overwrite, add_precision, number
from claim.stages.generate import generate_scars, parse_shard


def _shard_type(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="synthesise scar images from a generator and masks")
    parser.add_argument("--model", required=True, help="generator checkpoint (RUN/generator.pt)")
    parser.add_argument("--data", required=True, help="folder of normal source patients")
    parser.add_argument("--masks", required=True, help="output folder of `claim masks` (masks.json + label maps)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--sampler", default=None, help="ddim:K, ddpm:K (stochastic DDIM), repaint:LxN, dpmO:K "
                        "(DPM-Solver++ of order O) or unipcO:K (default: the checkpoint's; dpm2:5 for claim models)")
    parser.add_argument("--hist-cluster", default="matched",
                        help="histogram centre index K, or drawn per mask: matched (default: a centre that suits "
                             "the canvas's intensity level), mapped (matched, then moved into the canvas's "
                             "intensity frame) or random (uniform)")
    parser.add_argument("-s", "--seed", type=SEED, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--limit", type=COUNT, default=None, help="use at most N masks")
    parser.add_argument("--guidance", type=number(0.0, 100.0), default=1.0,
                        help="classifier-free guidance scale (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--format", dest="output_format", choices=["layout", "nnunet"], default="layout",
                        help="mirror the source layout (default) or write an nnU-Net v2 raw dataset")
    parser.add_argument("--include-real", default=None, help="with --format nnunet: also add these real patients")
    parser.add_argument("--shard", type=_shard_type, default=None, metavar="I/N",
                        help="process only mask entries I, I+N, I+2N, ... (0-based; same files as the unsharded run "
                        "for those entries; record in generation_shard<I>of<N>.json)")
    add_overwrite(parser)
    add_precision(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = generate_scars(args.model, args.data, args.masks, args.out, sampler=args.sampler,
                            hist_cluster=args.hist_cluster, seed=args.seed, limit=args.limit,
                            guidance=args.guidance, device=args.device, output_format=args.output_format,
                            include_real=args.include_real, shard=args.shard, overwrite=args.overwrite,
                            precision=args.precision or "fp32")
    print(f"{len(result.entries)} synthetic images -> {result.out_dir}")
    return 0
