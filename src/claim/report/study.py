"""The study's report: arms table with paired bootstrap intervals, per-patient table, galleries, bull's-eyes,
training curves, budget split and notes. Built on ``report.html.Report`` (one self-contained HTML file)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from claim import __version__  # noqa: E402
from claim.report.figures import draw_bullseye, figure_png_bytes  # noqa: E402
from claim.report.html import Report, score_text  # noqa: E402
from claim.report.sections import add_orientation_section, add_selection_section  # noqa: E402

__all__ = ["ARM_TITLES", "build_study_report", "write_study_report", "training_curves_figure"]

ARM_TITLES = {
    "real_only": "real only",
    "lefusion": "+ LeFusion (transplanted real masks, RePaint)",
    "smile": "+ SMILE masks (claim generator, DDIM)",
    "claim": "+ SMILE masks, joint training (full method)",
}
_METRICS = (
    ("infarct_dice", "infarct Dice", True),
    ("myocardium_dice", "myocardium Dice", True),
    ("mvo_dice", "MVO Dice", True),
    ("infarct_volume_ratio_error", "infarct % error", False),
)
_LABEL_COLOURS = np.array(
    [[0, 0, 0], [0.25, 0.45, 0.85], [0.55, 0.55, 0.55], [0.95, 0.85, 0.1], [0.9, 0.15, 0.15], [0.2, 0.8, 0.3]]
)



def _ci(ci: dict | None) -> str:
    if not ci or ci.get("mean") is None:
        return "–"
    low = ci.get("low")
    if low is None or not math.isfinite(low):
        return f"{ci['mean']:+.3f} (n={ci['n']}, no interval)"
    return f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def _label_rgb(label_map: np.ndarray) -> np.ndarray:
    return _LABEL_COLOURS[np.clip(label_map.astype(int), 0, len(_LABEL_COLOURS) - 1)]


def _crop_box(label_maps: list[np.ndarray], margin: int = 8) -> tuple[slice, slice]:
    union = np.zeros(label_maps[0].shape, bool)
    for lm in label_maps:
        union |= lm > 0
    if not union.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(union)
    h, w = union.shape
    return (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)),
            slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)))


def _gallery_figure(items: list[dict], title: str) -> bytes:
    fig, axes = plt.subplots(len(items), 4, figsize=(8.4, 2.2 * len(items)), squeeze=False)
    for row, item in zip(axes, items, strict=True):
        box = _crop_box([item["mask"]])
        lo, hi = np.percentile(item["canvas"][box], [1, 99.5])
        panels = [
            (item["canvas"][box], "normal canvas"),
            (_label_rgb(item["mask"][box]), "conditioning mask"),
            (item["synthetic"][box], "synthetic"),
            (_label_rgb(item["judge"][box]), "judge's prediction"),
        ]
        for ax, (image, name) in zip(row, panels, strict=True):
            if image.ndim == 2:
                ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.axis("off")
        row[0].text(-0.05, 0.5, item["id"], transform=row[0].transAxes, rotation=90, fontsize=6,
                    ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=80)


def _read_gallery(study_dir: Path) -> dict[str, list[dict]]:
    ids_path, npz_path = study_dir / "evaluation" / "gallery.json", study_dir / "evaluation" / "gallery.npz"
    if not ids_path.exists() or not npz_path.exists():
        return {}
    ids = json.loads(ids_path.read_text())
    arrays = np.load(npz_path)
    return {arm: [{"id": name, **{key: arrays[f"{arm}__{j}__{key}"] for key in ("canvas", "mask", "synthetic",
                                                                                 "judge")}}
                  for j, name in enumerate(names)] for arm, names in ids.items()}


def _flatten(record: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in record.items():
        if key in ("step", "seconds", "time", "lr"):
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def training_curves_figure(logs: dict[str, Path]) -> bytes | None:
    """One panel per run: every numeric series of its ``train_log.jsonl`` against ``step`` (losses on the left
    axis, validation scores in [0, 1] with markers)."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, path in logs.items():
        if not path.exists():
            continue
        runs: dict[str, list[tuple[float, float]]] = {}
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "step" not in record:
                continue
            for key, value in _flatten(record).items():
                if "loss" not in key and "dice" not in key:
                    continue  # counters (buffer size, patients) would squash the scale
                runs.setdefault(key, []).append((float(record["step"]), value))
        if runs:
            series[name] = runs
    if not series:
        return None
    ncols = min(4, len(series))
    nrows = -(-len(series) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.ravel()[len(series):]:
        ax.axis("off")
    for ax, (name, runs) in zip(axes.ravel(), series.items(), strict=False):
        for key, points in sorted(runs.items()):
            steps, values = zip(*points, strict=True)
            style = {"marker": "o", "ms": 2.5} if key.startswith("val") else {"lw": 0.8}
            ax.plot(steps, values, label=key, **style)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5.5, loc="best")
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=80)


def _bullseye_figure(bullseye: dict[str, dict[str, float]]) -> bytes | None:
    panels = [("real_training_scar", "real training scars")]
    panels += [(key, title) for key, title in (("smile_mask", "SMILE masks"),
                                               ("smile_judge", "judge on smile synthetic"),
                                               ("claim_judge", "judge on claim synthetic"),
                                               ("lefusion_judge", "judge on LeFusion synthetic")) if key in bullseye]
    panels = [(k, t) for k, t in panels if k in bullseye]
    if not panels:
        return None
    values = {k: {int(s): math.nan if v is None else v for s, v in bullseye[k].items()} for k, _ in panels}
    finite = [v for vals in values.values() for v in vals.values() if math.isfinite(v)]
    vmax = max(max(finite, default=0.05), 0.05)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.3), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        draw_bullseye(ax, values[key], title=title, cmap="magma", vmin=0, vmax=vmax, value_format="{:.2f}")
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=80)


def build_study_report(study_dir: Path, metrics: dict, report: Report | None = None) -> Report:
    """Append the study's sections to ``report`` (a new one titled after the preset when None)."""
    study_dir = Path(study_dir)
    if report is None:
        report = Report(f"claim study ({metrics['preset']} preset)",
                        f"claim {__version__} · seed {metrics['seed']} · {len(metrics.get('test_pathological', []))} "
                        "held-out pathological test patients")
    arms = metrics["arms"]
    report.heading("Downstream segmentation on held-out test patients")
    report.paragraph(
        "Same segmenter recipe and step budget in every arm; arms differ only in the synthetic training slices. "
        "Each value is the mean ± sd over held-out pathological test patients, one Dice per patient with its slices "
        "stacked (EMIDEC convention). The interval column is the paired bootstrap 95 % CI of the arm minus real only "
        "(patients resampled, seeded). The test folder was never used for training, tuning or model selection: "
        "validation patients come from the training folder. A patient without MVO whose prediction has none "
        "scores MVO Dice 1 and one with any false MVO scores 0, so MVO Dice mostly counts patients without MVO "
        "that the segmenter leaves empty."
    )
    header = ["arm"] + [name for _, name, _ in _METRICS] + ["Δ infarct Dice vs real only [95 % CI]", "n"]
    rows = []
    for arm, entry in arms.items():
        sd = entry.get("sd", {})
        cells = [f"{score_text(entry.get(key))} ± {score_text(sd.get(key))}" for key, _, _ in _METRICS]
        ci = entry.get("ci95_minus_real_only", {}).get("infarct_dice")
        rows.append([ARM_TITLES.get(arm, arm), *cells, _ci(ci) if arm != "real_only" else "–",
                     str(entry.get("n_patients", ""))])
    report.table(header, rows)
    report.table(
        ["arm"] + [f"Δ {name} [95 % CI]" for _, name, _ in _METRICS],
        [[ARM_TITLES.get(arm, arm)] + [_ci(entry.get("ci95_minus_real_only", {}).get(key)) for key, _, _ in _METRICS]
         for arm, entry in arms.items() if arm != "real_only"],
    )
    report.heading("Per patient (infarct Dice)")
    patients = sorted({pid for entry in arms.values() for pid in entry.get("per_patient", {})})
    report.table(
        ["patient"] + [ARM_TITLES.get(arm, arm) for arm in arms],
        [[pid] + [score_text(arms[arm]["per_patient"].get(pid, {}).get("infarct_dice")) for arm in arms]
         for pid in patients],
    )
    report.heading("Mask fidelity of the synthetic images")
    report.paragraph(
        "Dice between the scar mask a synthetic image was conditioned on and the scar that the real-only segmenter "
        "(an independent judge, trained on real slices only) finds in it, one Dice per synthetic patient with its "
        "slices stacked, averaged."
    )
    report.table(
        ["arm", "mask fidelity (Dice)", "synthetic patients"],
        [[ARM_TITLES.get(arm, arm), score_text(value), str(len(metrics.get("fidelity_per_patient", {}).get(arm, {})))]
         for arm, value in metrics["fidelity"].items()],
    )
    if metrics.get("model_selection"):
        add_selection_section(report, {"": metrics["model_selection"]})
    if metrics.get("realism"):
        from claim.report.realism import add_realism_section

        add_realism_section(report, metrics["realism"], study_dir)
    gallery = _read_gallery(study_dir)
    items = [(_gallery_figure(crops, ARM_TITLES.get(arm, arm)), f"{arm}: normal canvas | mask | synthetic | judge")
             for arm, crops in gallery.items() if crops]
    if items:
        report.heading("Synthetic examples")
        report.paragraph("Label colours: blue cavity, grey myocardium, yellow scar, red MVO.")
        report.gallery(items)
    bullseye = _bullseye_figure(metrics.get("bullseye", {}))
    if bullseye is not None:
        report.heading("Where the scar lies")
        report.figure(bullseye, "Scar pixels / myocardium pixels per AHA segment: real training scars, SMILE masks, "
                                "and the scar the judge finds in synthetic images (segment 1 at the top).")
    orientation = metrics.get("orientation") or {}
    sheet = study_dir / "orientation" / orientation.get("orientation_sheet", "orientation.png")
    if orientation and sheet.exists():
        add_orientation_section(report, sheet, orientation)
        report.paragraph(f"The study's geometry used --orientation {orientation.get('orientation')} --handedness "
                         f"{orientation.get('handedness')} for its {len(orientation.get('roles', {}))} training and "
                         "test patients (orientation/orientation.json); it places the SMILE masks, the transplanted "
                         "scars and the bull's-eyes above.")
    logs = {"generator (LeFusion)": study_dir / "runs/generator_lefusion/train_log.jsonl",
            "generator (claim)": study_dir / "runs/generator_claim/train_log.jsonl",
            "joint": study_dir / "runs/joint/train_log.jsonl"}
    logs |= {f"segmenter: {arm}": study_dir / "runs" / arm / "train_log.jsonl" for arm in arms}
    curves = training_curves_figure(logs)
    if curves is not None:
        report.heading("Training curves")
        report.figure(curves, "Every numeric series of each run's train_log.jsonl against its step.")
    budget = metrics.get("budget", {})
    if budget:
        report.heading("Budget split")
        gen = budget.get("generator_steps", {})
        samplers = budget.get("samplers", {})
        report.table(
            ["arm", "segmenter steps", "generator steps", "sampler"],
            [[ARM_TITLES.get(arm, arm), str(budget.get("segmenter_steps_per_arm", "")), str(gen.get(arm, 0)),
              samplers.get(arm, "–")] for arm in arms],
        )
        joint_total = budget.get("joint_steps", 0)
        joint_generator = budget.get("joint_generator_steps", joint_total)
        report.paragraph(
            f"The claim arm fine-tunes the smile arm's generator in a joint run of {joint_total} steps, "
            f"{joint_generator} of which train the generator (the rest warm the joint segmenter up on real slices); "
            "generator steps = diffusion pre-training + those steps. Its downstream segmenter is then trained from "
            "scratch with the same recipe as every other arm on real + synthetic slices from the jointly trained "
            "generator (the joint run's own segmenter is not evaluated)."
        )
    timing = metrics.get("timing", {})
    if timing:
        report.heading("Timing")
        report.table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timing.get("stages_s", {}).items()]
                     + [["total", f"{timing.get('total_s', 0):.1f}"],
                        ["peak RSS (MB)", f"{timing.get('peak_rss_mb', 0):.0f}"]])
    report.heading("Notes")
    notes = [
        "Small samples: with a handful of test patients the intervals are wide; a difference whose interval "
        "includes 0 is not evidence either way.",
        "Mask fidelity depends on the judge: a weak real-only segmenter under-reports fidelity for every arm alike.",
        "The LeFusion arm is the faithful baseline (x_t-only denoiser, RePaint); its masks are real scars of other "
        "training patients transplanted by AHA coordinates (level-relative slice position, angle, transmural depth).",
        f"Sampler for LeFusion: {budget.get('samplers', {}).get('lefusion', '?')} (LeFusion used 5x5; fewer jumps "
        "keep the preset inside its time budget).",
    ]
    prior = metrics.get("smile_prior", {})
    if prior.get("training_donors_only"):
        notes.append(f"SMILE masks use a prior fitted to the scars of the {prior.get('n_patients')} training donors "
                     "only (masks/smile/smile_prior.json).")
    elif prior:
        notes.append(f"SMILE masks use the shipped prior ({prior.get('source')}, {prior.get('n_patients')} patients). "
                     "Fitted on all EMIDEC pathological patients, it may include the test patients' scar "
                     "statistics (burden, segment and MVO frequencies; no images).")
    if metrics.get("preset") in ("quick", "smoke"):
        notes.append("Quick preset: tiny models and very few steps. The numbers check that the chain works end to "
                     "end; they are not evidence about the methods.")
    for note in notes:
        report.paragraph(note)
    return report


def write_study_report(study_dir: Path, metrics: dict, path: Path | None = None) -> Path:
    """Write ``report.html`` for a finished study (default ``STUDY/report.html``)."""
    study_dir = Path(study_dir)
    return build_study_report(study_dir, metrics).save(Path(path) if path else study_dir / "report.html")
