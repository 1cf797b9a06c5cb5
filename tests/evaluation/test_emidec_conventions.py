"""Our metrics against the EMIDEC evaluation code's definitions, and the two Hausdorff conventions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from claim.data.layouts import read_dataset
from claim.evaluation.metrics import hausdorff_distance, patient_metrics
from tests.conftest import EMIDEC_VOLUMES


def test_boundary_hausdorff_is_not_the_voxel_set_distance():
    gt = np.zeros((1, 31, 31), bool)
    gt[0, 5:26, 5:26] = True
    ring = gt & ~ndimage.binary_erosion(gt, structure=ndimage.generate_binary_structure(3, 1))
    # The ring is the square's own boundary: 0 between boundaries, though the square's centre is 10 px from it.
    assert hausdorff_distance(ring, gt, (1.0, 1.0, 1.0)) == 0.0
    shifted = np.roll(gt, 3, axis=2)
    assert hausdorff_distance(shifted, gt, (10.0, 1.5, 2.0)) == pytest.approx(6.0)  # 3 columns x 2 mm


def test_emidec_convention_swaps_the_slice_and_in_plane_spacing():
    gt = np.zeros((4, 20, 20), np.uint8)
    gt[1:3, 5:15, 5:15] = 2
    pred = np.roll(gt, 1, axis=0)  # one slice further along z
    true = patient_metrics(pred, gt, (1.5, 1.25), 10.0)
    official = patient_metrics(pred, gt, (1.5, 1.25), 10.0, hd_convention="emidec")
    assert true["myocardium_hd"] == pytest.approx(10.0)  # one slice = 10 mm
    assert official["myocardium_hd"] == pytest.approx(1.5)  # the official code gives z the first in-plane spacing
    assert {k: v for k, v in true.items() if k != "myocardium_hd"} == \
        {k: v for k, v in official.items() if k != "myocardium_hd"}


def _official(pred_zxy: np.ndarray, gt_zxy: np.ndarray, zooms: tuple[float, float, float]) -> dict:
    """The EMIDEC evaluation code's computation, restated: arrays as SimpleITK returns them (z, y, x), spacing as
    SimpleITK reports it (x, y, z), 3D Dice with 1 for two empty masks, volume = voxels x product of spacing,
    volume difference rounded to 0.01, ratio = |dV| / V_myo_gt, Hausdorff between 6-connected borders."""
    pred, gt = np.swapaxes(pred_zxy, 1, 2), np.swapaxes(gt_zxy, 1, 2)
    spacing = zooms  # (x, y, z), applied positionally to (z, y, x) arrays
    regions = {"myocardium": (2, 3, 4), "infarct": (3, 4), "mvo": (4,)}
    out = {}
    for name, ids in regions.items():
        a, b = np.isin(pred, ids), np.isin(gt, ids)
        total = a.sum() + b.sum()
        out[f"{name}_dice"] = 1.0 if total == 0 else 2.0 * (a & b).sum() / total
        dv = abs(np.prod(spacing) * a.sum() - np.prod(spacing) * b.sum())
        out[f"{name}_vd"] = round(dv, 2)
        if name != "myocardium":
            out[f"{name}_ratio_error"] = dv / (np.prod(spacing) * np.isin(gt, regions["myocardium"]).sum())
    a, b = np.isin(pred, regions["myocardium"]), np.isin(gt, regions["myocardium"])
    cross = ndimage.generate_binary_structure(3, 1)
    a_edge, b_edge = a ^ ndimage.binary_erosion(a, structure=cross), b ^ ndimage.binary_erosion(b, structure=cross)
    out["myocardium_hd"] = max(ndimage.distance_transform_edt(~b_edge, sampling=spacing)[a_edge].max(),
                               ndimage.distance_transform_edt(~a_edge, sampling=spacing)[b_edge].max())
    return out


@pytest.mark.realdata
def test_emidec_convention_equals_the_official_computation_on_a_real_volume():
    patient = next(p for p in read_dataset(EMIDEC_VOLUMES) if p.has_infarct)
    gt = patient.label_maps
    pred = gt.copy()
    # A plausible imperfect prediction: scar grown by one pixel into the myocardium, one slice's MVO missed.
    grown = ndimage.binary_dilation(np.isin(gt, (3, 4)), iterations=1) & (gt == 2)
    pred[grown] = 3
    pred[1][pred[1] == 4] = 3
    pred[-1] = 0  # the basal slice missed: its myocardium is a slice (thickness) away from the rest
    pred[2][ndimage.binary_erosion(gt[2] > 0, iterations=2) ^ (gt[2] > 0)] = 0  # a thinner wall on one slice
    zooms = (*patient.spacing_mm, patient.slice_thickness_mm)
    ours = patient_metrics(pred, gt, patient.spacing_mm, patient.slice_thickness_mm, hd_convention="emidec")
    official = _official(pred, gt, zooms)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    boundary = patient_metrics(pred, gt, patient.spacing_mm, patient.slice_thickness_mm)
    assert boundary["myocardium_hd"] != pytest.approx(ours["myocardium_hd"])  # the spacing swap matters here
