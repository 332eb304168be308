"""One run of the plugin: find inputs, plan every output, then convert what is not done yet.

Planning (counting series and planes) runs in the worker processes like the conversion, so
the parent never reads a file through Bio-Formats and never has a JVM; the workers keep
theirs from planning to conversion.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import plan as planning
from .cli import Config
from .convert import convert, inspect, reason
from .discover import find_inputs
from .jobs import ConvertJob, ConvertResult, InputPlan
from .logsetup import attach_bar
from .progress import Progress
from .scheduler import Scheduler, available_cores, choose, parent_has_jvm

log = logging.getLogger("ome_converter")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass
class Tally:
    """What happened to each input, for the summary."""

    converted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    outputs_written: int = 0
    outputs_skipped: int = 0

    def fail(self, path: str, why: str, detail: str | None = None) -> None:
        self.failed[path] = why
        log.error("FAILED %s: %s", Path(path).name, why)
        if detail:
            log.debug("%s:\n%s", Path(path).name, detail.rstrip())


def _plan(sched: Scheduler, inputs: list[Path], tally: Tally) -> list[InputPlan]:
    progress = Progress("planning", len(inputs))
    attach_bar(progress)
    found: dict[str, InputPlan] = {}

    def done(key, result) -> None:
        progress.advance(files=1)
        if isinstance(result, InputPlan):
            found[key] = result
            if result.error is not None:
                tally.fail(key, result.error, result.detail)
        else:
            tally.fail(key, reason(result))

    def died(key, why: str) -> None:
        progress.advance(files=1)
        tally.fail(key, why)

    try:
        sched.run(inspect, [(str(p), str(p)) for p in inputs], done, died, tick=progress.tick)
    finally:
        attach_bar(None)
        progress.close()
    return [found[str(p)] for p in inputs if str(p) in found]


def _convert(sched: Scheduler, todo: list[ConvertJob], tally: Tally) -> None:
    progress = Progress("converting", len(todo), sum(j.planes for j in todo))
    attach_bar(progress)
    by_path = {j.path: j for j in todo}

    def done(key, result) -> None:
        progress.advance(files=1)
        if not isinstance(result, ConvertResult):
            tally.fail(key, reason(result))
            return
        tally.outputs_written += len(result.written)
        if result.error is not None:
            n = len(by_path[key].outputs)
            tally.fail(key, f"{result.error} ({len(result.written)} of {n} outputs written)",
                       result.detail)
        else:
            tally.converted.append(key)
            log.debug("converted %s: %d output(s)", Path(key).name, len(result.written))

    def died(key, why: str) -> None:
        progress.advance(files=1)
        tally.fail(key, why)

    try:
        sched.run(convert, [(j.path, j) for j in todo], done, died,
                  on_progress=lambda key, n: progress.advance(planes=n), tick=progress.tick)
    finally:
        attach_bar(None)
        progress.close()


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _sweep(out_dir: Path, names: list[str]) -> None:
    """Delete the temporaries of this run's outputs that a dead worker left behind."""
    for name in names:
        tmp = out_dir / f".{name}.partial"
        if tmp.exists() or tmp.is_symlink():
            log.debug("removing %s left by a stopped worker", tmp.name)
            _remove(tmp)


def _summary(tally: Tally, preview: bool) -> int:
    if preview:
        log.info("preview: %d failed", len(tally.failed))
    else:
        log.info("summary: %d converted (%d outputs written), %d failed, %d skipped "
                 "(%d complete outputs)", len(tally.converted), tally.outputs_written,
                 len(tally.failed), len(tally.skipped), tally.outputs_skipped)
    if tally.failed:
        log.error("failed: %s", ", ".join(Path(p).name for p in tally.failed))
    return EXIT_FAILED if tally.failed else EXIT_OK


def run(config: Config) -> int:
    """The whole run; returns the exit status."""
    inputs = find_inputs(config.inp_dir, config.file_pattern)
    tally = Tally()
    if not inputs:
        log.warning("no input in %s matches %r", config.inp_dir, config.file_pattern)
        if config.preview:
            planning.write_preview(config.out_dir, config.file_pattern, [], [])
        return EXIT_OK
    cores = available_cores()
    workers, threads = choose(len(inputs), cores, config.num_workers, config.num_threads)
    log.info("%d input(s) in %s; %d worker process(es) x %d thread(s) (%d core(s) available)",
             len(inputs), config.inp_dir, workers, threads, cores)
    out_dir = config.out_dir
    names: list[str] = []
    try:
        with Scheduler(workers, threads, config.log_level) as sched:
            plans = _plan(sched, inputs, tally)
            try:
                plan = planning.build(plans, config.file_extension, config.layout)
            except planning.CollisionError as exc:
                log.error("name collision, nothing converted: %s", exc)
                return EXIT_FAILED
            for p in plans:
                if p.error is not None:
                    continue
                for s in p.ancillary:
                    log.info("skipping series %d of %s: a %s image", s.index,
                             Path(p.path).name, s.kind)
                if not p.images:
                    log.warning("%s has no image series to convert", Path(p.path).name)
            names = plan.names
            todo, complete = planning.jobs(plan, out_dir, config.overwrite)
            tally.outputs_skipped = len(complete)
            busy = {j.path for j in todo}
            tally.skipped = [p for p in plan.outputs if p not in busy]
            if config.preview:
                to_write = [o.name for j in todo for o in j.outputs]
                path = planning.write_preview(out_dir, config.file_pattern, to_write, complete)
                log.info("preview: %d output(s) listed in %s", len(to_write), path)
                return _summary(tally, preview=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            for stale in planning.stale_partials(out_dir):
                log.info("removing %s left by an interrupted run", stale.name)
                _remove(stale)
            if complete:
                log.info("skipped %d complete outputs (--overwrite converts them again)",
                         len(complete))
            if todo:
                _convert(sched, todo, tally)
            log.debug("worker start method(s): %s; worker pids: %s",
                      ",".join(sorted(sched.worker_start_methods)) or "none",
                      ",".join(str(p) for p in sorted(sched.worker_pids)) or "none")
    except KeyboardInterrupt:
        log.error("interrupted; unfinished outputs were discarded")
        _sweep(out_dir, names)
        return EXIT_INTERRUPTED
    _sweep(out_dir, names)
    log.debug("parent process %d has a JVM: %s", os.getpid(), parent_has_jvm())
    return _summary(tally, preview=False)
