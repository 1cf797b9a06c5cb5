"""The stage scheduler: dependency order, stages at once in worker processes, errors raised in the parent."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from claim.errors import ClaimError
from claim.experiment.schedule import Stage, run_stages, warn_on_changed_parallelism, worker_threads
from claim.runtime import torch_threads


def _work(root: Path, name: str) -> float:
    """A worker's stage that writes ``<name>.done``: ``a`` and ``c`` each wait until the other has started (so they
    finish only if they run at once), ``b`` needs ``a``'s file, ``bad`` fails, ``killed`` dies."""
    if name == "bad":
        (root / "bad.started").write_text("")
        raise ClaimError("bad input")
    if name == "a" and (root / "beside-bad").exists():
        # Finish only after bad has failed: worker processes start at different times, and an a that finished
        # first would let b start before the failure is known.
        deadline = time.time() + 60
        while not (root / "bad.started").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
    if name == "killed":  # as the out-of-memory killer ends a process: no exception, no clean-up
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "b" and not (root / "a.done").exists():
        raise AssertionError("b ran before a")
    if name == "c" and (root / "chain").exists() and not (root / "a.done").exists():
        raise AssertionError("c ran before a, which b (done) depends on")
    (root / f"{name}.started").write_text("")
    if name in ("a", "c") and (root / "pair").exists():
        other = root / ("c" if name == "a" else "a")
        deadline = time.time() + 60
        while not other.with_suffix(".started").exists():
            if time.time() > deadline:
                raise AssertionError(f"{name} ran alone")
            time.sleep(0.05)
    else:
        time.sleep(0.5)
    (root / f"{name}.done").write_text(name)
    return 0.5


def _stages(root: Path, graph: dict[str, tuple[str, ...]]) -> list[Stage]:
    return [Stage(name, (root / f"{name}.done",), (), lambda name=name: _work(root, name), after)
            for name, after in graph.items()]


def test_independent_stages_run_at_once_and_dependents_wait(tmp_path):
    import functools

    stages = _stages(tmp_path, {"a": (), "c": (), "b": ("a",)})
    (tmp_path / "pair").write_text("")  # a and c wait for each other
    order = []
    run_stages(stages, set(), lambda name, seconds: order.append(name), workers=2, threads=1,
               run_in_worker=functools.partial(_work, tmp_path))
    assert set(order) == {"a", "b", "c"} and order.index("a") < order.index("b")


def test_one_at_a_time_runs_in_list_order_and_skips_done_stages(tmp_path):
    stages = _stages(tmp_path, {"a": (), "b": ("a",), "c": ()})
    (tmp_path / "a.done").write_text("a")
    order = []
    run_stages(stages, {"a"}, lambda name, seconds: order.append(name))
    assert order == ["b", "c"]


def test_a_failed_stage_raises_after_the_running_ones_are_recorded(tmp_path):
    import functools

    stages = _stages(tmp_path, {"a": (), "bad": (), "b": ("a",)})
    (tmp_path / "beside-bad").write_text("")
    recorded = []
    with pytest.raises(ClaimError, match="bad input"):
        run_stages(stages, set(), lambda name, seconds: recorded.append(name), workers=2, threads=1,
                   run_in_worker=functools.partial(_work, tmp_path))
    assert recorded == ["a"]  # finished beside the failure, so a resumed run keeps it; b never started
    assert not (tmp_path / "b.done").exists()


def test_a_killed_worker_names_its_stage_in_one_line_and_finished_stages_are_kept(tmp_path):
    import functools

    stages = _stages(tmp_path, {"a": (), "killed": ("a",), "b": ("killed",)})
    recorded = []
    with pytest.raises(ClaimError, match=r"^stage killed: a worker process was killed .*resume") as caught:
        run_stages(stages, set(), lambda name, seconds: recorded.append(name), workers=2, threads=1,
                   run_in_worker=functools.partial(_work, tmp_path))
    assert "\n" not in str(caught.value)
    assert recorded == ["a"] and not (tmp_path / "b.started").exists()


def test_resuming_with_other_workers_or_threads_warns_and_the_same_settings_do_not(caplog):
    records = {"a": {"seconds": 1.0, "threads": 2, "workers": 1}, "b": {"seconds": 1.0, "threads": 2}}
    with caplog.at_level(logging.WARNING, logger="claim.experiment.schedule"):
        warn_on_changed_parallelism(records, {"a", "b"}, workers=1, threads=2)
        warn_on_changed_parallelism(records, set(), workers=2, threads=1)  # nothing finished: nothing mixes
        assert not caplog.records
        warn_on_changed_parallelism(records, {"a", "b"}, workers=2, threads=1)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "--workers 2 and 1 thread(s)" in message and "--workers 1 with 2 thread(s) per stage" in message


def test_stage_outputs_are_checked_and_unknown_dependencies_refused(tmp_path):
    silent = [Stage("quiet", (tmp_path / "never.txt",), (), lambda: None)]
    with pytest.raises(ClaimError, match="without writing"):
        run_stages(silent, set(), lambda name, seconds: None)
    with pytest.raises(ValueError, match="unknown"):
        run_stages(_stages(tmp_path, {"a": ("z",)}), set(), lambda name, seconds: None)


def test_a_stage_waits_for_every_stage_upstream_not_only_its_direct_parents(tmp_path):
    import functools

    # A resume where b is complete but a, which b read, is run again: c (after b) must wait for a too.
    stages = _stages(tmp_path, {"a": (), "b": ("a",), "c": ("b",)})
    (tmp_path / "b.done").write_text("b")
    (tmp_path / "chain").write_text("")
    order = []
    run_stages(stages, {"b"}, lambda name, seconds: order.append(name), workers=2, threads=1,
               run_in_worker=functools.partial(_work, tmp_path))
    assert order == ["a", "c"]
    with pytest.raises(ValueError, match="cycle"):
        run_stages(_stages(tmp_path, {"x": ("y",), "y": ("x",)}), set(), lambda name, seconds: None)


def test_worker_threads_share_the_cores():
    assert worker_threads(3, 2) == 3
    assert worker_threads(None, 10**6) == 1
    # One rule for a study's stages and an ensemble's members: this process's torch threads, shared out.
    with torch_threads(5):
        assert worker_threads(None, 2) == 2 and worker_threads(None, 1) == 5


def test_tree_memory_counts_pages_shared_with_forked_workers_once():
    # Forked workers share the parent's pages (torch's libraries, the data) until they write them: the machine
    # holds them once, so a sum of resident sets would overstate the study's peak by a factor of the workers.
    import multiprocessing

    import numpy as np
    import psutil

    from claim.experiment.records import TreeMemory

    if getattr(psutil.Process().memory_full_info(), "pss", None) is None:
        pytest.skip("this system reports no proportional set size")
    block = np.ones(2**23)  # 64 MiB, touched, so it is resident and shared after the fork
    workers = [multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        with TreeMemory(interval=0.1) as memory:
            time.sleep(0.5)
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        rss_sum = sum(p.memory_info().rss for p in processes) / 2**20
    finally:
        for worker in workers:
            worker.kill()
            worker.join()
    assert block.sum() == 2**23
    assert block.nbytes / 2**20 < memory.peak_mb < 0.6 * rss_sum, (memory.peak_mb, rss_sum)
