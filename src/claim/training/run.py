"""The run folder and step loop every trainer shares: resume guard, ``config.json``, JSONL log, cadences.

A run folder holds one run. Starting a new run where one exists is refused unless it is resumed; a resumed run
must repeat the saved settings (step counts excepted), its log is cut back to the resumed step, and every random
draw of step ``s`` comes from :func:`step_generator` so the steps after a resume equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from claim.config import Config
from claim.data.io import write_json
from claim.errors import ClaimError
from claim.output import OutputFolder, fingerprint, write_manifest

__all__ = ["LOG_NAME", "CONFIG_NAME", "RunFolder", "Cadence", "is_due", "run_steps", "step_generator",
           "check_resume", "check_checkpoint_resume", "default_checkpoint_every"]

LOG_NAME = "train_log.jsonl"
CONFIG_NAME = "config.json"


def step_generator(seed: int, step: int, rank: int | None = None) -> torch.Generator:
    """The CPU generator of training step ``step`` (on process ``rank``): a pure function of its arguments."""
    value = int(seed) * 1_000_003 + int(step) if rank is None else int(seed) * 1_000_003 + int(step) * 1_009 + rank
    return torch.Generator().manual_seed(value % (2**63 - 1))


def check_resume(path: Path, saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse a resume whose settings differ from the saved run's (configs compared except ``RESUMABLE`` fields).

    ``saved`` and ``now`` map names to configs or plain JSON values; ``seed`` gets its own message.
    """
    if "seed" in now and int(saved.get("seed", -1)) != int(now["seed"]):
        raise ClaimError(f"{path}: --resume with seed {now['seed']}, but the run used seed {saved.get('seed')}")
    for key, value in now.items():
        old = saved.get(key)
        if isinstance(value, Config):
            diff = old.resume_diff(value) if isinstance(old, Config) else {"(all)": (old, value.to_dict())}
            if diff:
                # A preset's defaults can change between versions: the run's own saved config continues it as it was.
                raise ClaimError(f"{path}: --resume with a different {key} config (checkpoint vs now: {diff}); "
                                 "pass the run's config.json with -c to continue it as it was")
        elif key == "data" and old != value:
            raise ClaimError(f"{path}: --resume with different data than the run (files or their content differ); "
                             "resume on the run's data, or start a new run")
        elif key != "seed" and json.loads(json.dumps(old, default=str)) != json.loads(json.dumps(value, default=str)):
            raise ClaimError(f"{path}: --resume with different {key} than the run (was {old!r}, now {value!r})")


def check_checkpoint_resume(path: Path, payload: Mapping[str, Any], saved_config: Config, config: Config,
                            seed: int, data_identity: list[str]) -> None:
    """A trainer's resume guard: the checkpoint's config (``RESUMABLE`` fields aside), seed and data must be the
    run's; checkpoints written before data hashes existed resume without the data check."""
    saved: dict[str, Any] = {"config": saved_config, "seed": payload["seed"]}
    now: dict[str, Any] = {"config": config, "seed": seed}
    if "data_identity" in payload:
        saved["data"], now["data"] = payload["data_identity"], data_identity
    check_resume(path, saved, now)


class RunFolder:
    """The folder of one training run, owned by claim as a whole (``claim.output``).

    Args:
        out_dir: the run folder.
        command: the command whose run it is (``train-generator``, ...), named in messages and the manifest.
        main: whether this process writes files (rank 0 under ``accelerate launch``).
    """

    def __init__(self, out_dir: Path, command: str, *, main: bool = True) -> None:
        self.out_dir, self.command, self.main = Path(out_dir), command, main
        self.log_path = self.out_dir / LOG_NAME
        self._replace = False

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def claim(self, *, resume: bool, overwrite: bool = False) -> None:
        """Before any work: refuse a folder holding files claim did not write, and an earlier run unless it is
        resumed (or replaced with ``overwrite``)."""
        if resume and overwrite:
            raise ClaimError(f"{self.out_dir}: --resume continues a run and --overwrite replaces it; pass one")
        state = OutputFolder(self.out_dir, self.command, overwrite=overwrite, resume=resume).check()
        self._replace = state == "ours" and overwrite  # cleared by the writing process in start()

    def start(self, record: Mapping[str, Any], resumed_step: int | None, *,
              inputs: Sequence[Path | str | None] = ()) -> None:
        """Create the folder, write its manifest and ``config.json``, and keep the log only up to ``resumed_step``
        (None: a new log)."""
        if not self.main:
            return
        if self._replace and self.out_dir.is_dir():
            shutil.rmtree(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._record, self._inputs = _json_ready(record), fingerprint(inputs)
        write_manifest(self.out_dir, self.command, config=self._record, inputs=self._inputs, owns_folder=True)
        write_json(self.path(CONFIG_NAME), _json_ready(record))
        kept = []
        if resumed_step is not None and self.log_path.exists():
            kept = [line for line in self.log_path.read_text().splitlines()
                    if line and json.loads(line)["step"] <= resumed_step]
        self.log_path.write_text("".join(line + "\n" for line in kept))

    def finish(self) -> None:
        """At the end of a run: the manifest lists every file the run wrote."""
        if self.main and hasattr(self, "_record"):
            write_manifest(self.out_dir, self.command, config=self._record, inputs=self._inputs, owns_folder=True)

    def log(self, record: Mapping[str, Any]) -> None:
        if self.main:
            with self.log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


def _json_ready(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def default_checkpoint_every(steps: int, cap: int = 500) -> int:
    """Checkpoint cadence when none is given: at most a quarter of the run (and at most ``cap``), so a kill at any
    point after the first quarter leaves a checkpoint to resume from."""
    return max(1, min(cap, steps // 4))


def is_due(done: int, total: int, every: int, *, at_end: bool | None) -> bool:
    """Whether a periodic action runs after step ``done`` of ``total``.

    ``at_end``: True runs it after the last step too, False never after the last step (the caller does its own
    final action), None only when the last step falls on a multiple of ``every``.
    """
    if done == total and at_end is not None:
        return at_end
    return bool(every) and done % every == 0


@dataclass(frozen=True)
class Cadence:
    """Run ``action(done)`` every ``every`` steps (0: never), with ``at_end`` as in :func:`is_due`."""

    every: int
    action: Callable[[int], None]
    at_end: bool | None = None


def run_steps(run: RunFolder, start: int, total: int, step_fn: Callable[[int], dict[str, Any]],
              cadences: Sequence[Cadence] = (), *, desc: str, progress: bool = True,
              postfix: Callable[[dict[str, Any]], dict[str, str]] | None = None,
              bar_position: int | None = None) -> list[dict[str, Any]]:
    """Steps ``start .. total-1``: ``step_fn(step)`` returns the step's log entry, which is logged (with ``step`` =
    steps done and ``seconds`` since the loop began) before the cadences due after it run in order.
    ``bar_position`` puts the progress bar on that line, for runs side by side in worker processes.

    Returns:
        The entries logged by this call.
    """
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(start, total), desc=desc, unit="step", disable=not (progress and run.main), leave=False,
               position=bar_position)
    for step in bar:
        done = step + 1
        entry = {"step": done, **step_fn(step)}
        entry["seconds"] = round(time.perf_counter() - t0, 4)
        run.log(entry)
        history.append(entry)
        if postfix is not None:
            bar.set_postfix(postfix(entry))
        for cadence in cadences:
            if is_due(done, total, cadence.every, at_end=cadence.at_end):
                cadence.action(done)
    return history
