"""`claim train-generator`: train the lesion-focused diffusion generator on pathological slices."""

from __future__ import annotations

import argparse

from claim.cli.common import (
    BATCH,
    STEPS,
    add_config_file,
    add_run_flags,
    build_config,
    explicit,
    first_given,
    integer,
    saved_run,
)
from claim.errors import ClaimError
from claim.generator.config import PRESETS, GeneratorConfig, Mode, preset_config
from claim.generator.train import train_generator

COMMAND = "train-generator"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(COMMAND, help="train the scar generator (claim or lefusion mode)")
    parser.add_argument("--data", default=None,
                        help="data folder (any layout); its slices with scar are used (default with -c: the run's)")
    parser.add_argument("-o", "--out", required=True, help="run folder (generator.pt, train_log.jsonl, samples/)")
    add_config_file(parser)
    parser.add_argument("--mode", type=Mode, choices=list(Mode), default=None,
                        help="claim (context-conditioned, DDIM; default) or lefusion (faithful baseline, RePaint)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="model size preset (default standard)")
    parser.add_argument("--steps", type=STEPS, default=None, help="total optimisation steps (default 2000)")
    add_run_flags(parser, "continue RUN/generator.pt up to --steps")
    parser.add_argument("--sample-every", type=integer(0), default=None,
                        help="write a sample grid every N steps (0: never)")
    parser.add_argument("--checkpoint-every", type=integer(0), default=None,
                        help="write the checkpoint every N steps (default: a quarter of the run, at most 500)")
    parser.add_argument("--batch-size", type=BATCH, default=None, help="override the preset's batch size")
    parser.add_argument("--mvo-channel", dest="mvo_channel", action="store_const", const=True, default=None,
                        help="claim mode: give the network the MVO mask as one more context channel")
    parser.add_argument("--lesion-channel", dest="lesion_channel", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="claim mode: give the network the lesion mask (scar + MVO) as one more context channel, "
                             "so it knows where inside the blended region the scar ends (default: the preset's; "
                             "standard: on, tiny: off)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    saved = saved_run(args, COMMAND)

    def make() -> GeneratorConfig:
        if saved:
            config = GeneratorConfig.from_dict(saved["config"])
            config = config.with_mode(args.mode) if args.mode and args.mode != config.mode else config
        else:
            config = preset_config(args.preset or "standard", mode=args.mode or Mode.CLAIM)
        return config.replace(**explicit(args, ("steps", "batch_size", "mvo_channel", "lesion_channel")))

    config = build_config(str(args.config) if saved else "train-generator", make)
    data = first_given(args.data, saved.get("data"))
    if data is None:
        raise ClaimError("train-generator needs --data DIR (or -c RUN/config.json that names one)")
    result = train_generator(data, args.out, config, seed=first_given(args.seed, saved.get("seed"), 0),
                             resume=args.resume, device=first_given(args.device, saved.get("device"), "cpu"),
                             sample_every=first_given(args.sample_every, saved.get("sample_every"), 0),
                             checkpoint_every=first_given(args.checkpoint_every, saved.get("checkpoint_every")),
                             overwrite=args.overwrite,
                             precision=first_given(args.precision, saved.get("precision"), "fp32"))
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    print(f"generator at step {result.step}{last} -> {result.checkpoint}")
    return 0
