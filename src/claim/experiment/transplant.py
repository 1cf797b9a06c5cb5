"""Move a real scar from a donor patient onto a normal canvas by AHA coordinates (the LeFusion arm's masks).

Every canvas myocardial pixel is described by (level-relative slice position, AHA angle, transmural depth) and
takes the label (myocardium, scar or MVO) of the nearest donor myocardial pixel in that space. Slices are matched
within the same AHA level (apex cap, apical, mid, basal) when the donor has it, so the scar keeps its segments.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from claim.aha.geometry import PatientGeometry
from claim.aha.segments import Level
from claim.data.patient import Patient
from claim.labels import Label, infarct_mask, myocardium_mask

__all__ = ["transplant_scar", "slice_positions_in_level"]

_LEVEL_ORDER = (Level.APEX, Level.APICAL, Level.MID, Level.BASAL)
# Feature weights: one whole level span in slice position weighs like ~3 rad of angle, so neighbours come from the
# closest slice first; angle as a point on the unit circle (chord ~ radians for small gaps); depth in [0, 1].
_POSITION_WEIGHT = 3.0
_DEPTH_WEIGHT = 1.0


def slice_positions_in_level(geometry: PatientGeometry) -> np.ndarray:
    """Per slice, its position inside its level from apex (0) to base (1) (centre of its share); NaN without level."""
    n = len(geometry.levels)
    order = list(range(n)) if geometry.apex_first else list(range(n - 1, -1, -1))
    positions = np.full(n, np.nan)
    for level in _LEVEL_ORDER:
        members = [s for s in order if geometry.levels[s] == level]
        for rank, s in enumerate(members):
            positions[s] = (rank + 0.5) / len(members)
    return positions


def _features(geometry: PatientGeometry, slices: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    position = slice_positions_in_level(geometry)[slices]
    angle = np.deg2rad(geometry.angle_deg[slices, rows, cols].astype(np.float64))
    depth = geometry.depth[slices, rows, cols].astype(np.float64)
    return np.column_stack(
        [_POSITION_WEIGHT * position, np.cos(angle), np.sin(angle), _DEPTH_WEIGHT * np.nan_to_num(depth)]
    )


def transplant_scar(
    donor_patient: Patient,
    donor_geometry: PatientGeometry,
    canvas_patient: Patient,
    canvas_geometry: PatientGeometry,
) -> np.ndarray:
    """The canvas's label maps with the donor's scar (3) and MVO (4) copied onto its myocardium.

    Outside the canvas myocardium nothing changes; inside it every pixel becomes myocardium (2), scar (3) or MVO
    (4) as its nearest donor point in (level-relative slice position, angle, depth) is. Apex-cap pixels (no angle
    meaning) are matched on depth and position only.
    """
    label_maps = canvas_patient.label_maps.copy()
    canvas_myo = myocardium_mask(label_maps) & (canvas_geometry.segment_maps > 0)
    donor_myo = myocardium_mask(donor_patient.label_maps) & (donor_geometry.segment_maps > 0)
    label_maps[canvas_myo] = Label.MYOCARDIUM
    if not donor_myo.any() or not canvas_myo.any():
        return label_maps
    d_s, d_r, d_c = np.nonzero(donor_myo)
    d_labels = donor_patient.label_maps[d_s, d_r, d_c]
    d_levels = np.array([_LEVEL_ORDER.index(donor_geometry.levels[s]) for s in d_s])
    d_feat = _features(donor_geometry, d_s, d_r, d_c)
    c_s, c_r, c_c = np.nonzero(canvas_myo)
    c_levels = np.array([_LEVEL_ORDER.index(canvas_geometry.levels[s]) for s in c_s])
    c_feat = _features(canvas_geometry, c_s, c_r, c_c)
    cap = _LEVEL_ORDER.index(Level.APEX)
    new = np.full(len(c_s), int(Label.MYOCARDIUM), dtype=np.uint8)
    for level in np.unique(c_levels):
        pick = c_levels == level
        pool = d_levels == level
        if not pool.any():  # the donor lacks this level (e.g. no apical cap): use the nearest level it has
            present = np.unique(d_levels)
            pool = d_levels == present[np.argmin(np.abs(present - level))]
        columns = [0, 3] if level == cap else [0, 1, 2, 3]
        tree = cKDTree(d_feat[pool][:, columns])
        _, index = tree.query(c_feat[pick][:, columns])
        new[pick] = d_labels[pool][index]
    keep = infarct_mask(new)
    label_maps[c_s[keep], c_r[keep], c_c[keep]] = new[keep]
    return label_maps
