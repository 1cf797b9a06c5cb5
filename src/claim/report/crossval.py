"""The cross-validated study's report: pooled arms with fold-stratified bootstrap intervals, a forest plot of every
arm minus real only (per fold and pooled), a per-patient scatter, the per-fold table, what the study can detect,
realism, and links to each fold's own report."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from claim import __version__  # noqa: E402
from claim.report.figures import figure_png_bytes  # noqa: E402
from claim.report.html import Report, score_text  # noqa: E402
from claim.report.sections import add_selection_section  # noqa: E402
from claim.report.study import ARM_TITLES, _ci  # noqa: E402

__all__ = ["forest_figure", "scatter_figure", "build_crossval_report", "write_crossval_report"]

_FOREST_METRICS = (("infarct_dice", "infarct Dice"), ("myocardium_dice", "myocardium Dice"), ("mvo_dice", "MVO Dice"))
_ARM_COLOURS = {"lefusion": "tab:blue", "smile": "tab:orange", "claim": "tab:green"}


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def forest_figure(metrics: dict) -> bytes:
    """Arm minus real only, one panel per metric: each fold's mean difference with its interval, then the pooled
    one (a diamond), per synthetic arm."""
    arms = [arm for arm in metrics["arms"] if arm != "real_only"]
    folds = metrics["per_fold"]
    rows = []
    for arm in arms:
        rows += [(arm, f"fold {f['fold']} (n={len(f['test_pathological'])})",
                  f["arms"][arm].get("ci95_minus_real_only", {}), False) for f in folds]
        rows.append((arm, f"pooled (n={metrics['arms'][arm]['n_patients']})",
                     metrics["arms"][arm].get("ci95_minus_real_only", {}), True))
    fig, axes = plt.subplots(1, len(_FOREST_METRICS), figsize=(4.0 * len(_FOREST_METRICS), 0.32 * len(rows) + 1.2),
                             sharey=True, squeeze=False)
    for ax, (key, title) in zip(axes[0], _FOREST_METRICS, strict=True):
        for y, (arm, _, cis, pooled) in enumerate(rows):
            ci = cis.get(key, {})
            mean = ci.get("mean")
            if not _finite(mean):
                continue
            low, high = ci.get("low"), ci.get("high")
            if _finite(low) and _finite(high):
                ax.plot([low, high], [y, y], color=_ARM_COLOURS.get(arm, "k"), lw=2.2 if pooled else 1.2)
            ax.plot(mean, y, "D" if pooled else "o", color=_ARM_COLOURS.get(arm, "k"), ms=7 if pooled else 4)
        ax.axvline(0, color="0.3", lw=0.8, ls="--")
        ax.set_title(f"Δ {title} vs real only", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(rows)))
    axes[0][0].set_yticklabels([f"{arm}: {label}" for arm, label, _, _ in rows], fontsize=7)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=90)


def scatter_figure(metrics: dict, key: str = "infarct_dice") -> bytes:
    """Per pathological test patient: real only (x) against each synthetic arm (y); above the diagonal the arm
    did better."""
    arms = [arm for arm in metrics["arms"] if arm != "real_only"]
    base = metrics["arms"]["real_only"]["per_patient"]
    fig, axes = plt.subplots(1, len(arms), figsize=(3.3 * len(arms), 3.4), squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        own = metrics["arms"][arm]["per_patient"]
        pairs = [(base[p][key], own[p][key]) for p in base if _finite(base[p][key]) and _finite(own[p][key])]
        if pairs:
            xs, ys = zip(*pairs, strict=True)
            ax.scatter(xs, ys, s=12, color=_ARM_COLOURS.get(arm, "k"), alpha=0.8)
        ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"real only {key.replace('_', ' ')}", fontsize=8)
        ax.set_ylabel(arm, fontsize=8)
        ax.set_title(ARM_TITLES.get(arm, arm), fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=90)


def _arms_table(report: Report, metrics: dict) -> None:
    keys = (("infarct_dice", "infarct"), ("myocardium_dice", "myocardium"), ("mvo_dice", "MVO"))
    header = ["arm"] + [f"{name} Dice" for _, name in keys] + [f"Δ {name} [95 % CI]" for _, name in keys] + ["n"]
    rows = []
    for arm, entry in metrics["arms"].items():
        sd, cis = entry.get("sd", {}), entry.get("ci95_minus_real_only", {})
        rows.append([ARM_TITLES.get(arm, arm)]
                    + [f"{score_text(entry.get(k))} ± {score_text(sd.get(k))}" for k, _ in keys]
                    + [_ci(cis.get(k)) if arm != "real_only" else "–" for k, _ in keys] + [str(entry["n_patients"])])
    report.table(header, rows)


def build_crossval_report(study_dir: Path, metrics: dict) -> Report:
    cv = metrics["cross_validation"]
    timing = metrics.get("timing", {})
    n_patients = sum(len(f["test_patients"]) for f in metrics["per_fold"])
    interim = "" if cv.get("complete", True) else f", interim: folds {cv['folds_pooled']} finished"
    report = Report(f"claim study ({metrics['preset']} preset, {cv['folds']}-fold cross-validation{interim})",
                    f"claim {__version__} · seed {metrics['seed']} · {n_patients} patients, each tested once · "
                    f"{len(metrics['test_pathological'])} pathological · wall {timing.get('total_s', 0) / 60:.1f} "
                    f"min · peak RSS {timing.get('peak_rss_mb', 0):.0f} MB")
    report.heading("Downstream segmentation, pooled over folds")
    report.paragraph(
        f"Patients were split into {cv['folds']} folds stratified by normal / pathological (folds.json). In each fold "
        "every arm (generators, SMILE prior, joint run, segmenters) trained on the other folds only and was tested "
        "on the fold; every patient is tested exactly once and the per-patient scores are pooled. Mean ± sd over "
        "pathological patients (EMIDEC convention: slices stacked per patient). Intervals: 95 % paired bootstrap of "
        f"the arm minus real only, {cv['bootstrap']}: the interval is conditional on each fold's trained models; "
        "how much the folds disagree shows in the forest plot. Each arm's prediction is the "
        f"{cv['ensemble']} "
        f"({cv['segmenter_seeds']} seed(s) per arm)." + (
            " With one segmenter seed per arm the intervals leave out training noise: another seed can move an arm "
            "by more than the differences between arms (README, 'How much the segmenter's own seed moves an "
            "arm'); --segmenter-seeds N averages N of them." if cv["segmenter_seeds"] == 1 else ""))
    _arms_table(report, metrics)
    report.figure(forest_figure(metrics), "Arm minus real only per fold (dots, fold-level bootstrap) and pooled "
                                          "(diamonds, fold-stratified bootstrap). An interval crossing the dashed "
                                          "line is not decided.")
    report.figure(scatter_figure(metrics), "Infarct Dice per pathological patient: real only against each arm.")
    report.heading("Per fold")
    header = ["fold", "test patients (pathological)"] + [f"{arm} infarct" for arm in metrics["arms"]] + \
        [f"{arm} − real only" for arm in metrics["arms"] if arm != "real_only"] + ["minutes"]
    rows = []
    for f in metrics["per_fold"]:
        rows.append([str(f["fold"]), f"{len(f['test_patients'])} ({len(f['test_pathological'])})"]
                    + [score_text(f["arms"][arm]["infarct_dice"]) for arm in metrics["arms"]]
                    + [_ci(f["arms"][arm].get("ci95_minus_real_only", {}).get("infarct_dice"))
                       for arm in metrics["arms"] if arm != "real_only"]
                    + [f"{(f.get('seconds') or 0) / 60:.1f}"])
    report.table(header, rows)
    report.links("Each fold's own report (galleries, bull's-eyes, training curves, timing):",
                 [(f"fold {f['fold']}", f"folds/fold{f['fold']}/study/report.html") for f in metrics["per_fold"]])
    report.heading("What this study can detect")
    detect = metrics.get("detectable", {})
    report.paragraph(
        "With n patients and sd s of the per-patient paired differences, the 95 % interval of the mean difference "
        "has half-width ≈ 1.96·s/√n; differences smaller than that cannot be decided. The last column is the n a "
        "half-width of 0.04 would need at the observed s.")
    report.table(["arm", "metric", "n", "sd of differences", "1.96·s/√n", "bootstrap half-width", "n for ±0.04"],
                 [[arm, key, str(v["n"]), score_text(v["sd_of_differences"]), score_text(v["normal_half_width"]),
                   score_text(v["bootstrap_half_width"]), str(v["patients_for_half_width_0.04"])]
                  for arm, per in detect.items() for key, v in per.items() if key != "infarct_volume_ratio_error"])
    report.heading("Mask fidelity of the synthetic images")
    report.paragraph("Judge (each fold's real-only segmenter, or its ensemble with several seeds) infarct Dice "
                     "against the conditioning mask, averaged "
                     "over the synthetic patients of all folds.")
    report.table(["arm", "mask fidelity (Dice)", "synthetic patients"],
                 [[ARM_TITLES.get(arm, arm), score_text(v),
                   str(len(metrics.get("fidelity_per_patient", {}).get(arm, {})))]
                  for arm, v in metrics.get("fidelity", {}).items()])
    add_selection_section(report, {f"fold {f['fold']}": f["model_selection"] for f in metrics["per_fold"]
                                   if "model_selection" in f})
    realism = metrics.get("realism")
    if realism:
        from claim.report.realism import add_realism_section

        add_realism_section(report, realism, Path(study_dir))
    report.heading("Timing")
    report.table(["fold", "minutes"], [[name, f"{s / 60:.1f}"] for name, s in timing.get("folds_s", {}).items()]
                 + [["total", f"{timing.get('total_s', 0) / 60:.1f}"],
                    ["peak RSS (MB)", f"{timing.get('peak_rss_mb', 0):.0f}"]])
    if metrics.get("preset") in ("quick", "smoke"):
        report.paragraph("Quick preset: tiny models and very few steps. The numbers check that the chain works end "
                         "to end; they are not evidence about the methods.")
    return report


def write_crossval_report(study_dir: Path, metrics: dict, path: Path | None = None) -> Path:
    study_dir = Path(study_dir)
    return build_crossval_report(study_dir, metrics).save(Path(path) if path else study_dir / "report.html")
