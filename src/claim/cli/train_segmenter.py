"""`claim train-segmenter`: train the scar segmenter on real (+ synthetic) patients."""

from __future__ import annotations

import argparse
from pathlib import Path

from claim.cli.common import (
    BATCH,
    COUNT,
    STEPS,
    add_config_file,
    add_run_flags,
    build_config,
    explicit,
    first_given,
    integer,
    number,
    saved_run,
)
from claim.config import read_run_config
from claim.errors import ClaimError
from claim.segmentation.config import (
    DICE_TARGETS,
    LR_SCHEDULES,
    MAX_CONTEXT_SLICES,
    MAX_MEMBERS,
    SEGMENTER_PRESETS,
    SegmenterConfig,
    segmenter_preset,
)
from claim.segmentation.run_files import SNAPSHOT_DIR, list_snapshots
from claim.segmentation.train import train_segmenter

COMMAND = "train-segmenter"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(COMMAND, help="train the scar segmenter (DynUNet 2D) on real + synthetic")
    parser.add_argument("--data", action="append", default=None,
                        help="real data folder (any layout); repeat for several; validation is drawn from these "
                             "(default with -c: the run's)")
    parser.add_argument("--synthetic", action="append", default=None,
                        help="folder written by `claim generate` (training only); repeat for several "
                             "(default with -c: the run's)")
    parser.add_argument("-o", "--out", required=True,
                        help="run folder (segmenter.pt, train_log.jsonl, curves.png; snapshots/ with --snapshot-every)")
    add_config_file(parser)
    parser.add_argument("--preset", choices=sorted(SEGMENTER_PRESETS), default=None,
                        help="model size preset (default standard)")
    parser.add_argument("--steps", type=STEPS, default=None, help="total optimisation steps (default: the preset's)")
    parser.add_argument("--val-every", type=COUNT, default=None, help="validate every N steps (default: the preset's)")
    parser.add_argument("--batch-size", type=BATCH, default=None, help="override the preset's batch size")
    parser.add_argument("--synthetic-fraction", type=number(0.0, 1.0, hi_open=True), default=None,
                        help="fraction of each batch drawn from --synthetic (default: pool them with the real slices)")
    parser.add_argument("--lr", type=number(0.0, 1.0, lo_open=True), default=None,
                        help="peak AdamW learning rate (default: the preset's)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                        help="poly (nnU-Net decay to 0 at --steps) or constant (default: the preset's)")
    parser.add_argument("--lr-warmup", type=STEPS, default=None, metavar="STEPS",
                        help="ramp the learning rate up linearly over the first STEPS steps (default: the preset's)")
    parser.add_argument("--foreground-fraction", type=number(0.0, 1.0), default=None,
                        help="share of each real batch drawn from scar-bearing slices (default: the preset's)")
    parser.add_argument("--context-slices", type=integer(0, MAX_CONTEXT_SLICES), default=None,
                        metavar="K", help="give the segmenter K neighbouring slices on each side as extra channels "
                                          f"(2.5D, 0-{MAX_CONTEXT_SLICES}; default: the preset's)")
    parser.add_argument("--roi-jitter", type=integer(0, 64), default=None, metavar="PX",
                        help="cut training ROIs up to PX pixels off the heart's centre, so the segmenter tolerates "
                             "the localiser's error (default: the preset's)")
    parser.add_argument("--refine-roi", action=argparse.BooleanOptionalAction, default=None,
                        help="at prediction, re-centre the ROI on the heart found in the first window "
                             "(default: the preset's)")
    parser.add_argument("--dice-over", choices=DICE_TARGETS, default=None,
                        help="the loss's Dice term over each class (classes) or over the nested regions the EMIDEC "
                             "metrics score, myocardium 2-4, infarct 3-4, MVO 4, plus the cavity (regions) "
                             "(default: the preset's)")
    parser.add_argument("--ema-decay", type=number(0.0, 1.0, hi_open=True), default=None,
                        help="weight EMA decay; validation and segmenter.pt use the average, the log also scores "
                             "the online weights (0 = off; default: the preset's)")
    parser.add_argument("--members", type=integer(1, MAX_MEMBERS), default=None, metavar="N",
                        help="train N segmenters (seeds SEED..SEED+N-1, the same validation patients) and "
                             "save their ensemble: predictions average the members' softmax (default: the "
                             "preset's)")
    parser.add_argument("--member-workers", type=integer(1, MAX_MEMBERS), default=None, metavar="N",
                        help="train up to N members at once in worker processes that share this process's CPU "
                             "threads (1: one after another; default: on a CPU as many as the members and threads "
                             "allow, 2 one-thread members on 2 cores train faster than 2 two-thread members in turn)")
    parser.add_argument("--snapshot-every", type=STEPS, default=None, metavar="N",
                        help="also keep the weights segmenter.pt would hold every N steps and at the last, as "
                             "RUN/snapshots/step_<STEP>.pt (e.g. step_000250.pt; an ensemble's folder combines its "
                             "members'), to score a run without validation patients along its course afterwards; "
                             "nothing selects among them (0 = none, the default)")
    parser.add_argument("--val-patients", default=None, help="comma-separated patient ids to validate on")
    parser.add_argument("--val-fraction", type=number(0.0, 1.0, hi_open=True), default=None,
                        help="share of the real patients held out for validation when --val-patients is not given; "
                             "0 trains on all of them and keeps the last step's weights, for a final model once "
                             "the recipe was chosen on validation patients (default: the preset's)")
    add_run_flags(parser, "continue RUN/last.pt up to --steps (default: the run's; a killed run resumes exactly; "
                          "with the poly schedule a longer --steps reshapes the decay from where it stands)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    saved = saved_run(args, COMMAND)
    changes = explicit(args, ("steps", "val_every", "batch_size", "synthetic_fraction", "lr", "lr_schedule",
                              "lr_warmup", "foreground_fraction", "context_slices", "roi_jitter", "refine_roi",
                              "dice_over", "ema_decay", "val_fraction", "members",
                              "snapshot_every"))
    if args.resume and not saved and (Path(args.out) / "config.json").is_file():
        # A resume continues the run as it was: what may change on a resume and is not given again (the target
        # steps, the snapshot cadence) keeps the run's value, not the preset's.
        recorded = read_run_config(Path(args.out) / "config.json", COMMAND).get("config")
        if not isinstance(recorded, dict):
            raise ClaimError(f"{Path(args.out) / 'config.json'}: no segmenter config recorded (key 'config')")
        changes = {**{k: recorded[k] for k in SegmenterConfig.RESUMABLE if k in recorded}, **changes}

    def make() -> SegmenterConfig:
        if saved:
            return SegmenterConfig.from_dict(saved["config"]).replace(**changes)
        return segmenter_preset(args.preset or "standard", **changes)

    config = build_config(str(args.config) if saved else "train-segmenter", make)
    val = [v.strip() for v in args.val_patients.split(",") if v.strip()] if args.val_patients else None
    data = first_given(args.data, saved.get("real_dirs"))
    if not data:
        raise ClaimError("train-segmenter needs --data DIR (or -c RUN/config.json that names one)")
    result = train_segmenter(data, args.out, config, synthetic_dirs=first_given(args.synthetic,
                                                                                saved.get("synthetic_dirs"), []),
                             seed=first_given(args.seed, saved.get("seed"), 0),
                             device=first_given(args.device, saved.get("device"), "cpu"),
                             val_patients=first_given(val, saved.get("val_patients_requested")), resume=args.resume,
                             overwrite=args.overwrite,
                             precision=first_given(args.precision, saved.get("precision"), "fp32"),
                             member_workers=first_given(args.member_workers, saved.get("member_workers_requested")))
    what = f"ensemble of {config.members} segmenters" if config.members > 1 else "segmenter"
    snapshots = list_snapshots(args.out)
    if snapshots:
        print(f"{len(snapshots)} weight snapshot(s), steps {min(snapshots)}-{max(snapshots)} -> "
              f"{Path(args.out) / SNAPSHOT_DIR}")
    if not result.best_metrics:
        print(f"{what} at step {result.step}; no validation patients, the last step's weights -> "
              f"{result.checkpoint}")
        return 0
    dice = result.best_metrics.get("infarct_dice")
    shown = f"{dice:.3f}" if isinstance(dice, float) else "n/a"
    # An ensemble's score is of its members' kept weights together, not of one best step.
    scored = "validation" if config.members > 1 else "best validation"
    kept = "" if config.members > 1 else f" (step {result.best_step})"
    print(f"{what} at step {result.step}; {scored} infarct Dice {shown}{kept} -> {result.checkpoint}")
    return 0
