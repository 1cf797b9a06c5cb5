"""Realism in a report: the table of two-sample AUCs, intensity distances and frequency-map Dice beside their
real-against-real references, and a gallery of real and synthetic scar crops at the same scale and window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from claim.report.figures import figure_png_bytes  # noqa: E402
from claim.report.html import Report, score_text  # noqa: E402

__all__ = ["realism_gallery_png", "add_realism_section", "DISPLAY_WINDOW"]

DISPLAY_WINDOW = (-0.5, 2.5)  # contrast units: remote myocardium 0, blood pool 1


def realism_gallery_png(gallery: Mapping[str, Sequence]) -> bytes:
    """One row per source (real first), each tile a scar-centred crop in contrast units (the same pixel scale and
    grey window everywhere), the scar mask's outline in yellow."""
    rows = [(name, items) for name, items in gallery.items() if items]
    ncols = max((len(items) for _, items in rows), default=1)
    fig, axes = plt.subplots(max(len(rows), 1), ncols, figsize=(1.7 * ncols, 1.85 * max(len(rows), 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, items) in enumerate(rows):
        for c, sample in enumerate(items):
            ax = axes[r][c]
            ax.imshow(sample.view, cmap="gray", vmin=DISPLAY_WINDOW[0], vmax=DISPLAY_WINDOW[1],
                      interpolation="nearest")
            ax.contour(sample.view_mask.astype(float), levels=[0.5], colors="yellow", linewidths=0.5)
            ax.set_title(f"{sample.group.split(':')[-1]} s{sample.slice_index}", fontsize=5.5)
        axes[r][0].text(-0.08, 0.5, name, transform=axes[r][0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=8)
    fig.tight_layout()
    return figure_png_bytes(fig, dpi=100)



def _auc(entry: dict | None) -> str:
    if not entry or entry.get("auc") is None:
        return "–"
    return f"{score_text(entry['auc'])} [{score_text(entry.get('low'))}, {score_text(entry.get('high'))}]"


def add_realism_section(report: Report, realism: dict, study_dir: Path) -> None:
    ref = realism["real_vs_real"]
    floor, ceiling = ref["intensity_floor"], ref["frequency_dice_ceiling"]
    report.heading("Realism: synthetic scar against real scar")
    report.paragraph(
        f"Reference: {realism['real']['patients']} real pathological patients ({realism['real']['slices_with_scar']} "
        "slices with scar). Image AUC: a small CNN trained from scratch to tell real scar-centred crops (contrast "
        "units: remote myocardium 0, blood pool 1) from synthetic ones, split by patient and by canvas, repeated; "
        "0.5 = indistinguishable, 1 = always told apart. Mask AUC: the same on the scar masks in each patient's "
        "polar frame (AHA angle x transmural depth): shape and place, no texture. Real vs real: two random halves "
        "of the real patients.")
    stats = [k for k in ("scar_contrast", "scar_texture_sd", "scar_border_step", "mvo_to_scar_ratio") if k in floor]
    all_stats = [k for k in realism.get("statistics", {}) if k in floor]
    header = ["source", "patients", "image AUC [95 % CI]", "mask AUC [95 % CI]", "frequency Dice"] + \
        [f"W1 {k}" for k in stats]
    rows = []
    for name, entry in realism["sources"].items():
        intensity = entry.get("intensity", {})
        rows.append([name, str(entry["patients"]), _auc(entry.get("image_c2st")), _auc(entry.get("mask_c2st")),
                     score_text(entry.get("frequency_dice"))] +
                    [score_text(intensity.get(k, {}).get("wasserstein")) if intensity else "–" for k in stats])
    rows.append(["real vs real", str(realism["real"]["patients"]), _auc(ref["image_c2st"]), _auc(ref["mask_c2st"]),
                 f"{score_text(ceiling.get('mean'))} (ceiling)"]
                + [f"{score_text(floor[k]['mean'])} (floor)" for k in stats])
    report.table(header, rows)
    medians = [[name] + [f"{score_text(e['intensity'][k]['median'])} "
                         f"(real {score_text(e['intensity'][k]['real_median'])})" for k in all_stats]
               for name, e in realism["sources"].items() if e.get("intensity")]
    if medians:
        report.paragraph("Medians of each statistic over slices, synthetic (real), and the W1 of the others:")
        report.table(["source"] + all_stats, medians)
        report.table(["source"] + [f"W1 {k}" for k in all_stats if k not in stats],
                     [[name] + [score_text(e["intensity"][k]["wasserstein"]) for k in all_stats if k not in stats]
                      for name, e in realism["sources"].items() if e.get("intensity")]
                     + [["real vs real (floor)"] + [score_text(floor[k]["mean"]) for k in all_stats if k not in stats]])
    report.paragraph("; ".join(f"{k}: {v}" for k, v in realism.get("statistics", {}).items()) + ". W1: 1-D "
                     "Wasserstein distance between the synthetic and the real slices' values; the floor is the "
                     "distance between two halves of the real patients (a rough floor: half-size samples lie "
                     "further apart by sampling noise alone, so a source compared with all real patients can fall "
                     "slightly below it). "
                     "Frequency Dice: soft Dice between the per-segment scar frequency (bull's-eye) of a mask "
                     "source and of the real scars; the ceiling is two disjoint sets of real patients.")
    _shape_table(report, realism)
    gallery = Path(study_dir) / "realism" / "gallery.png"
    if gallery.exists():
        report.figure(gallery, "Scar-centred crops at the same pixel scale and grey window (contrast units "
                               f"{DISPLAY_WINDOW[0]} to {DISPLAY_WINDOW[1]}); yellow: the scar mask's outline. "
                               "Top row real, then each synthetic arm.")


def _shape_table(report: Report, realism: dict) -> None:
    """Shape of each mask source's scars against the real ones: medians and W1, beside the split-half floor."""
    floor = realism["real_vs_real"].get("shape_floor")
    keys = [k for k in realism.get("shape_statistics", {}) if floor and k in floor]
    sources = [(name, e["shape"]) for name, e in realism["sources"].items() if e.get("shape")]
    if not keys or not sources:
        return
    report.paragraph("Shape of the scar masks, per slice: median of the source (median of the real scars) and W1 "
                     "to the real slices; the last row is the split-half floor. " +
                     "; ".join(f"{k}: {v}" for k, v in realism["shape_statistics"].items()) + ".")
    rows = [[name] + [f"{score_text(shape[k]['median'])} (real {score_text(shape[k]['real_median'])}), "
                      f"W1 {score_text(shape[k]['wasserstein'])}" for k in keys] for name, shape in sources]
    rows.append(["real vs real (floor)"] + [f"W1 {score_text(floor[k]['mean'])}" for k in keys])
    report.table(["mask source"] + keys, rows)
