"""Worker processes that live and die with the stage that started them.

A stage runs independent jobs (the runs of a train stage, the two oracles)
side by side in spawned processes. Three promises on top of
`ProcessPoolExecutor`:

- a worker dies with its parent: `kill -9` of the stage (or of `dvc repro`)
  leaves no process training on, to write files after DVC has given up;
- the first job to fail stops the others at once (a corrupt checkpoint or a
  diverged run is reported without the other run training to its end);
- Ctrl-C reaches the parent only: it stops the workers and says so in one
  line, instead of one KeyboardInterrupt traceback per process.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from pipeline.errors import RgfError

J = TypeVar("J")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _watch_parent(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this process exit when process `parent` dies (a pool initializer).

    On Linux the kernel sends SIGKILL at the parent's death (prctl
    PR_SET_PDEATHSIG); elsewhere a thread polls the parent's pid. Ctrl-C is
    left to the parent, which stops its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _stop(pool: ProcessPoolExecutor) -> None:
    # no public way to end running jobs before Python 3.14 (terminate_workers)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(5)


def run_jobs(fn: Callable[[J], R], jobs: Iterable[J], workers: int) -> list[R]:
    """fn(job) for every job, in `workers` spawned processes (in this one when
    `workers` is 1); the results in the jobs' order. The first job to fail,
    or Ctrl-C, stops the others and raises. Spawn, not fork: a forked torch
    process can deadlock in OpenMP."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        futures = [pool.submit(fn, job) for job in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            raise failed[0].exception()
        results = [f.result() for f in futures]
    except BrokenProcessPool:
        _stop(pool)
        raise RgfError(
            "a worker process died abruptly (killed, or out of memory or another resource limit); "
            "lower `workers`, `train.threads` or the batch size, or raise the limit (ulimit)"
        ) from None
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return results
