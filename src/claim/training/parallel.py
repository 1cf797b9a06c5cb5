"""Independent jobs in worker processes that share the CPU's cores, each with its own torch threads.

On a CPU our networks are small, and torch's intra-op threads scale poorly over them: two one-thread processes do
more work per second than one two-thread process (a standard segmenter step on 2 cores: 0.29 s with 2 threads,
0.41-0.42 s in each of two one-thread processes running together, 0.21 s per step of throughput). The study's
stages and an ensemble's members use these workers. Python's process pool does the work; what is added here is
what a long training job needs around it: spawned workers (fork is unsafe once torch's thread pools exist) with
their thread count set, workers that die with their parent, progress bars that do not overwrite each other, and a
Ctrl-C that the parent alone receives and answers by stopping the workers at once instead of waiting for their
jobs (a terminal sends it to every process of the group, and each worker would print its own traceback).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch
from tqdm import tqdm

from claim.errors import ClaimError

__all__ = ["worker_threads", "worker_pool", "run_in_workers", "call_in_worker", "KILLED_HINT"]

KILLED_HINT = "often for lack of memory"


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while workers are started: a process started with SIGINT ignored keeps ignoring it (Python
    installs its KeyboardInterrupt handler only over the default), also while it imports, before any initializer
    could run. Only the main thread may change signal handlers; elsewhere the workers inherit what is set."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # (None: a handler installed from C, which Python could not put back)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Pool(ProcessPoolExecutor):
    # Workers are started on demand, from ``submit`` (the spawn method), so that is where Ctrl-C is kept from them.
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with _sigint_ignored():
            return super().submit(fn, *args, **kwargs)


def worker_threads(threads: int | None, workers: int) -> int:
    """Torch threads of each worker: ``threads`` when given, else this process's torch threads shared out (at
    least 1). The one rule for a study's stage workers and an ensemble's member workers alike: torch's count
    follows ``--threads``, OMP_NUM_THREADS and the physical cores, where ``cpu_count`` also counts SMT siblings."""
    if threads is not None:
        return threads
    return max(1, torch.get_num_threads() // workers)


def _init_worker(threads: int, log_level: int, bar_lock: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers (see _sigint_ignored)
    torch.set_num_threads(threads)
    logging.basicConfig(level=log_level, format="%(message)s")
    tqdm.set_lock(bar_lock)  # one lock for every worker's bars, so lines at different positions do not interleave
    if sys.platform.startswith("linux"):  # a worker whose parent dies (SIGKILL, SIGTERM) dies too, not writing on
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def worker_pool(workers: int, threads: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` spawned processes with ``threads`` torch threads each. Leaving the block by an
    exception (Ctrl-C, SIGTERM as SystemExit) terminates the workers rather than waiting for their jobs, which
    resume from their own checkpoints when the command is run again."""
    context = multiprocessing.get_context("spawn")
    initargs = (threads, logging.getLogger().getEffectiveLevel(), context.RLock())
    with _Pool(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        try:
            yield pool
        except BaseException:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def call_in_worker(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, for a worker to run: an error the parent could not rebuild from its pickle
    would break the pool and read as a killed worker, so such an error is sent as its text (a ``ClaimError`` stays
    one, for the CLI's one-line message)."""
    try:
        return function(*args, **kwargs)
    except Exception as error:
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            kind = ClaimError if isinstance(error, ClaimError) else RuntimeError
            raise kind(f"{type(error).__name__}: {error}") from error
        raise


def run_in_workers(function: Callable[..., Any], calls: Sequence[dict[str, Any]], *, workers: int, threads: int,
                   what: str, when_killed: str = "use fewer workers; run the command again to resume") -> list[Any]:
    """``function(**call)`` for every call, ``workers`` at a time in worker processes; the results in call order.

    Every call runs to its end even when another fails; the first error (in call order) is then raised here. A
    worker killed from outside (the out-of-memory killer, most often) ends the others too, and is reported as one
    line naming ``what``, with ``when_killed`` as the advice.
    """
    with worker_pool(workers, threads) as pool:
        futures: list[Future] = [pool.submit(call_in_worker, function, **call) for call in calls]
        wait(futures)
    results, errors, killed = [], [], False
    for future in futures:
        try:
            results.append(future.result())
        except BrokenProcessPool:
            killed = True
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]
    if killed:
        raise ClaimError(f"{what}: a worker process was killed before finishing ({KILLED_HINT}): {when_killed}")
    return results
