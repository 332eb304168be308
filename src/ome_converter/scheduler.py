"""Processes across files, threads within a file: the one module that talks to preadator.

Workers are started with ``spawn``: each is a fresh interpreter, never a fork of the parent,
and starts its own JVM the first time it reads through Bio-Formats, then keeps it for every
later file. preadator's ``ProcessManager`` sizes the pool and hands each worker its thread
budget (``ProcessManager.thread()``). preadator 0.2.0's ``submit_process`` returns no future
and its ``join_processes`` kills everything at the first error, so this module follows the
futures preadator keeps itself, and a worker that dies fails its own job, not the run.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: name under which preadator puts our event queue into each worker's globals
EVENTS = "ome_converter_events"
START_METHOD = "spawn"
POLL = 0.25
#: a pool that breaks before any job started, this many times in a row, is given up
POOL_START_TRIES = 2

#: ``fn(payload, threads, report)`` run in a worker; ``report(n)`` counts n units of progress
Task = Callable[[object, int, Callable[[int], None]], object]


# -- how many processes and threads ---------------------------------------------------------------

def cgroup_cores(cgroup: Path = Path("/proc/self/cgroup"),
                 root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``), if any."""
    try:
        lines = cgroup.read_text().splitlines()
    except OSError:
        lines = []
    v2 = [ln.split(":", 2)[2] for ln in lines if ln.startswith("0::")]
    v1 = [ln.split(":", 2)[2] for ln in lines
          if len(ln.split(":", 2)) == 3 and "cpu" in ln.split(":", 2)[1].split(",")]
    candidates = [(root / p.lstrip("/") / "cpu.max", None) for p in v2] + [(root / "cpu.max", None)]
    for p in v1 + ["/"]:
        for base in (root / "cpu", root / "cpu,cpuacct"):
            d = base / p.lstrip("/")
            candidates.append((d / "cpu.cfs_quota_us", d / "cpu.cfs_period_us"))
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            continue
        try:
            return max(1, math.ceil(int(quota) / int(period)))
        except (ValueError, ZeroDivisionError):
            continue
    return None


def available_cores() -> int:
    """The CPUs this process may use: its affinity, capped by a container's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cores()
    return max(1, min(cores, quota) if quota else cores)


def choose(jobs: int, cores: int, workers: int | None = None,
           threads: int | None = None) -> tuple[int, int]:
    """``(processes, threads per process)``: one big file gets every thread in one process,
    many files get one process per core. Explicit values win."""
    if workers is None:
        workers = max(1, min(cores, jobs))
    if threads is None:
        threads = max(1, cores // workers)
    return workers, threads


# -- inside a worker ---------------------------------------------------------------------------

_worker_ready = False


def _watch_parent(parent: int) -> None:
    """A worker whose parent is gone (killed) exits instead of waiting for work forever."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _child(fn: Task, key: Hashable, payload: object, log_level: int, share: int):
    """Run one job in a worker: announce it, take the thread budget, run ``fn``.

    ``share`` is more than the budget when fewer jobs than workers remain: the idle workers'
    threads go to the busy ones.
    """
    global _worker_ready
    from preadator import ProcessManager, preadator

    events = getattr(preadator, EVENTS)
    events.put(("start", key, os.getpid(), multiprocessing.get_start_method()))
    if not _worker_ready:
        from .logsetup import configure_worker

        configure_worker(log_level)
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True,
                         name="parent-watch").start()
        _worker_ready = True

    def report(n: int = 1) -> None:
        events.put(("progress", key, n))

    with ProcessManager.thread() as budget:
        return fn(payload, max(budget.count, share), report)


# -- in the parent ---------------------------------------------------------------------------------

class _WorkerNames:
    """preadator's queue of worker names, filled before any worker starts.

    preadator fills a ``multiprocessing.Queue``, whose ``put`` returns before a feeder thread
    has written the item to the pipe, and each worker's initializer takes its name with
    ``get(timeout=0)``: a worker that starts before the feeder ran finds it empty, raises, and
    breaks the whole pool (seen: a file reported as failed because its pool never started).
    ``SimpleQueue.put`` writes to the pipe before it returns, so every name is there first.
    """

    def __init__(self, names: Sequence[str]):
        self._queue = multiprocessing.get_context(START_METHOD).SimpleQueue()
        for name in names:
            self._queue.put(name)

    def get(self, timeout: float | None = None) -> str:
        return self._queue.get()


@dataclass
class _Pool:
    size: int
    events: object
    futures: dict
    started: dict


class Scheduler:
    """Runs jobs in a pool of worker processes and reports results, progress and deaths.

    ``on_done(key, result)``, ``on_progress(key, n)``, ``on_died(key, reason)``, ``tick()``
    are called in the parent's main thread.
    """

    def __init__(self, workers: int, threads: int, log_level: int = logging.INFO):
        self.workers = workers
        self.threads = threads
        self.log_level = log_level
        self.worker_start_methods: set[str] = set()
        self.worker_pids: set[int] = set()
        self._pool: _Pool | None = None
        import preadator.preadator as pp

        # we shut our pools down ourselves; preadator's exit hook would re-raise old errors
        atexit.unregister(pp.destroy_executors)

    # -- pool lifecycle --

    def _start(self, size: int) -> _Pool:
        from preadator import ProcessManager

        ProcessManager.num_processes(size)
        ProcessManager.num_threads(size * self.threads)
        ProcessManager.threads_per_process(self.threads)
        ProcessManager.threads_per_request(self.threads)
        events = multiprocessing.get_context(START_METHOD).SimpleQueue()
        # preadator builds its executor and queues on the default context: make that 'spawn'
        # while it does (the executor keeps the context it was built with), then put it back
        previous = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(START_METHOD, force=True)
        try:
            ProcessManager.init_processes(pnames="ome_converter worker", **{EVENTS: events})
        finally:
            multiprocessing.set_start_method(previous, force=True)
        from preadator import preadator

        # before any worker exists (they spawn at the first submit), so all of them see it
        preadator._manager_args["process_names"] = _WorkerNames(
            [f"ome_converter worker {i + 1}" for i in range(size)])
        log.debug("started a pool of %d %s worker process(es), %d thread(s) each",
                  size, START_METHOD, self.threads)
        self._pool = _Pool(size, events, {}, {})
        return self._pool

    def _stop(self, kill: bool = False) -> None:
        """Shut the pool down (killing busy workers when ``kill``) and reset preadator."""
        from preadator import ProcessManager, preadator

        pool = self._pool
        self._pool = None
        if pool is None:
            return
        executor = ProcessManager._process_executor
        if kill:
            busy = {pid for fut, key in pool.futures.items()
                    if not fut.done() and (pid := pool.started.get(key)) is not None}
            for pid in busy:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        ProcessManager._process_executor = None
        ProcessManager._processes = None
        preadator._manager_args["running"] = False
        try:
            pool.events.close()
        except Exception:  # pragma: no cover - best effort
            pass

    def close(self, kill: bool = False) -> None:
        self._stop(kill=kill)

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None)

    # -- running jobs --

    def _drain(self, pool: _Pool, on_progress) -> None:
        while not pool.events.empty():
            event = pool.events.get()
            if event[0] == "start":
                _, key, pid, method = event
                pool.started[key] = pid
                self.worker_pids.add(pid)
                self.worker_start_methods.add(method)
            elif event[0] == "progress":
                on_progress(event[1], event[2])

    def _run_pool(self, size: int, fn: Task, jobs: Sequence[tuple[Hashable, object]],
                  on_done, on_progress, tick) -> tuple[list, list]:
        """Run ``jobs`` in a pool of ``size``; if it breaks, return (started, not started)
        keys of the jobs it did not finish."""
        from preadator import ProcessManager

        pool = self._pool if self._pool is not None and self._pool.size == size else None
        if pool is None:
            self._stop()
            pool = self._start(size)
        pool.futures.clear()
        pool.started.clear()
        share = max(self.threads, self.workers * self.threads // max(1, min(size, len(jobs))))
        for key, payload in jobs:
            ProcessManager.submit_process(_child, fn, key, payload, self.log_level, share)
            pool.futures[ProcessManager._processes[-1]] = key
        remaining = set(pool.futures)
        unfinished: list = []
        broken = False
        while remaining:
            done, remaining = wait(remaining, timeout=POLL, return_when=FIRST_COMPLETED)
            self._drain(pool, on_progress)
            for fut in done:
                key = pool.futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    unfinished.append(key)
                    continue
                except Exception as exc:  # the job's result could not come back
                    result = exc
                    log.debug("job %s raised in its worker:\n%s", key,
                              "".join(traceback.format_exception(exc)))
                on_done(key, result)
            tick()
            if broken:
                # the executor fails every other pending future at once; collect them
                done, remaining = wait(remaining, timeout=30)
                remaining = set()
                self._drain(pool, on_progress)
                for fut in done:
                    key = pool.futures[fut]
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        unfinished.append(key)
                    else:
                        on_done(key, exc if exc is not None else fut.result())
        if broken:
            self._stop()
        started = [k for k in unfinished if k in pool.started]
        not_started = [k for k in unfinished if k not in pool.started]
        return started, not_started

    def run(self, fn: Task, jobs: Sequence[tuple[Hashable, object]],
            on_done: Callable[[Hashable, object], None],
            on_died: Callable[[Hashable, str], None],
            on_progress: Callable[[Hashable, int], None] = lambda key, n: None,
            tick: Callable[[], None] = lambda: None) -> None:
        """Run ``fn`` on every job in the workers. A job whose worker dies is reported through
        ``on_died``: when several jobs were running at that moment, each is re-run alone to
        tell which one kills its worker, so the others still convert."""
        payloads = dict(jobs)
        queue = [k for k, _ in jobs]
        size = max(1, min(self.workers, len(queue)))
        empty_breaks = 0
        while queue:
            started, not_started = self._run_pool(
                self._pool.size if self._pool else size, fn,
                [(k, payloads[k]) for k in queue], on_done, on_progress, tick)
            queue = not_started
            if not started and not_started:
                empty_breaks += 1
                if empty_breaks >= POOL_START_TRIES:
                    for key in not_started:
                        on_died(key, "worker processes could not be started")
                    return
                continue
            empty_breaks = 0
            if len(started) == 1:
                on_died(started[0], _DIED)
            elif started:
                for key in started:  # which of them killed its worker?
                    alone, never = self._run_pool(1, fn, [(key, payloads[key])],
                                                  on_done, on_progress, tick)
                    if alone or never:
                        on_died(key, _DIED)
                self._stop()


_DIED = "its worker process died (killed, out of memory, or crashed)"


def parent_has_jvm() -> bool:
    """True if a JVM library is mapped into this process (the parent must never have one)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # pragma: no cover - not Linux
        import sys

        jpype = sys.modules.get("jpype")
        return bool(jpype is not None and jpype.isJVMStarted())
    return "libjvm" in maps
