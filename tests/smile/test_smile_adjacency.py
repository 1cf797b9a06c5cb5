"""Segment adjacency derived from the bull's-eye layout, and coronary territories with dominance."""

from __future__ import annotations

from claim.aha.segments import TERRITORY_SEGMENTS, Level, Territory, segment_ids
from claim.smile import Dominance, is_contiguous, segment_adjacency, territory_of, territory_segments
from claim.smile.adjacency import neighbours

# The original SMILE's hand tables (original-code.md section 2.5), 1-based; it never linked segment 17.
ORIGINAL = {
    1: {2, 6, 7},
    2: {1, 3, 8},
    3: {2, 4, 9},
    4: {3, 5, 10},
    5: {4, 6, 11},
    6: {1, 5, 12},
    7: {1, 8, 12, 13},
    8: {2, 7, 9, 13, 14},
    9: {3, 8, 10, 14, 15},
    10: {4, 9, 11, 15},
    11: {5, 10, 12, 15, 16},
    12: {6, 7, 11, 13, 16},
    13: {7, 8, 12, 14, 16},
    14: {8, 9, 13, 15},
    15: {9, 10, 11, 14, 16},
    16: {11, 12, 13, 15},
}


def test_adjacency_is_symmetric_without_self_links():
    adjacency = segment_adjacency()
    assert set(adjacency) == set(range(1, 18))
    for segment, linked in adjacency.items():
        assert segment not in linked
        assert all(segment in adjacency[other] for other in linked)


def test_adjacency_reproduces_the_original_tables_plus_the_apex():
    adjacency = segment_adjacency()
    for segment, expected in ORIGINAL.items():
        assert adjacency[segment] - {17} == expected, segment
    assert adjacency[17] == set(segment_ids(Level.APICAL))


def test_in_ring_neighbours_share_a_boundary():
    adjacency = segment_adjacency()
    for ring in (Level.BASAL, Level.MID):
        ids = segment_ids(ring)
        for k, segment in enumerate(ids):
            same_ring = adjacency[segment] & set(ids)
            assert same_ring == {ids[k - 1], ids[(k + 1) % 6]}
    assert adjacency[13] & set(segment_ids(Level.APICAL)) == {14, 16}


def test_contiguity_and_neighbours():
    assert is_contiguous((7, 8, 13))
    assert is_contiguous((1, 7, 13, 17, 15))
    assert not is_contiguous((7, 9))
    assert not is_contiguous((1, 4))
    assert not is_contiguous(())
    assert neighbours((17,)) == {13, 14, 15, 16}


def test_territories_follow_the_design_table_and_dominance():
    for territory in Territory:
        assert territory_segments(territory) == tuple(sorted(TERRITORY_SEGMENTS[territory]))
    assert territory_segments(Territory.RCA, Dominance.LEFT) == (3, 9)
    assert territory_segments(Territory.LCX, Dominance.LEFT) == (4, 5, 6, 10, 11, 12, 15, 16)
    assert territory_segments(Territory.LAD, Dominance.LEFT) == territory_segments(Territory.LAD)
    for dominance in Dominance:  # every segment belongs to exactly one territory
        owned = sorted(s for t in Territory for s in territory_segments(t, dominance))
        assert owned == list(range(1, 18))
        for territory in Territory:
            assert is_contiguous(territory_segments(territory, dominance))
    assert territory_of(4) == Territory.RCA and territory_of(4, Dominance.LEFT) == Territory.LCX
    assert territory_of(17) == Territory.LAD
