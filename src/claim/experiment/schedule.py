"""Run a study's stages in dependency order: one at a time in this process, or several at once in worker processes.

Two one-thread processes do more work per second on a CPU than one two-thread process (``claim.training.parallel``).
The stages of a fold form a graph (the ``real_only`` segmenter needs only the data; the ``claim`` arm's needs the
joint run), so independent stages can share the cores. Each stage reads its inputs from and writes its outputs to
disk, so a worker needs nothing from the parent but the stage's name; the parent alone clears folders, checks
outputs and writes the state file.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from claim.errors import ClaimError
from claim.training.parallel import KILLED_HINT, call_in_worker, worker_pool, worker_threads

__all__ = ["Stage", "run_stages", "worker_threads", "check_workers", "warn_on_changed_parallelism"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One resumable step of a study.

    Attributes:
        name: its key in ``state.json``.
        outputs: all must exist for the stage to count as complete.
        clear: removed before (re)running, so a crashed stage restarts clean.
        run: the work (in this process; worker processes rebuild the stage by name).
        after: names of the stages whose outputs it reads.
    """

    name: str
    outputs: tuple[Path, ...]
    clear: tuple[Path, ...]
    run: Callable[[], None]
    after: tuple[str, ...] = ()


def check_workers(workers: int) -> None:
    """A worker count below 1 is refused in one line, before anything is written."""
    if workers < 1:
        raise ClaimError(f"--workers must be >= 1, got {workers}")


def warn_on_changed_parallelism(records: dict, done: set[str], workers: int, threads: int) -> None:
    """Warn when a resumed study's finished stages ran with other ``--workers``/``--threads``: stage seconds and
    the wall time then mix two settings, and torch's results can differ in the last bits with the thread count."""
    earlier = {(records[name].get("workers", 1), records[name].get("threads")) for name in done}
    if not earlier or earlier == {(workers, threads)}:
        return
    before = ", ".join(f"--workers {w} with {t} thread(s) per stage" if t is not None else f"--workers {w}"
                       for w, t in sorted(earlier, key=str))
    log.warning("experiment: resuming with --workers %d and %d thread(s) per stage, where the %d finished stages ran "
                "with %s; their times and the wall time mix the settings (use the earlier ones to compare timings)",
                workers, threads, len(done), before)


def _upstream(stages: list[Stage]) -> dict[str, set[str]]:
    """Every stage a stage depends on, directly or through others: on a resume a direct parent may be complete
    while one further up is re-run, and a stage must not start beside a stage rewriting what it reads."""
    after = {stage.name: set(stage.after) for stage in stages}
    closed: dict[str, set[str]] = {}

    def close(name: str, path: tuple[str, ...]) -> set[str]:
        if name in path:
            raise ValueError(f"stages depend on each other in a cycle: {' -> '.join(path + (name,))}")
        if name not in closed:
            closed[name] = set().union(*[{d} | close(d, path + (name,)) for d in after[name]])
        return closed[name]

    return {name: close(name, ()) for name in after}


def _prepare(stage: Stage) -> None:
    for folder in stage.clear:
        if folder.exists():
            shutil.rmtree(folder)
    log.info("experiment: %s ...", stage.name)


def _check(stage: Stage) -> None:
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise ClaimError(f"stage {stage.name} finished without writing {missing}")


def run_stages(stages: list[Stage], done: set[str], finished: Callable[[str, float], None], *, workers: int = 1,
               threads: int | None = None, run_in_worker: Callable[[str], float] | None = None) -> None:
    """Run every stage not in ``done``, each after the stages it reads from; ``finished(name, seconds)`` after each.

    Args:
        stages: in the order they run one at a time (with workers, a free worker takes the first ready stage).
        done: names of the stages already complete (their outputs are reused).
        finished: called in this process when a stage has written its outputs.
        workers: processes running stages at once (1: every stage runs here, in order).
        threads: torch threads of each worker process (None: :func:`worker_threads`).
        run_in_worker: a picklable function that runs the named stage in a worker and returns its seconds.
    """
    names = {stage.name for stage in stages}
    for stage in stages:
        unknown = set(stage.after) - names
        if unknown:
            raise ValueError(f"stage {stage.name} runs after unknown stages {sorted(unknown)}")
    upstream = _upstream(stages)
    pending = [stage for stage in stages if stage.name not in done]
    if workers <= 1 or run_in_worker is None:
        for stage in pending:
            _prepare(stage)
            start = time.perf_counter()
            stage.run()
            _check(stage)
            finished(stage.name, time.perf_counter() - start)
        return
    complete = set(done)
    errors: list[BaseException] = []
    died: list[str] = []
    with worker_pool(workers, worker_threads(threads, workers)) as pool:
        running: dict[Future, Stage] = {}
        while running or (pending and not errors and not died):
            if not errors and not died:
                for stage in [s for s in pending if upstream[s.name] <= complete][:workers - len(running)]:
                    pending.remove(stage)
                    _prepare(stage)
                    running[pool.submit(call_in_worker, run_in_worker, stage.name)] = stage
            if not running:
                raise ClaimError(f"stages {[s.name for s in pending]} wait on stages that never run")
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ready:
                stage = running.pop(future)
                try:
                    seconds = future.result()  # a worker's error is raised here, in the parent
                    _check(stage)
                except BrokenProcessPool:
                    # A worker killed from outside (the system's out-of-memory killer, most often) breaks the
                    # pool: every stage then running fails alike, and none can say which process died.
                    died.append(stage.name)
                    continue
                except Exception as error:  # the stages still running finish and are recorded first
                    errors.append(error)
                    continue
                complete.add(stage.name)
                finished(stage.name, seconds)
    if errors:
        raise errors[0]
    if died:
        raise ClaimError(f"stage{'s' if len(died) > 1 else ''} {', '.join(died)}: a worker process was killed before "
                         f"finishing ({KILLED_HINT}: try fewer --workers); run the same command again to "
                         "resume, the finished stages are kept")
