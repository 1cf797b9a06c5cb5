"""Report sections shared by the HTML reports that use geometry (demo, study)."""

from __future__ import annotations

from pathlib import Path

from claim.report.html import Report

__all__ = ["add_orientation_section"]


def add_orientation_section(report: Report, sheet: bytes | Path, summary: dict) -> None:
    """Append the orientation sheet to an HTML report, with the sources and flags from a `claim aha` summary."""
    methods = summary.get("orientation_methods", {})
    low = summary.get("orientation_low_confidence", [])
    report.heading("AHA angle origin per patient")
    report.paragraph(
        "Every segment and territory rests on where AHA angle 0 lies. Each tile shows a patient's mid-ventricular "
        "slice with the anterior RV insertion (orange), the inferior insertion (dashed) and the septum direction "
        "(cyan arrow), which should point at the RV blood pool. Sources: "
        + (", ".join(f"{method} {count}" for method, count in methods.items()) or "none")
        + f". Low-confidence estimates (red frame): {len(low)}"
        + (f" ({', '.join(low)})" if low else "")
        + ". Correct wrong ones with claim aha --write-orientation PATH, edit, then --orientation file:PATH."
    )
    report.figure(sheet, "Orientation sheet: check that every cyan arrow points at the RV.")
