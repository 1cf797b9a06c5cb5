"""`claim experiment`: the four-arm study (real only, LeFusion, SMILE, claim) -> metrics.json + report.html."""

from __future__ import annotations

import argparse

from claim.cli.common import (
    SEED,
    THREADS,
    add_config_file,
    add_orientation,
    add_overwrite,
    build_config,
    explicit,
    first_given,
    integer,
    saved_run,
)
from claim.errors import ClaimError
from claim.experiment.config import ExperimentConfig, experiment_preset
from claim.experiment.crossval import run_crossval
from claim.experiment.study import run_experiment
from claim.generator.condition import HIST_RULES
from claim.runtime import PRECISIONS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment", help="run the study: segmenters trained with each kind of synthetic data, tested on held-out data"
    )
    parser.add_argument("--train-data", default=None,
                        help="training folder (any layout); validation comes from it (default with -c: the study's)")
    parser.add_argument("--test-data", default=None, help="held-out test folder: used only for the final metrics "
                                                          "(default with -c: the study's). Without it the study "
                                                          "cross-validates --train-data over --folds")
    parser.add_argument("--folds", type=integer(2, 1000), default=None, metavar="K",
                        help="patient-level cross-validation folds (stratified by normal/pathological) when no "
                             "--test-data is given (default: the preset's; standard uses 3)")
    parser.add_argument("--segmenter-seeds", type=integer(1, 1000), default=None, metavar="N",
                        help="segmenters per arm, trained with different seeds on the same data; their softmax "
                             "is averaged per test patient (default: the preset's)")
    parser.add_argument("--hist-rule", choices=HIST_RULES, default=None,
                        help="how every arm's painting and the joint run draw each canvas's histogram condition, "
                             "as `claim generate --hist-cluster` (default: the preset's)")
    parser.add_argument("-o", "--out", required=True, help="study folder (resumable: finished stages are skipped)")
    add_config_file(parser)
    parser.add_argument("--preset", default=None, metavar="quick|standard",
                        help="quick (phantom, <= 10 min on 2 cores) | standard (EMIDEC, 3-fold cross-validated, "
                             "77.5 min and 3 GB on 2 cores with --workers 2 --threads 1); default quick")
    parser.add_argument("-s", "--seed", type=SEED, default=None, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--threads", type=THREADS, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is faster on busy shared cores)")
    parser.add_argument("--workers", type=integer(1, 64), default=1, metavar="N",
                        help="run stages that do not depend on each other at once, in N processes of --threads "
                             "threads each (default 1: one stage at a time). On 2 CPU cores, --workers 2 --threads 1 "
                             "is the fast way: these small networks do more per second in two one-thread processes")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="fp32 | bf16 | auto for every network of every stage (default: the preset's; standard "
                             "uses auto: bf16 where the CPU or GPU has it fast)")
    add_orientation(parser)
    add_overwrite(parser)
    # Left out, these flags take the -c file's value, else the preset's: so no default is set here.
    for action in parser._actions:
        if action.dest in _CONFIG_FLAGS:
            action.default = None
    parser.set_defaults(run=run)


_CONFIG_FLAGS = ("orientation", "handedness", "precision", "folds", "segmenter_seeds", "hist_rule")


def run(args: argparse.Namespace) -> int:
    saved = saved_run(args, "experiment")
    if saved:
        config = build_config(str(args.config), lambda: ExperimentConfig.from_dict(saved["config"]))
    else:
        config = build_config("--preset", lambda: experiment_preset(args.preset or "quick"))
    train, test = first_given(args.train_data, saved.get("train_data")), first_given(args.test_data,
                                                                                     saved.get("test_data"))
    if test is not None and args.folds is not None:
        where = "--test-data" if args.test_data is not None else f"the study in {args.config} has a test folder"
        raise ClaimError(f"--folds cross-validates --train-data; {where}: give one or the other")
    overrides = explicit(args, _CONFIG_FLAGS)
    if args.test_data is not None:
        overrides["folds"] = 0  # an external test set: every arm trains once on all of --train-data
    config = build_config("--orientation/--precision/--folds/--segmenter-seeds/--hist-rule",
                          lambda: config.replace(**overrides))
    if train is None:
        raise ClaimError("experiment needs --train-data DIR (or -c STUDY/config.json)")
    common = {"seed": first_given(args.seed, saved.get("seed"), 0),
              "device": first_given(args.device, saved.get("device"), "cpu"), "threads": args.threads,
              "overwrite": args.overwrite, "workers": args.workers}
    if test is not None:
        metrics = run_experiment(train, test, args.out, config, **common)
    elif config.folds >= 2:
        metrics = run_crossval(train, args.out, config, **common)
    else:
        raise ClaimError(f"experiment needs --test-data DIR or --folds K >= 2 (the {config.name} preset's folds: "
                         f"{config.folds})")
    arms = ", ".join(f"{arm} {entry['infarct_dice']:.3f}" for arm, entry in metrics["arms"].items())
    print(f"experiment -> {args.out}/report.html  (infarct Dice: {arms})")
    return 0
