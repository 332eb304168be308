"""One run of the plugin: find inputs, plan every output, then convert what is not done yet.

Planning (counting series and planes) runs in the worker processes like the conversion, so
the parent never reads a file through Bio-Formats and never has a JVM; the workers keep
theirs from planning to conversion. When no two inputs can make the same output (their names
alone tell), each worker converts an input right after planning it, with the same open reader
("eager" runs): every file is opened once, and conversion does not wait for the whole plan.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import check, naming
from . import plan as planning
from . import shard as sharding
from .cli import Config
from .discover import find_inputs
from .jobs import ConvertJob, ConvertResult, InputPlan, PlanConvertJob, PlanConvertResult
from .logsetup import attach_bar
from .progress import Progress
from .scheduler import Scheduler, available_cores, choose, parent_has_jvm
from .tasks import convert, inspect, plan_and_convert, reason

log = logging.getLogger("ome_converter")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_TOKEN = re.compile(r"_[ctzs]\d+$")


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


def _record(tally: Tally, key: str, result: object, outputs: int) -> None:
    """Count what converting one input did."""
    if not isinstance(result, ConvertResult):
        tally.fail(key, reason(result))
        return
    tally.outputs_written += len(result.written)
    if result.error is not None:
        tally.fail(key, f"{result.error} ({len(result.written)} of {outputs} outputs written)",
                   result.detail)
    else:
        tally.converted.append(key)
        log.debug("converted %s: %d output(s)", Path(key).name, len(result.written))


def _plan(sched: Scheduler, inputs: list[Path], tally: Tally,
          eager: Config | None = None) -> list[InputPlan]:
    """Plan every input; with ``eager``, each worker also converts the input it has just
    planned (:func:`plan_and_convert`), which is safe when no two inputs can collide."""
    progress = Progress("planning" if eager is None else "converting", len(inputs))
    attach_bar(progress)
    found: dict[str, InputPlan] = {}

    def done(key, result) -> None:
        progress.advance(files=1)
        if isinstance(result, PlanConvertResult):
            tally.outputs_skipped += len(result.complete)
            if result.result is not None:
                _record(tally, key, result.result, result.outputs)
            elif result.plan.error is None:
                tally.skipped.append(key)
            result = result.plan
        if isinstance(result, InputPlan):
            found[key] = result
            if result.error is not None:
                tally.fail(key, result.error, result.detail)
        else:
            tally.fail(key, reason(result))

    def died(key, why: str) -> None:
        progress.advance(files=1)
        tally.fail(key, why)

    if eager is None:
        task, jobs = inspect, [(str(p), str(p)) for p in inputs]
    else:  # largest first, so that the longest conversion does not start last
        task = plan_and_convert
        jobs = [(str(p), PlanConvertJob(str(p), str(eager.out_dir), eager.file_extension,
                                        eager.layout, eager.overwrite))
                for p in sorted(inputs, key=_size, reverse=True)]
    try:
        sched.run(task, jobs, done, died, tick=progress.tick,
                  on_progress=lambda key, n: progress.advance(planes=n))
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
        _record(tally, key, result, len(by_path[key].outputs))

    def died(key, why: str) -> None:
        progress.advance(files=1)
        tally.fail(key, why)

    try:
        biggest = sorted(todo, key=lambda j: sum(s.size_x * s.size_y * s.planes
                                                 for s in j.expected), reverse=True)
        sched.run(convert, [(j.path, j) for j in biggest], done, died,
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


def _scope(inputs: list[Path], shard: sharding.Shard) -> sharding.Scope:
    scope = sharding.scope(inputs, shard)
    log.info("shard %s: %d of %d input(s), %d of %d bytes; collection fingerprint %s (every "
             "shard must print the same)", shard, len(scope.own), scope.inputs, scope.own_bytes,
             scope.total_bytes, scope.fingerprint)
    extra = len(scope.planned) - len(scope.own)
    if extra:
        log.info("shard %s: also planning %d input(s) of other shards whose names could make "
                 "the same output as another input", shard, extra)
    return scope


def _partials_of(out_dir: Path, inputs: list[Path], ext: str) -> list[str]:
    """Output names of the temporaries in ``out_dir`` that come from ``inputs``, known by name
    alone: with no collision suspect (eager runs), ``stem + _c0-like tokens + ext`` names
    exactly one input. For inputs whose worker died before their plan came back."""
    stems = {naming.stem(p.name) for p in inputs}
    found = []
    for tmp in planning.stale_partials(out_dir):
        name = tmp.name[1:-len(".partial")]
        if not name.endswith(ext):
            continue
        base = name[:-len(ext)]
        while base not in stems:
            m = _TOKEN.search(base)
            if not m or m.start() == 0:
                break
            base = base[:m.start()]
        if base in stems:
            found.append(name)
    return found


def _size(path: Path) -> float:
    """An input's size for ordering: a directory store counts as large (it is not walked)."""
    try:
        return float("inf") if path.is_dir() else path.stat().st_size
    except OSError:
        return 0.0


def _eager(config: Config, inputs: list[Path]) -> Config | None:
    """Convert each input right after planning it (one open instead of two, no wait for the
    whole plan) unless two inputs could make one output name (then nothing is converted
    before every collision is ruled out), or the run only previews or verifies."""
    if config.preview or config.verify_complete:
        return None
    if sharding.collision_suspects(p.name for p in inputs):
        return None
    return config


def run(config: Config) -> int:
    """The whole run; returns the exit status."""
    inputs = find_inputs(config.inp_dir, config.file_pattern)
    eager = _eager(config, inputs)
    scope = _scope(inputs, config.shard) if config.shard is not None else None
    own_inputs = list(scope.own) if scope is not None else inputs
    preview_name, preview_extra = planning.PREVIEW, {}
    if scope is not None:
        inputs = list(scope.planned)
        preview_name = scope.shard.preview_name
        preview_extra = {"shard": str(scope.shard), "fingerprint": scope.fingerprint}
    tally = Tally()
    if not inputs:
        log.warning("no input in %s matches %r", config.inp_dir, config.file_pattern)
        if config.preview:
            planning.write_preview(config.out_dir, config.file_pattern, [], [], preview_name,
                                   preview_extra)
        if config.verify_complete:
            only = [] if scope is not None else None
            return EXIT_OK if check.report(planning.Plan(), config.out_dir, [], only) else \
                EXIT_FAILED
        return EXIT_OK
    cores = available_cores()
    workers, threads = choose(len(inputs), cores, config.num_workers, config.num_threads)
    log.info("%d input(s) in %s; %d worker process(es) x %d thread(s) (%d core(s) available)",
             len(inputs), config.inp_dir, workers, threads, cores)
    out_dir = config.out_dir
    names: list[str] = []
    try:
        with Scheduler(workers, threads, config.log_level) as sched:
            if eager is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                for stale in planning.stale_partials(out_dir) if scope is None else []:
                    log.info("removing %s left by an interrupted run", stale.name)
                    _remove(stale)
            plans = _plan(sched, inputs, tally, eager)
            try:
                plan = planning.build(plans, config.file_extension, config.layout)
            except planning.CollisionError as exc:
                log.error("name collision, nothing converted: %s", exc)
                return EXIT_FAILED
            if scope is not None:  # others' inputs were planned for the collision check only
                own = {str(p) for p in scope.own}
                plan = plan.restrict(own)
                plans = [p for p in plans if p.path in own]
                tally.failed = {k: v for k, v in tally.failed.items() if k in own}
            for p in plans:
                if p.error is not None:
                    continue
                for s in p.ancillary:
                    log.info("skipping series %d of %s: a %s image", s.index,
                             Path(p.path).name, s.kind)
                if not p.images:
                    log.warning("%s has no image series to convert", Path(p.path).name)
            names = plan.names
            if eager is not None:  # every input was converted right after its planning
                if tally.outputs_skipped:
                    log.info("skipped %d complete outputs (--overwrite converts them again)",
                             tally.outputs_skipped)
                todo, complete = [], []
            else:
                todo, complete = planning.jobs(plan, out_dir, config.overwrite)
            if eager is None:
                tally.outputs_skipped = len(complete)
                busy = {j.path for j in todo}
                tally.skipped = [p for p in plan.outputs if p not in busy]
            if config.verify_complete:
                only = names if scope is not None else None
                return EXIT_OK if check.report(plan, out_dir, list(tally.failed), only) else \
                    EXIT_FAILED
            if config.preview:
                to_write = [o.name for j in todo for o in j.outputs]
                path = planning.write_preview(out_dir, config.file_pattern, to_write, complete,
                                              preview_name, preview_extra)
                log.info("preview: %d output(s) listed in %s", len(to_write), path)
                return _summary(tally, preview=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            for stale in planning.stale_partials(out_dir, names if scope else None) \
                    if eager is None else []:
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
        if eager is not None:
            names = names + _partials_of(out_dir, own_inputs, config.file_extension)
        _sweep(out_dir, names)
        return EXIT_INTERRUPTED
    if eager is not None:
        names = names + _partials_of(out_dir, own_inputs, config.file_extension)
    _sweep(out_dir, names)
    log.debug("parent process %d has a JVM: %s", os.getpid(), parent_has_jvm())
    return _summary(tally, preview=False)
