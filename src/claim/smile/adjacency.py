"""Segment adjacency and coronary territories, derived from the bull's-eye layout in ``claim.aha.segments``.

Adjacency is geometry, not a hand table: two segments touch when they lie in the same ring and share a boundary
angle, or lie in neighbouring rings (basal-mid, mid-apical) with overlapping angular spans; the apical cap 17
touches every apical segment. For the basal, mid and apical rings this reproduces the original SMILE tables
(``original-code.md`` section 2.5), which had no links to segment 17.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cache

from claim.aha.segments import SEGMENTS, TERRITORY_SEGMENTS, Level, Territory

__all__ = [
    "Dominance",
    "RING_ORDER",
    "segment_adjacency",
    "neighbours",
    "is_contiguous",
    "territory_segments",
    "territory_of",
]

# Rings from base to apex: adjacent entries touch across the long axis.
RING_ORDER: tuple[Level, ...] = (Level.BASAL, Level.MID, Level.APICAL, Level.APEX)


class Dominance(StrEnum):
    """Coronary dominance: which artery supplies the inferior wall.

    ``right`` (about 85 % of people) is the standard AHA assignment. ``left``: the LCx supplies the inferior wall,
    so the inferior segments 4, 10 and 15 move from the RCA to the LCx (the RCA keeps the inferoseptal 3 and 9).
    """

    RIGHT = "right"
    LEFT = "left"


_LEFT_DOMINANT_MOVES = (4, 10, 15)  # inferior segments supplied by the LCx in left dominance


def _span(segment_id: int) -> tuple[float, float]:
    segment = SEGMENTS[segment_id]
    return segment.start_deg % 360.0, segment.width_deg


def _share_boundary(a: int, b: int) -> bool:
    (sa, wa), (sb, wb) = _span(a), _span(b)
    return abs(((sa + wa) - sb) % 360.0) < 1e-9 or abs(((sb + wb) - sa) % 360.0) < 1e-9


def _overlap(a: int, b: int) -> bool:
    """True when the open angular spans of two segments overlap by more than a point (wrap-around aware)."""
    (sa, wa), (sb, wb) = _span(a), _span(b)
    if wa >= 360.0 or wb >= 360.0:
        return True
    # Shift b's start into [sa, sa + 360) and test both orderings on the circle.
    offset = (sb - sa) % 360.0
    return offset < wa - 1e-9 or (360.0 - offset) < wb - 1e-9


@cache
def segment_adjacency() -> dict[int, frozenset[int]]:
    """Neighbours of every segment 1-17 (symmetric, no self links)."""
    adjacency: dict[int, set[int]] = {s: set() for s in SEGMENTS}
    ring_index = {level: i for i, level in enumerate(RING_ORDER)}
    for a in SEGMENTS:
        for b in SEGMENTS:
            if a >= b:
                continue
            ra, rb = ring_index[SEGMENTS[a].level], ring_index[SEGMENTS[b].level]
            same_ring = ra == rb and _share_boundary(a, b)
            next_ring = abs(ra - rb) == 1 and _overlap(a, b)
            if same_ring or next_ring:
                adjacency[a].add(b)
                adjacency[b].add(a)
    return {s: frozenset(n) for s, n in adjacency.items()}


def neighbours(segments: Iterable[int]) -> set[int]:
    """Segments touching any of ``segments``, excluding the segments themselves."""
    chosen = set(segments)
    adjacency = segment_adjacency()
    return {n for s in chosen for n in adjacency[s]} - chosen


def is_contiguous(segments: Iterable[int]) -> bool:
    """True when ``segments`` form one connected group in the adjacency graph (an empty set is not)."""
    remaining = set(segments)
    if not remaining:
        return False
    adjacency = segment_adjacency()
    stack = [remaining.pop()]
    while stack:
        current = stack.pop()
        linked = adjacency[current] & remaining
        remaining -= linked
        stack.extend(linked)
    return not remaining


def territory_segments(territory: Territory, dominance: Dominance = Dominance.RIGHT) -> tuple[int, ...]:
    """Segments supplied by ``territory`` (DESIGN.md table; ``left`` dominance moves 4, 10, 15 to the LCx)."""
    segments = set(TERRITORY_SEGMENTS[Territory(territory)])
    if Dominance(dominance) == Dominance.LEFT:
        if territory == Territory.RCA:
            segments -= set(_LEFT_DOMINANT_MOVES)
        elif territory == Territory.LCX:
            segments |= set(_LEFT_DOMINANT_MOVES)
    return tuple(sorted(segments))


def territory_of(segment_id: int, dominance: Dominance = Dominance.RIGHT) -> Territory:
    """The territory supplying one segment."""
    for territory in Territory:
        if segment_id in territory_segments(territory, dominance):
            return territory
    raise ValueError(f"segment {segment_id} is not an AHA segment (1-17)")
