"""Report sections shared by the HTML reports that use geometry (demo, study)."""

from __future__ import annotations

from pathlib import Path

from claim.report.html import Report, score_text

__all__ = ["add_orientation_section", "add_selection_section"]


def add_orientation_section(report: Report, sheet: bytes | Path, summary: dict) -> None:
    """Append the orientation sheet to an HTML report, with the sources and flags from a `claim aha` summary."""
    methods = summary.get("orientation_methods", {})
    low = summary.get("orientation_low_confidence", [])
    cohort = summary.get("orientation_cohort") or {}
    outliers = cohort.get("outliers", [])
    report.heading("AHA angle origin per patient")
    report.paragraph(
        "Every segment and territory rests on where AHA angle 0 lies. Each tile shows a patient's mid-ventricular "
        "slice with the anterior RV insertion (orange), the inferior insertion (dashed) and the septum direction "
        "(cyan arrow), which should point at the RV blood pool. Sources: "
        + (", ".join(f"{method} {count}" for method, count in methods.items()) or "none")
        + f". Low-confidence estimates (red frame): {len(low)}"
        + (f" ({', '.join(low)})" if low else "")
        + (f"; of them far from the other patients' septum direction ({cohort['consensus_deg']:.0f}° on screen, "
           f"spread {cohort['spread_deg']:.0f}°, flagged beyond {cohort['threshold_deg']:.0f}°): "
           f"{', '.join(outliers)}" if outliers else "")
        + ". Correct wrong ones with claim aha --write-orientation PATH, edit, then --orientation file:PATH."
    )
    report.figure(sheet, "Orientation sheet: check that every cyan arrow points at the RV.")


def add_selection_section(report: Report, selections: dict[str, dict]) -> None:
    """Append how every choice was made: each segmenter's selected step and validation scores, and the joint
    settings in use. ``selections``: a label ("" for a single split, "fold k" otherwise) -> ``model_selection``."""
    if not selections:
        return
    first = next(iter(selections.values()))
    report.heading("Model selection (validation patients only)")
    sizes = sorted({len(s.get("validation_patients", [])) for s in selections.values()})
    report.paragraph(
        "Each segmenter kept the checkpoint with the "
        f"{first.get('rule', 'best validation score')}: {', '.join(map(str, sizes))} validation patients per "
        "split, never a test patient of that split. The claim arm's joint run used "
        + ", ".join(f"{key} {value}" for key, value in first.get("joint", {}).items())
        + f"; these settings are {first.get('joint_selection', 'not recorded')}.")
    rows = []
    for label, selection in selections.items():
        for run, record in selection.get("segmenters", {}).items():
            validation = record.get("validation", {})
            rows.append(([label] if label else []) + [run, str(record.get("step", "")),
                                                     score_text(validation.get("infarct_dice")),
                                                     score_text(validation.get("myocardium_dice"))])
    header = (["split"] if any(selections) else []) + ["segmenter run", "selected step", "validation infarct Dice",
                                                        "validation myocardium Dice"]
    report.table(header, rows)
