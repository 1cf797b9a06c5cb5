"""EMIDEC metrics: conventions, and agreement with an independent numpy/KD-tree computation on real volumes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.write import write_label_maps
from claim.errors import ClaimError
from claim.evaluation.metrics import evaluate_folders, patient_metrics
from tests.conftest import EMIDEC_VOLUMES


def _toy() -> np.ndarray:
    gt = np.zeros((3, 20, 20), np.uint8)
    gt[:, 5:15, 5:15] = 2
    gt[:, 8:12, 8:12] = 1
    gt[1, 5:8, 5:15] = 3
    gt[1, 5:6, 8:10] = 4
    return gt


def test_perfect_prediction_and_empty_conventions():
    gt = _toy()
    m = patient_metrics(gt, gt, (1.5, 1.5), 10.0)
    assert m["myocardium_dice"] == m["infarct_dice"] == m["mvo_dice"] == 1.0
    assert m["myocardium_vd"] == m["infarct_vd"] == m["myocardium_hd"] == m["infarct_ratio_error"] == 0.0
    assert m["unit"] == "mm"
    normal = np.where(np.isin(gt, (3, 4)), 2, gt)
    m = patient_metrics(normal, normal, None, None)
    assert m["infarct_dice"] == 1.0 and m["mvo_dice"] == 1.0 and m["unit"] == "px"  # both empty -> 1
    m = patient_metrics(normal, gt, None, None)
    assert m["infarct_dice"] == 0.0 and m["infarct_vd"] == np.isin(gt, (3, 4)).sum()


def test_units_and_hausdorff_on_a_shift():
    gt = _toy()
    pred = np.roll(gt, 2, axis=2)  # shift 2 columns
    px = patient_metrics(pred, gt, None, None)
    mm = patient_metrics(pred, gt, (1.0, 1.5), 8.0)
    assert px["myocardium_hd"] == pytest.approx(2.0)
    assert mm["myocardium_hd"] == pytest.approx(3.0)  # 2 columns x 1.5 mm
    assert mm["myocardium_vd"] == pytest.approx(px["myocardium_vd"] * 1.0 * 1.5 * 8.0)


def _reference(pred: np.ndarray, gt: np.ndarray, spacing, thickness) -> dict:
    """Independent computation: plain sums for overlaps/volumes, KD-tree nearest neighbours for Hausdorff."""
    voxel = spacing[0] * spacing[1] * thickness
    out = {}
    for name, ids in {"myocardium": (2, 3, 4), "infarct": (3, 4), "mvo": (4,)}.items():
        p = (pred == ids[0]) | (pred == ids[-1]) | ((pred == 3) if len(ids) == 3 else False)
        g = (gt == ids[0]) | (gt == ids[-1]) | ((gt == 3) if len(ids) == 3 else False)
        out[f"{name}_dice"] = 2 * float((p & g).sum()) / float(p.sum() + g.sum()) if p.sum() + g.sum() else 1.0
        out[f"{name}_vd"] = abs(float(p.sum()) - float(g.sum())) * voxel
        out[f"{name}_vgt"] = float(g.sum()) * voxel
    scale = np.array([thickness, spacing[0], spacing[1]])
    pts_p = np.argwhere(np.isin(pred, (2, 3, 4))) * scale
    pts_g = np.argwhere(np.isin(gt, (2, 3, 4))) * scale
    out["myocardium_hd"] = max(cKDTree(pts_g).query(pts_p)[0].max(), cKDTree(pts_p).query(pts_g)[0].max())
    out["infarct_ratio_error"] = out["infarct_vd"] / out["myocardium_vgt"]
    out["mvo_ratio_error"] = out["mvo_vd"] / out["myocardium_vgt"]
    return out


def _perturb(gt: np.ndarray) -> np.ndarray:
    """Shift the myocardium ring 2 columns, then erode the infarct (eroded rim back to healthy myocardium)."""
    pred = gt.copy()
    myo = np.isin(gt, (2, 3, 4))
    shifted = np.roll(myo, 2, axis=2)
    pred[myo & ~shifted] = 0
    pred[shifted & ~myo] = 2
    infarct = np.isin(pred, (3, 4))
    eroded = np.stack([ndimage.binary_erosion(s) for s in infarct])
    pred[infarct & ~eroded] = 2
    return pred


@pytest.fixture(scope="module")
def real_volumes():
    if not EMIDEC_VOLUMES.is_dir():
        pytest.skip(f"real data not found at {EMIDEC_VOLUMES}")
    return read_dataset(EMIDEC_VOLUMES)


@pytest.mark.realdata
def test_metrics_match_independent_reference_on_real_volumes(real_volumes):
    for patient in real_volumes:
        pred = _perturb(patient.label_maps)
        ours = patient_metrics(pred, patient.label_maps, patient.spacing_mm, patient.slice_thickness_mm)
        ref = _reference(pred, patient.label_maps, patient.spacing_mm, patient.slice_thickness_mm)
        assert ours["unit"] == "mm"
        for key in ("myocardium_dice", "infarct_dice", "mvo_dice", "myocardium_vd", "infarct_vd", "mvo_vd",
                    "myocardium_hd", "infarct_ratio_error", "mvo_ratio_error"):
            assert ours[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-9), (patient.patient_id, key)
        assert 0.5 < ours["myocardium_dice"] < 1.0


@pytest.mark.realdata
def test_evaluate_cli_on_real_volumes(real_volumes, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    refs = {}
    for patient in real_volumes:
        pred = _perturb(patient.label_maps)
        write_label_maps(patient, pred_dir, pred)
        refs[patient.patient_id] = _reference(pred, patient.label_maps, patient.spacing_mm,
                                              patient.slice_thickness_mm)
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(EMIDEC_VOLUMES), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unit"] == "mm" and set(result["patients"]) == {"sampleNegative", "samplePositive"}
    for pid, ref in refs.items():
        assert result["patients"][pid]["infarct_dice"] == pytest.approx(ref["infarct_dice"])
        assert result["patients"][pid]["myocardium_hd"] == pytest.approx(ref["myocardium_hd"])
    mean_dice = np.mean([r["myocardium_dice"] for r in refs.values()])
    assert result["mean"]["myocardium_dice"] == pytest.approx(mean_dice)
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(EMIDEC_VOLUMES)]) == 0
    table = capsys.readouterr().out
    assert "samplePositive" in table and "mean" in table and "mm3" in table


def test_missing_and_unmatched_predictions_are_clear_errors(phantom_cohort, tmp_path):
    from claim.data.write import write_patient

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    patients = [case.patient for case in phantom_cohort]
    for p in patients[:2]:
        write_patient(p, gt_dir)
    write_label_maps(patients[0], pred_dir, patients[0].label_maps)
    with pytest.raises(ClaimError, match="prediction for patient"):
        evaluate_folders(pred_dir, gt_dir)
    write_label_maps(patients[1], pred_dir, patients[1].label_maps)
    result = evaluate_folders(pred_dir, gt_dir)
    assert result["mean"]["myocardium_dice"] == 1.0 and result["sd"]["myocardium_dice"] == 0.0
    write_label_maps(patients[2], pred_dir, patients[2].label_maps)
    with pytest.raises(ClaimError, match="without a ground-truth case"):
        evaluate_folders(pred_dir, gt_dir)
    assert math.isfinite(result["mean"]["myocardium_hd"])


def test_scar_dice_is_also_averaged_over_the_patients_whose_ground_truth_holds_it(phantom_cohort, tmp_path, capsys):
    from claim.data.write import write_patient
    from claim.labels import Label

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    patients = [case.patient for case in phantom_cohort]
    normal = next(p for p in patients if not p.has_infarct)
    for p in patients:
        write_patient(p, gt_dir)
        maps = p.label_maps.copy()
        if p is normal:  # a false scar in a normal patient: its infarct Dice is 0.0, not "absent"
            maps[maps == Label.MYOCARDIUM] = Label.INFARCT
        write_label_maps(p, pred_dir, maps)
    result = evaluate_folders(pred_dir, gt_dir)
    n_infarct, n_mvo = sum(p.has_infarct for p in patients), sum(p.has_mvo for p in patients)
    assert (result["n_with_infarct"], result["n_with_mvo"]) == (n_infarct, n_mvo) and 0 < n_infarct < len(patients)
    assert result["patients"][normal.patient_id]["infarct_dice"] == 0.0
    # Over every patient the false scar counts; over the pathological ones only the perfect predictions do.
    assert result["mean"]["infarct_dice"] == pytest.approx((len(patients) - 1) / len(patients))
    assert result["mean_where_present"]["infarct_dice"] == 1.0 and result["sd_where_present"]["infarct_dice"] == 0.0
    assert result["mean_where_present"]["mvo_dice"] == (1.0 if n_mvo else None)
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 0
    table = capsys.readouterr().out
    assert f"mean*: infarct_dice over the {n_infarct} with infarct" in table
    assert [line.split()[:2] for line in table.splitlines() if line.startswith("mean*")] == [["mean*", "1.000"]]
