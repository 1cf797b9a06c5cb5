"""`claim train-joint`: train the generator and the segmenter together (the segmenter's loss reaches the generator)."""

from __future__ import annotations

import argparse
from pathlib import Path

from claim.cli.common import (
    COUNT,
    add_config_file,
    add_run_flags,
    build_config,
    explicit,
    first_given,
    integer,
    number,
    saved_run,
)
from claim.errors import ClaimError
from claim.generator.config import GeneratorConfig, preset_config
from claim.joint.config import (
    CONSISTENCY_BOUNDS,
    FEEDBACK_STARTS,
    HISTOGRAM_DISTANCES,
    JOINT_PRESETS,
    JointConfig,
    joint_preset,
)
from claim.joint.train import train_joint
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.smile.prior import Prior, load_prior

COMMAND = "train-joint"
_JOINT_FLAGS = ("steps", "lambda_consistency", "t_max", "generator_warmup", "segmenter_warmup", "refresh_every",
                "lambda_histogram", "histogram_distance", "feedback_start", "consistency_bound",
                "consistency_border_px", "lambda_feature")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(COMMAND, help="train generator and segmenter jointly (real feedback)")
    parser.add_argument("--data", default=None, help="data folder (any layout) with normal and pathological "
                                                     "patients (default with -c: the run's)")
    parser.add_argument("-o", "--out", required=True, help="run folder (generator.pt, segmenter.pt, train_log.jsonl)")
    add_config_file(parser)
    parser.add_argument("--preset", choices=sorted(JOINT_PRESETS), default=None,
                        help="model sizes and schedule preset for G, S and the joint loop (default standard)")
    parser.add_argument("--steps", type=COUNT, default=None, help="total steps, warm-ups included")
    parser.add_argument("--lambda", dest="lambda_consistency", type=number(0.0), default=None,
                        help="weight of the segmentation-consistency term in G's loss (default 0.1)")
    parser.add_argument("--lambda-histogram", type=number(0.0), default=None,
                        help="weight of the histogram guard: painted scar keeps the histogram it was conditioned on "
                             "(default 0: off)")
    parser.add_argument("--histogram-distance", choices=HISTOGRAM_DISTANCES, default=None,
                        help="how the guard measures painted scar against its condition: soft (soft histograms of "
                             "the clamped estimate) or quantile (sorted values of the unclamped estimate against "
                             "the condition's quantiles; also pulls near-white scar down) (default soft)")
    parser.add_argument("--feedback-start", choices=FEEDBACK_STARTS, default=None,
                        help="what the feedback terms noise: canvas (the scar-free canvas) or painted (G's own "
                             "DDIM painting of it, so the terms judge the scar G paints) (default: the preset's; "
                             "standard: painted, tiny: canvas)")
    parser.add_argument("--lambda-feature", type=number(0.0), default=None,
                        help="weight of the feature term: S's decoder features over painted scar keep the mean and "
                             "spread of its features over real scar (default 0: off)")
    parser.add_argument("--consistency-bound", choices=CONSISTENCY_BOUNDS, default=None,
                        help="real: count only the consistency loss beyond what S loses on real scar; match: the "
                             "distance between the two, so scar easier than real costs as much as harder "
                             "(default none)")
    parser.add_argument("--consistency-border-px", type=integer(0), default=None,
                        help="leave the ring of pixels this close outside the scar out of the consistency term, so a "
                             "hard edge on the label earns nothing (default 0: every pixel counts)")
    parser.add_argument("--t-max", type=COUNT, default=None, help="largest noise level of the consistency term")
    parser.add_argument("--generator-warmup", type=integer(0), default=None, help="G-only diffusion steps first")
    parser.add_argument("--segmenter-warmup", type=integer(0), default=None, help="then S-only real steps")
    parser.add_argument("--refresh-every", type=COUNT, default=None, help="joint steps between buffer refreshes")
    parser.add_argument("--init-generator", type=Path, default=None, metavar="CKPT",
                        help="start G from this generator checkpoint (its config is used)")
    parser.add_argument("--prior", type=Path, default=None, metavar="FILE",
                        help="SMILE prior JSON for the canvases' masks (default: the shipped EMIDEC prior)")
    add_run_flags(parser, "continue RUN up to --steps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    saved = saved_run(args, COMMAND)
    changes = explicit(args, _JOINT_FLAGS)
    preset = args.preset or "standard"
    init_generator = first_given(args.init_generator, saved.get("init_generator"))

    def make() -> tuple[JointConfig, GeneratorConfig | None, SegmenterConfig]:
        if saved:
            generator = None if args.init_generator else GeneratorConfig.from_dict(saved["generator"])
            return (JointConfig.from_dict(saved["joint"]).replace(**changes), generator,
                    SegmenterConfig.from_dict(saved["segmenter"]))
        generator = None if init_generator else preset_config(preset)
        return joint_preset(preset, **changes), generator, segmenter_preset(preset)

    joint, generator, segmenter = build_config(str(args.config) if saved else COMMAND, make)
    if args.prior:
        prior = load_prior(args.prior)
    else:
        prior = build_config(f"{args.config}: prior", lambda: Prior.from_json(saved["prior"])) \
            if saved.get("prior") else None
    data = first_given(args.data, saved.get("data"))
    if data is None:
        raise ClaimError("train-joint needs --data DIR (or -c RUN/config.json that names one)")
    result = train_joint(data, args.out, joint=joint, generator=generator, segmenter=segmenter,
                         init_generator=init_generator, seed=first_given(args.seed, saved.get("seed"), 0),
                         device=first_given(args.device, saved.get("device"), "cpu"), resume=args.resume,
                         train_patients=saved.get("train_patients_requested"), smile_prior=prior,
                         overwrite=args.overwrite,
                         precision=first_given(args.precision, saved.get("precision"), "fp32"))
    last = result.history[-1] if result.history else {}
    losses = ", ".join(f"{k} {last[k]:.4f}" for k in ("diffusion_loss", "consistency_loss", "segmenter_loss")
                       if k in last)
    print(f"joint run done{': ' + losses if losses else ''} -> {result.generator_checkpoint}, "
          f"{result.segmenter_checkpoint}")
    return 0
