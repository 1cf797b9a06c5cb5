"""Files a segmenter run writes besides its resume point: the ensemble checkpoint, weight snapshots, curves.

Snapshots (``snapshot_every``) are copies of the weights a run would predict with at that step. They exist so that
a run without validation patients (``val_fraction`` 0, the refit of a settled recipe) can still be scored along its
course afterwards; nothing in a run reads them back or selects among them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from claim.data.io import atomic_path
from claim.segmentation.checkpoint import read_checkpoint, save_checkpoint
from claim.segmentation.config import SegmenterConfig

__all__ = ["SNAPSHOT_DIR", "snapshot_path", "list_snapshots", "drop_snapshots_after", "save_ensemble_checkpoint",
           "combine_snapshots", "write_curves"]

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
_SNAPSHOT = re.compile(r"^step_(\d+)\.pt$")


def snapshot_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps its snapshot of ``step``: ``RUN/snapshots/step_<STEP>.pt``, the step in 6 digits
    (``step_000250.pt``)."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{int(step):06d}.pt"


def list_snapshots(run_dir: Path) -> dict[int, Path]:
    """A run's snapshots by step, in step order (empty when it kept none)."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    if not folder.is_dir():
        return {}
    found = {int(m[1]): path for path in folder.iterdir() if (m := _SNAPSHOT.match(path.name))}
    return dict(sorted(found.items()))


def save_ensemble_checkpoint(path: Path, config: SegmenterConfig, payloads: Sequence[Mapping[str, Any]], *,
                             step: int, seed: int, precision: str, metrics: Mapping[str, Any],
                             val_patients: Sequence[str]) -> Path:
    """One checkpoint holding every member's weights (``members.<k>.*``), as ``build_segmenter(config)`` with
    ``config.members`` members loads them; ``best.step`` is ``step``, each member's own step is in
    ``member_steps``."""
    weights = {f"members.{k}.{key}": value for k, p in enumerate(payloads) for key, value in p["model"].items()}
    member_steps = [int(p["step"]) for p in payloads]
    return save_checkpoint(path, config, weights, step=step, seed=seed, precision=precision,
                           best={"step": step, "metrics": dict(metrics), "member_steps": member_steps},
                           member_steps=member_steps, val_patients=list(val_patients))


def drop_snapshots_after(run_dir: Path, step: int) -> list[int]:
    """Delete a run's snapshots of steps after ``step`` (a resumed run's lost part); returns their steps."""
    dropped = [s for s in list_snapshots(run_dir) if s > step]
    for s in dropped:
        snapshot_path(run_dir, s).unlink()
    return dropped


def combine_snapshots(out_dir: Path, member_dirs: Sequence[Path], config: SegmenterConfig, *, seed: int,
                      precision: str, val_patients: Sequence[str]) -> list[int]:
    """Write the ensemble's snapshot of every step all members kept one of, from the members' files as they are now
    (so a resumed member's new weights replace its lost ones), and remove the ensemble's snapshots of other steps.
    Steps only some members kept (members resumed with other cadences) are named in a warning. Returns the steps
    the ensemble folder now holds."""
    per_member = [list_snapshots(d) for d in member_dirs]
    if not per_member:
        return []
    common = sorted(set.intersection(*(set(s) for s in per_member)))
    partial = sorted(set.union(*(set(s) for s in per_member)) - set(common))
    if partial:
        log.warning("train-segmenter: snapshots of steps %s were kept by some members only; the ensemble has "
                    "snapshots of steps %s", partial, common)
    for step in common:
        payloads = [read_checkpoint(snaps[step]) for snaps in per_member]
        target = snapshot_path(out_dir, step)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_ensemble_checkpoint(target, config, payloads, step=step, seed=seed, precision=precision, metrics={},
                                 val_patients=val_patients)
    for step in set(list_snapshots(out_dir)) - set(common):
        snapshot_path(out_dir, step).unlink()
    return common


def write_curves(path: Path, log_path: Path, *, validated: bool = True) -> None:
    """``curves.png``: the training loss, and the validation Dice where the run has validation patients (the
    panel says so where it has none, ``validated`` False, rather than standing empty)."""
    from matplotlib.figure import Figure

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val"]) for r in records if "val" in r]
    if train:
        ax1.plot(*zip(*train, strict=True), lw=0.8)
    ax1.set(xlabel="step", ylabel="Dice + CE loss", title="training loss")
    online = [(r["step"], r["val_online"]) for r in records if "val_online" in r]
    for key, colour in (("infarct_dice", "C0"), ("myocardium_dice", "C1"), ("mvo_dice", "C2")):
        if val:
            ax2.plot([s for s, _ in val], [v[key] for _, v in val], marker="o", ms=3, color=colour,
                     label=f"{key} (weight EMA)" if online else key)
        if online:
            ax2.plot([s for s, _ in online], [v[key] for _, v in online], ls="--", lw=0.8, color=colour,
                     label=f"{key} (online weights)")
    ax2.set(xlabel="step", ylabel="Dice", title="validation (real patients)", ylim=(0, 1))
    if val:
        ax2.legend(fontsize=7)
    elif not validated:
        ax2.text(0.5, 0.5, "no validation patients\n(val_fraction 0): the last step's\nweights are kept; "
                 "score snapshots\nafterwards (snapshot_every)", ha="center", va="center",
                 transform=ax2.transAxes, fontsize=8, color="0.35")
    fig.tight_layout()
    atomic_path(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
