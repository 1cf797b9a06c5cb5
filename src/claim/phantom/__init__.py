"""Procedural LGE phantom: patients with exact labels and ground-truth AHA geometry, and cohorts written to disk.

It sits above ``claim.aha`` (its truth is AHA segments) and ``claim.data`` (it builds ``Patient`` objects and
writes them in EMIDEC layout); nothing in the domain packages depends on it.
"""

from __future__ import annotations

from claim.phantom.cohort import TRUTH_FILE, write_phantom_cohort
from claim.phantom.config import PhantomCase, PhantomConfig, PhantomTruth
from claim.phantom.render import make_phantom, make_phantom_cohort

__all__ = [
    "PhantomConfig",
    "PhantomTruth",
    "PhantomCase",
    "make_phantom",
    "make_phantom_cohort",
    "write_phantom_cohort",
    "TRUTH_FILE",
]
