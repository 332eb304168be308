"""Run one command and measure its whole process tree from outside.

Converters may fork worker processes or start JVMs, so per-process figures undercount:
CPU is the user+sys time ``wait4`` reports for the command and every descendant it waited
for, and memory is the sum over all live descendants, sampled every ``interval`` seconds
(RSS counts shared pages once per process; PSS splits them, so the PSS sum is the tree's
real footprint). Spikes shorter than the interval can be missed. The largest single process
is sampled too: ``wait4``'s ru_maxrss is kept in the JSON only, because Linux carries the
harness's own RSS at fork time over the exec into the child's high-water mark.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass
class Run:
    returncode: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    max_rss_1proc_mib: float
    ru_maxrss_mib: float
    peak_tree_rss_mib: float
    peak_tree_pss_mib: float | None
    procs: int
    samples: int
    timed_out: bool = False
    load1_before: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class TreeSampler(threading.Thread):
    """Peak of the summed RSS and PSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = 0
        self.peak_proc_rss = 0
        self.peak_pss: int | None = None
        self.seen: set[int] = set()
        self.samples = 0
        self._halt = threading.Event()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = pss = 0
        has_pss = True
        for proc in tree:
            try:
                info = proc.memory_full_info()
            except psutil.AccessDenied:
                has_pss = False
                try:
                    info = proc.memory_info()
                except psutil.Error:
                    continue
            except psutil.Error:  # exited between listing and reading
                continue
            self.seen.add(proc.pid)
            rss += info.rss
            self.peak_proc_rss = max(self.peak_proc_rss, info.rss)
            pss_value = getattr(info, "pss", None)
            if pss_value is None:
                has_pss = False
            else:
                pss += pss_value
        self.samples += 1
        self.peak_rss = max(self.peak_rss, rss)
        if has_pss:
            self.peak_pss = max(self.peak_pss or 0, pss)

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_tree(cmd: list[str], env: dict[str, str], log: Path, timeout: float,
             interval: float = 0.05, cwd: Path | None = None) -> Run:
    """Run ``cmd`` (its own session, output to ``log``) and measure it."""
    load1 = os.getloadavg()[0]
    with open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid, interval)
        sampler.start()
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        timer.cancel()
        sampler.stop()
    try:  # kill what the command left behind in its session (daemons, stuck workers)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    mib = 2.0**20
    return Run(
        returncode=proc.returncode, wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime, user_s=usage.ru_utime, sys_s=usage.ru_stime,
        max_rss_1proc_mib=sampler.peak_proc_rss / mib, ru_maxrss_mib=usage.ru_maxrss * 1024 / mib,
        peak_tree_rss_mib=sampler.peak_rss / mib,
        peak_tree_pss_mib=None if sampler.peak_pss is None else sampler.peak_pss / mib,
        procs=len(sampler.seen), samples=sampler.samples, timed_out=expired.is_set(),
        load1_before=load1,
    )


def output_size(folder: Path) -> tuple[int, int]:
    """Apparent bytes and number of files below ``folder``."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files
