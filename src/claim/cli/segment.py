"""`claim segment`: predict label maps for a folder with a trained segmenter, mirroring the input layout."""

from __future__ import annotations

import argparse

from claim.cli.common import add_overwrite, add_precision
from claim.segmentation.predict import segment_folder


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("segment", help="segment a data folder with a trained segmenter")
    parser.add_argument("--model", required=True, help="segmenter checkpoint (RUN/segmenter.pt)")
    parser.add_argument("--data", required=True, help="data folder (any layout; labels not needed)")
    parser.add_argument("-o", "--out", required=True, help="output folder (label maps mirroring the input layout)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--postprocess", action=argparse.BooleanOptionalAction, default=None,
                        help="anatomical post-processing: one myocardium per slice, MVO inside infarct, cavity "
                             "inside myocardium (default: the model's, on for claim-trained segmenters)")
    add_overwrite(parser)
    add_precision(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    written = segment_folder(args.model, args.data, args.out, device=args.device, progress=True,
                             overwrite=args.overwrite, precision=args.precision or "fp32",
                             postprocess=args.postprocess)
    print(f"{len(written)} label files -> {args.out}")
    return 0
