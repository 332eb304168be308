"""The process pool: spawned workers, thread budgets, progress, and dead workers failing only
their own job."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from ome_converter.scheduler import Scheduler


def work(payload, threads, report):
    """A job: ``("ok", n)`` squares n; ``("die", d)`` kills its worker after d seconds."""
    what, value = payload
    if what == "die":
        time.sleep(value)
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "raise":
        raise ValueError(f"bad {value}")
    if what == "slow":
        time.sleep(value)
    for _ in range(3):
        report(1)
    return {"value": value * value if what == "ok" else value, "threads": threads,
            "pid": os.getpid(), "method": multiprocessing.get_start_method()}


def _run(sched, jobs):
    done, died, progress = {}, {}, {}

    def on_progress(key, n):
        progress[key] = progress.get(key, 0) + n

    sched.run(work, jobs, lambda k, r: done.__setitem__(k, r),
              lambda k, why: died.__setitem__(k, why), on_progress)
    return done, died, progress


def test_results_progress_threads_and_spawned_workers():
    before = multiprocessing.get_start_method(allow_none=True)
    with Scheduler(workers=2, threads=3) as sched:
        jobs = [(f"j{i}", ("ok", i)) for i in range(6)]
        done, died, progress = _run(sched, jobs)
        # a second batch reuses the same worker processes
        done2, _, _ = _run(sched, [("again", ("ok", 7))])
    assert died == {}
    assert {k: r["value"] for k, r in done.items()} == {f"j{i}": i * i for i in range(6)}
    assert progress == {f"j{i}": 3 for i in range(6)}
    assert {r["threads"] for r in done.values()} == {3}
    assert {r["method"] for r in done.values()} == {"spawn"}
    assert sched.worker_start_methods == {"spawn"}
    pids = {r["pid"] for r in done.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert done2["again"]["pid"] in pids
    assert done2["again"]["threads"] == 6  # a lone job gets the idle worker's threads too
    # the parent's own default start method is left as it was (unset reads as the platform's)
    if before is None:
        assert multiprocessing.get_start_method(allow_none=True) in (None, "fork", "forkserver")
    else:
        assert multiprocessing.get_start_method() == before


def test_a_dead_worker_fails_its_job_only():
    jobs = [("a", ("slow", 0.5)), ("killer", ("die", 0.2)), ("b", ("ok", 2)), ("c", ("ok", 3)),
            ("d", ("slow", 0.1))]
    with Scheduler(workers=2, threads=1) as sched:
        done, died, _ = _run(sched, jobs)
    assert set(died) == {"killer"}
    assert "died" in died["killer"]
    assert set(done) == {"a", "b", "c", "d"}
    assert done["b"]["value"] == 4 and done["a"]["value"] == 0.5


def test_a_lone_dead_worker_and_an_exception():
    with Scheduler(workers=1, threads=1) as sched:
        done, died, _ = _run(sched, [("x", ("die", 0.0)), ("y", ("raise", 1)), ("z", ("ok", 5))])
    assert set(died) == {"x"}
    assert isinstance(done["y"], ValueError) and "bad 1" in str(done["y"])
    assert done["z"]["value"] == 25


def test_every_job_killing_its_worker_ends():
    with Scheduler(workers=2, threads=1) as sched:
        done, died, _ = _run(sched, [(k, ("die", 0.0)) for k in "pqr"])
    assert done == {} and set(died) == {"p", "q", "r"}
