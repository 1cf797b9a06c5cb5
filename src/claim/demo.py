"""`claim demo`: the whole chain on the built-in phantom, ending in report.html + metrics.json.

phantom -> AHA geometry (scored against the phantom's truth) -> patient-level train/test split -> the study
(SMILE masks, generators, joint training, four segmenter arms, held-out evaluation; ``claim.experiment``) -> one
report with the AHA checks and the study.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from claim import __version__
from claim.aha.config import AhaConfig
from claim.aha.geometry import compute_geometry
from claim.aha.orientation import Orientation, OrientationMethod
from claim.aha.segments import ANTERIOR_INSERTION_DEG, Handedness
from claim.data.io import write_json
from claim.errors import ClaimError
from claim.experiment.config import experiment_preset
from claim.experiment.split import split_dataset
from claim.experiment.study import run_experiment
from claim.output import OutputFolder, write_manifest
from claim.phantom import PhantomCase, PhantomConfig, write_phantom_cohort
from claim.report.figures import figure_png_bytes, save_bullseye, segment_montage
from claim.report.html import Report
from claim.report.sections import add_orientation_section
from claim.report.study import build_study_report
from claim.stages.aha import run_aha

__all__ = ["run_demo", "score_phantom_geometry", "demo_split_sizes"]

# The ``smoke`` preset (tests only) also shrinks the phantom so the whole chain runs in seconds.
_SMOKE_PHANTOM = PhantomConfig(shape=(96, 96), spacing_mm=2.0, min_slices=6, max_slices=7)


def _angle_difference_deg(a: float, b: float) -> float:
    return float(abs((a - b + 180.0) % 360.0 - 180.0))


def score_phantom_geometry(case: PhantomCase) -> dict:
    """Agreement of estimated AHA segments with the phantom's ground truth.

    ``agreement_known_orientation`` uses the true angle origin (so it tests centre, levels and sectors);
    ``agreement_estimated`` and ``orientation_error_deg`` score the automatic orientation estimate too.
    """
    truth = case.truth
    handedness = Handedness(truth.handedness)
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    known = Orientation(
        OrientationMethod.ANGLE,
        truth.origin_screen_deg,
        handedness,
        (truth.origin_screen_deg + sign * ANTERIOR_INSERTION_DEG) % 360.0,
    )
    myo = case.patient.myocardium_mask
    with_truth = compute_geometry(case.patient, orientation=known)
    estimated = compute_geometry(case.patient, handedness=handedness)
    return {
        "patient_id": case.patient.patient_id,
        "agreement_known_orientation": float(np.mean(with_truth.segment_maps[myo] == truth.segment_maps[myo])),
        "agreement_estimated": float(np.mean(estimated.segment_maps[myo] == truth.segment_maps[myo])),
        "orientation_method": estimated.orientation.method.value,
        "orientation_error_deg": _angle_difference_deg(
            estimated.orientation.origin_screen_deg, truth.origin_screen_deg
        ),
        "apex_side_correct": bool(with_truth.apex_first == truth.apex_first),
    }


def demo_split_sizes(n_pathological: int, n_normal: int) -> tuple[int, int]:
    """Test-side counts for the demo: a third of the pathological patients (>= 1), one normal when >= 3."""
    return max(1, round(n_pathological / 3)), 1 if n_normal >= 3 else 0


def run_demo(
    out_dir: Path,
    *,
    patients: int = 12,
    seed: int = 0,
    preset: str = "quick",
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Phantom -> AHA -> split -> study -> report. Writes ``OUT/report.html`` and ``OUT/metrics.json``.

    ``metrics.json`` is the study's (``arms``, ``fidelity``, ``timing`` ...) plus ``aha`` (geometry checks
    against the phantom's truth). The study runs with ``preset`` (``quick``; ``smoke`` for tests) and is
    resumable in ``OUT/study``.
    """
    out_dir = Path(out_dir)
    if patients < 6:
        raise ClaimError(f"--patients must be at least 6 (3 pathological + 3 normal) for the study, got {patients}")
    # The demo's folder is claim's as a whole and resumes: its phantom and geometry are rebuilt from the seed,
    # the split is kept, the study continues where it stopped. A folder holding anything else is refused.
    OutputFolder(out_dir, "demo", resume=True).check()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir, "demo", config={"patients": patients, "seed": seed, "preset": preset}, owns_folder=True)
    timing: dict[str, float] = {}
    start = time.perf_counter()
    phantom_config = _SMOKE_PHANTOM if preset == "smoke" else PhantomConfig()
    cases = write_phantom_cohort(out_dir / "phantom", patients, seed, phantom_config, progress=progress,
                                 overwrite=True)
    timing["phantom_s"] = time.perf_counter() - start

    start = time.perf_counter()
    summary = run_aha(out_dir / "phantom", out_dir / "aha", AhaConfig(), progress=progress, overwrite=True)
    timing["aha_s"] = time.perf_counter() - start

    scores = [score_phantom_geometry(case) for case in cases]

    start = time.perf_counter()
    n_path = sum(case.truth.pathological for case in cases)
    test_pathological, test_normal = demo_split_sizes(n_path, patients - n_path)
    split_dir = out_dir / "split"
    if not (split_dir / "split.json").exists():
        split_dataset(out_dir / "phantom", split_dir, test_pathological=test_pathological, test_normal=test_normal,
                      seed=seed)
    timing["split_s"] = time.perf_counter() - start
    study = run_experiment(split_dir / "train", split_dir / "test", out_dir / "study", experiment_preset(preset),
                           seed=seed, threads=threads, progress=progress)
    timing["study_s"] = study["timing"]["total_s"]

    metrics = {
        **study,
        "version": __version__,
        "seed": seed,
        "patients": patients,
        "stages": ["phantom", "aha", "split", "smile", "generator", "joint", "study", "report"],
        "aha": {
            "agreement_known_orientation_mean": float(np.mean([s["agreement_known_orientation"] for s in scores])),
            "agreement_estimated_mean": float(np.mean([s["agreement_estimated"] for s in scores])),
            "orientation_error_deg_median": float(np.median([s["orientation_error_deg"] for s in scores])),
            "apex_side_correct": int(sum(s["apex_side_correct"] for s in scores)),
            "median_sector_cv": summary["median_sector_cv"],
            "per_patient": scores,
        },
        "demo_timing": timing,
    }
    write_json(out_dir / "metrics.json", metrics)
    _write_report(out_dir, cases, summary, metrics)
    return metrics


def _write_report(out_dir: Path, cases: list[PhantomCase], summary: dict, metrics: dict) -> None:
    report = Report("claim demo: LGE phantom", f"claim {__version__} · seed {metrics['seed']} · {len(cases)} patients"
                    f" · study preset {metrics['preset']}")
    build_study_report(out_dir / "study", metrics, report)
    aha = metrics["aha"]
    report.heading("AHA 17-segment geometry")
    report.paragraph(
        "Every myocardial pixel gets its AHA segment, circumferential angle and transmural depth. Base and apex "
        "come from the cavity-area trend; the angle origin is estimated from the image (the bright RV blood pool "
        "beside the septum) because the phantom, like EMIDEC, has no RV label."
    )
    report.table(
        ["measure", "value"],
        [
            [
                "segment agreement with ground truth, true orientation",
                f"{100 * aha['agreement_known_orientation_mean']:.2f} %",
            ],
            [
                "segment agreement with ground truth, estimated orientation",
                f"{100 * aha['agreement_estimated_mean']:.2f} %",
            ],
            ["median orientation error (deg)", f"{aha['orientation_error_deg_median']:.1f}"],
            ["apex side correct", f"{aha['apex_side_correct']} / {len(cases)}"],
            ["median CV of myocardium over the 6 sectors (basal, mid)", f"{aha['median_sector_cv']:.3f}"],
        ],
    )
    report.table(
        ["patient", "pathological", "orientation", "error (deg)", "agreement (true orient.)", "agreement (estimated)"],
        [
            [
                s["patient_id"],
                "yes" if c.truth.pathological else "no",
                s["orientation_method"],
                f"{s['orientation_error_deg']:.1f}",
                f"{100 * s['agreement_known_orientation']:.2f} %",
                f"{100 * s['agreement_estimated']:.2f} %",
            ]
            for s, c in zip(aha["per_patient"], cases, strict=True)
        ],
    )
    myo = np.zeros(17)
    scar = np.zeros(17)
    for record in summary["patients"]:
        myo += [record["myocardium_pixels"][k] for k in range(1, 18)]
        scar += [record["scar_pixels"][k] for k in range(1, 18)]
    bullseye_path = save_bullseye(
        [
            ("myocardium (pixels, all patients)", {k + 1: myo[k] for k in range(17)}, {"cmap": "Blues"}),
            (
                "scar fraction (all patients)",
                {k + 1: scar[k] / myo[k] if myo[k] else np.nan for k in range(17)},
                {
                    "cmap": "magma",
                    "vmin": 0,
                    "vmax": max(float(np.nanmax(scar / np.maximum(myo, 1))), 0.05),
                    "value_format": "{:.2f}",
                },
            ),
        ],
        out_dir / "figures" / "bullseye_cohort.png",
    )
    report.figure(bullseye_path, "Cohort bull's-eye: 1 anterior at the top, septum on the left (standard AHA view).")
    add_orientation_section(report, out_dir / "aha" / summary["orientation_sheet"], summary)
    report.heading("Slices with estimated segments")
    items = []
    for case, record in zip(cases, summary["patients"], strict=True):
        geometry = compute_geometry(case.patient)
        order = range(case.patient.n_slices) if geometry.apex_first else range(case.patient.n_slices - 1, -1, -1)
        order = list(order)
        figure = segment_montage(
            case.patient.images[order],
            geometry.segment_maps[order],
            levels=[geometry.levels[s].value if geometry.levels[s] else None for s in order],
            title=f"{case.patient.patient_id} apex → base",
        )
        items.append(
            (figure_png_bytes(figure, dpi=80), f"{record['patient_id']}: orientation {record['orientation']['method']}")
        )
    report.gallery(items)
    report.heading("Demo timing")
    report.table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in metrics["demo_timing"].items()])
    report.save(out_dir / "report.html")
