"""The AHA 17-segment table (Cerqueira et al., Circulation 2002) and angle -> segment arithmetic.

Angle conventions used across claim:

* ``screen_angle_deg``: the mathematical angle of a pixel around a centre with the image *row axis
  pointing down*, i.e. 0 deg = towards +column (right), 90 deg = towards row 0 (up), counterclockwise
  on screen. It depends only on the pixel grid.
* ``angle_deg`` (the AHA circumferential angle): increasing in the direction of segment numbering
  (anterior -> septal -> inferior -> lateral) with 0 at the start of segment 1, so that segment 1 spans
  [0, 60), 2 [60, 120) ... 6 [300, 360) in basal and mid rings. The anterior RV insertion point, the
  1|2 boundary, is therefore at 60 deg and the septum (segments 2-3) is centred at 120 deg.
  ``origin_screen_deg`` is the screen angle of AHA angle 0.
  In the standard display (anterior up, septum on the viewer's left, viewed from the apex) the
  numbering runs counterclockwise on screen; images stored mirrored run clockwise, hence
  ``Handedness``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

__all__ = [
    "Level",
    "Territory",
    "Handedness",
    "Segment",
    "SEGMENTS",
    "TERRITORY_SEGMENTS",
    "segment_ids",
    "screen_angle_deg",
    "aha_angle_deg",
    "segment_from_angle",
    "ANTERIOR_INSERTION_DEG",
    "SEPTUM_CENTRE_DEG",
    "origin_from_screen",
]


class Level(StrEnum):
    BASAL = "basal"
    MID = "mid"
    APICAL = "apical"
    APEX = "apex"  # the apical cap, segment 17


class Territory(StrEnum):
    LAD = "LAD"
    RCA = "RCA"
    LCX = "LCx"


class Handedness(StrEnum):
    """Direction on screen in which the segment numbering runs (see module docstring)."""

    CCW = "ccw"
    CW = "cw"


@dataclass(frozen=True)
class Segment:
    id: int
    level: Level
    name: str
    territory: Territory
    start_deg: float  # sector start in AHA angle (inclusive)
    width_deg: float

    @property
    def centre_deg(self) -> float:
        return (self.start_deg + self.width_deg / 2) % 360


_RING6 = ("anterior", "anteroseptal", "inferoseptal", "inferior", "inferolateral", "anterolateral")
_RING6_TERRITORY = (Territory.LAD, Territory.LAD, Territory.RCA, Territory.RCA, Territory.LCX, Territory.LCX)
_RING4 = ("anterior", "septal", "inferior", "lateral")
_RING4_TERRITORY = (Territory.LAD, Territory.LAD, Territory.RCA, Territory.LCX)
# Apical sectors are 90 deg wide and centred on the centres of the anterior (30 deg), septal
# (120 deg), inferior (210 deg) and lateral (300 deg) walls, so they start 15 deg before 0.
_APICAL_OFFSET_DEG = -15.0


def _build_table() -> dict[int, Segment]:
    table: dict[int, Segment] = {}
    for ring, (level, first) in enumerate(((Level.BASAL, 1), (Level.MID, 7))):
        del ring
        for k in range(6):
            table[first + k] = Segment(
                first + k, level, f"{level.value} {_RING6[k]}", _RING6_TERRITORY[k], 60.0 * k, 60.0
            )
    for k in range(4):
        table[13 + k] = Segment(
            13 + k,
            Level.APICAL,
            f"apical {_RING4[k]}",
            _RING4_TERRITORY[k],
            (_APICAL_OFFSET_DEG + 90.0 * k) % 360,
            90.0,
        )
    table[17] = Segment(17, Level.APEX, "apex", Territory.LAD, 0.0, 360.0)
    return table


SEGMENTS: dict[int, Segment] = _build_table()
TERRITORY_SEGMENTS: dict[Territory, tuple[int, ...]] = {
    t: tuple(s.id for s in SEGMENTS.values() if s.territory == t) for t in Territory
}


def segment_ids(level: Level) -> tuple[int, ...]:
    """Segment ids of one level, in numbering order."""
    return tuple(s.id for s in SEGMENTS.values() if s.level == level)


def screen_angle_deg(rows: np.ndarray, cols: np.ndarray, centre_rc: tuple[float, float]) -> np.ndarray:
    """Angle in [0, 360) of pixels around ``centre_rc`` with row axis down (counterclockwise on screen)."""
    return np.degrees(np.arctan2(-(rows - centre_rc[0]), cols - centre_rc[1])) % 360.0


ANTERIOR_INSERTION_DEG = 60.0
SEPTUM_CENTRE_DEG = 120.0


def origin_from_screen(screen_deg: float, aha_deg: float, handedness: Handedness) -> float:
    """Screen angle of AHA 0 given that the landmark at ``screen_deg`` has AHA angle ``aha_deg``."""
    sign = 1.0 if handedness == Handedness.CCW else -1.0
    return float((screen_deg - sign * aha_deg) % 360.0)


def aha_angle_deg(screen_deg: np.ndarray, origin_screen_deg: float, handedness: Handedness) -> np.ndarray:
    """AHA angle from screen angle: 0 at the anterior RV insertion point, increasing with segment numbers."""
    if handedness == Handedness.CCW:
        return (screen_deg - origin_screen_deg) % 360.0
    return (origin_screen_deg - screen_deg) % 360.0


def segment_from_angle(angle_deg: np.ndarray, level: Level) -> np.ndarray:
    """Segment id (uint8) for AHA angles on one level; pure arithmetic on the table above."""
    angle = np.asarray(angle_deg, dtype=np.float64) % 360.0
    if level == Level.APEX:
        return np.full(angle.shape, 17, dtype=np.uint8)
    if level == Level.APICAL:
        sector = np.floor(((angle - _APICAL_OFFSET_DEG) % 360.0) / 90.0).astype(np.int64) % 4
        return (13 + sector).astype(np.uint8)
    first = 1 if level == Level.BASAL else 7
    sector = np.floor(angle / 60.0).astype(np.int64) % 6
    return (first + sector).astype(np.uint8)
