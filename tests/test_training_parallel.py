"""Jobs in worker processes (``claim.training.parallel``): results in call order, each worker's thread count, every
job finishing before the first error is raised here, a killed worker reported in one line."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import pytest
import torch

from claim.errors import ClaimError, InputError
from claim.training.parallel import run_in_workers


class _Unrebuildable(Exception):
    def __init__(self, code: int, text: str) -> None:  # pickles as args=(message,), which this cannot take
        super().__init__(f"code {code}: {text}")


def _job(root: Path, name: str) -> tuple[str, int]:
    pid_file = root / f"{name}.pid"
    pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
    pid_file.with_suffix(".tmp").replace(pid_file)  # whole, for the test that reads it
    if name == "interrupted":  # waits for the test's Ctrl-C, which the worker must not take
        deadline = time.time() + 60
        while not (root / "sent").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    if name == "unrebuildable":
        raise _Unrebuildable(3, "odd")
    if name == "bad":
        raise InputError(root / "bad.nii.gz", "not a NIfTI file")
    if name == "killed":  # as the out-of-memory killer ends a process: no exception, no clean-up
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "slow":  # still running when "bad" fails: it must finish all the same
        time.sleep(1.0)
    (root / f"{name}.done").write_text("")
    return name, torch.get_num_threads()


def test_results_come_in_call_order_from_workers_with_the_threads_asked_for(tmp_path):
    calls = [{"root": tmp_path, "name": n} for n in ("a", "b", "c")]
    assert run_in_workers(_job, calls, workers=2, threads=1, what="jobs") == [("a", 1), ("b", 1), ("c", 1)]
    assert run_in_workers(_job, calls[:1], workers=1, threads=2, what="jobs") == [("a", 2)]


def test_every_job_finishes_before_the_first_error_is_raised_whole(tmp_path):
    calls = [{"root": tmp_path, "name": n} for n in ("bad", "slow", "c")]
    with pytest.raises(InputError) as caught:
        run_in_workers(_job, calls, workers=2, threads=1, what="jobs")
    # The error a worker raised, rebuilt in the parent with its path and problem (the CLI prints it in one line).
    assert caught.value.path == tmp_path / "bad.nii.gz" and caught.value.problem == "not a NIfTI file"
    assert str(caught.value) == f"{tmp_path / 'bad.nii.gz'}: not a NIfTI file"
    assert (tmp_path / "slow.done").exists() and (tmp_path / "c.done").exists()


def test_an_input_error_survives_pickling():
    error = pickle.loads(pickle.dumps(InputError("x/y.png", "empty image")))
    assert isinstance(error, InputError) and error.path == Path("x/y.png") and str(error) == "x/y.png: empty image"


def test_a_killed_worker_is_one_line_naming_the_work(tmp_path):
    with pytest.raises(ClaimError, match=r"^members: a worker process was killed .*: run it again") as caught:
        run_in_workers(_job, [{"root": tmp_path, "name": "killed"}], workers=1, threads=1, what="members",
                       when_killed="run it again")
    assert "\n" not in str(caught.value)


def test_an_error_the_parent_cannot_rebuild_arrives_as_its_text_not_as_a_killed_worker(tmp_path):
    with pytest.raises(RuntimeError, match="^_Unrebuildable: code 3: odd$"):
        run_in_workers(_job, [{"root": tmp_path, "name": "unrebuildable"}], workers=1, threads=1, what="jobs")


def test_a_ctrl_c_sent_to_a_worker_leaves_its_job_running(tmp_path):
    import threading

    def interrupt_the_worker() -> None:
        pid_file = tmp_path / "interrupted.pid"
        deadline = time.time() + 60
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGINT)  # as a terminal's Ctrl-C reaches every process
        (tmp_path / "sent").write_text("")

    sender = threading.Thread(target=interrupt_the_worker)
    sender.start()
    try:
        result = run_in_workers(_job, [{"root": tmp_path, "name": "interrupted"}], workers=1, threads=1, what="jobs")
    except KeyboardInterrupt:  # the worker took it (as a BaseException it would end the whole pytest run)
        pytest.fail("the worker was interrupted")
    finally:
        sender.join()
    assert result == [("interrupted", 1)] and (tmp_path / "sent").exists()


def test_workers_ignore_ctrl_c_from_their_start_and_the_parent_gets_its_handler_back():
    import multiprocessing

    from claim.training.parallel import _Pool

    def handler(signum, frame):  # the parent's own handler, whatever the shell running the tests left in place
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGINT, handler)
    try:
        # No initializer: what the worker reports is what it inherited at its start, before any import.
        with _Pool(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, before)
