"""The 17-segment table and angle arithmetic."""

from __future__ import annotations

import numpy as np

from claim.aha.segments import (
    SEGMENTS,
    TERRITORY_SEGMENTS,
    Handedness,
    Level,
    Territory,
    aha_angle_deg,
    origin_from_screen,
    screen_angle_deg,
    segment_from_angle,
)


def test_territories_match_the_aha_assignment():
    assert TERRITORY_SEGMENTS[Territory.LAD] == (1, 2, 7, 8, 13, 14, 17)
    assert TERRITORY_SEGMENTS[Territory.RCA] == (3, 4, 9, 10, 15)
    assert TERRITORY_SEGMENTS[Territory.LCX] == (5, 6, 11, 12, 16)
    assert SEGMENTS[2].name == "basal anteroseptal" and SEGMENTS[12].name == "mid anterolateral"


def test_ring_sectors():
    angles = np.array([0.0, 59.9, 60.0, 119.9, 179.9, 180.0, 299.0, 359.9])
    np.testing.assert_array_equal(segment_from_angle(angles, Level.BASAL), [1, 1, 2, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(segment_from_angle(angles, Level.MID), [7, 7, 8, 8, 9, 10, 11, 12])


def test_apical_sectors_are_centred_on_the_walls():
    # Apical septal (14) is centred on the septum (AHA 120), i.e. [75, 165).
    angles = np.array([30.0, 74.9, 75.0, 120.0, 164.9, 165.0, 210.0, 255.0, 300.0, 344.9, 345.0])
    np.testing.assert_array_equal(
        segment_from_angle(angles, Level.APICAL), [13, 13, 14, 14, 14, 15, 15, 16, 16, 16, 13]
    )
    assert set(segment_from_angle(angles, Level.APEX)) == {17}


def test_screen_angle_and_handedness():
    rows, cols = np.array([0.0, 10.0, 5.0]), np.array([5.0, 5.0, 10.0])
    np.testing.assert_allclose(screen_angle_deg(rows, cols, (5.0, 5.0)), [90.0, 270.0, 0.0])
    origin = origin_from_screen(150.0, 60.0, Handedness.CCW)
    assert origin == 90.0
    np.testing.assert_allclose(aha_angle_deg(np.array([150.0, 90.0]), origin, Handedness.CCW), [60.0, 0.0])
    origin_cw = origin_from_screen(150.0, 60.0, Handedness.CW)
    np.testing.assert_allclose(aha_angle_deg(np.array([150.0]), origin_cw, Handedness.CW), [60.0])
