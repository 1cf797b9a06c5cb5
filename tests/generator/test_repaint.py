"""RePaint jump schedule: step counts against the DESIGN numbers and a hand-computed walk."""

from __future__ import annotations

import pytest

from claim.generator.repaint import RePaintPlan, jump_times


@pytest.mark.parametrize(
    ("length", "count", "nfe", "n_times", "n_undo"),
    [(5, 5, 1480, 2661, 1180), (2, 2, 598, 897, 298), (1, 1, 300, 301, 0), (10, 10, 2910, 5521, 2610)],
)
def test_nfe_matches_lefusion_at_t300(length, count, nfe, n_times, n_undo):
    plan = RePaintPlan.build(300, length, count)
    assert plan.nfe == nfe
    assert len(plan.times) == n_times
    assert plan.n_undo == n_undo


def test_hand_computed_tiny_walk():
    # T=6, L=2, n=2: jump points 0 and 2 (t < T - L = 4), each revisited once after going back up 2 steps.
    assert jump_times(6, 2, 2) == [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    assert RePaintPlan.build(6, 2, 2).nfe == 10


@pytest.mark.parametrize(("t", "length", "count"), [(7, 3, 2), (20, 2, 3), (30, 5, 5), (12, 4, 1)])
def test_walk_invariants(t, length, count):
    times = jump_times(t, length, count)
    assert times[0] == t - 1 and times[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(times[:-1], times[1:], strict=True))
    jump_points = len(range(0, t - length, length))
    assert RePaintPlan.build(t, length, count).nfe == t + jump_points * (count - 1) * length


def test_bad_arguments():
    with pytest.raises(ValueError):
        jump_times(300, 0, 5)
