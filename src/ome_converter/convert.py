"""The work done in a worker process: look at an input (planning), convert its outputs.

Pixels move in 1024-row bands (the writer's tile height, so every band completes a row of
tiles and nothing waits in the tile assembler): memory is a few bands, whatever the image's
height. The next band is read while the current one is written.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from itertools import groupby
from pathlib import Path

import numpy as np

from omeio import BioReader, BioWriter
from omeio.errors import OmeioError, UnreadableFileError

from .jobs import (
    ConvertJob,
    ConvertResult,
    InputPlan,
    Output,
    PlanConvertJob,
    PlanConvertResult,
    SeriesInfo,
)
from .naming import outputs_for

BAND = 1024


def compress_threads() -> int:
    """Tiles are compressed by as many threads as the machine has cores, whatever this
    worker's share: when the other workers are busy the OS shares the cores out, and when
    they are idle (one big file left at the end of a run) this worker gets them all."""
    from .scheduler import available_cores

    return available_cores()


def reason(exc: BaseException) -> str:
    """One line saying why, without the file name the caller already prints."""
    if isinstance(exc, UnreadableFileError):
        text = exc.reason
    elif isinstance(exc, OmeioError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


def _info(index: int, kind: str, pixels) -> SeriesInfo:
    return SeriesInfo(index, kind, pixels.size_y, pixels.size_x, pixels.size_z, pixels.size_c,
                      pixels.size_t, pixels.type)


def _describe(br: BioReader, path: str) -> InputPlan:
    """The series of an open input, their kinds and sizes (level 0)."""
    images = br.file_metadata.images
    infos = []
    for s in range(br.series_count):
        kind = br.series_kind(s)
        if s == br.series:
            pixels = br.metadata.images[0].pixels
            infos.append(SeriesInfo(s, kind, br.Y, br.X, br.Z, br.C, br.T, pixels.type))
        elif len(images) == br.series_count:
            infos.append(_info(s, kind, images[s].pixels))
        else:  # the document does not list one Image per series: ask the series
            with BioReader(path, series=s, max_workers=1) as other:
                infos.append(SeriesInfo(s, kind, other.Y, other.X, other.Z, other.C,
                                        other.T, other.metadata.images[0].pixels.type))
    return InputPlan(path, tuple(infos))


def inspect(path: str, threads: int, report: Callable[[int], None]) -> InputPlan:
    """Planning: the series of an input, their kinds and sizes (level 0). ``report`` is not
    used: planning counts files, not planes."""
    try:
        with BioReader(path, max_workers=threads) as br:
            return _describe(br, path)
    except Exception as exc:
        return InputPlan(path, error=reason(exc), detail=traceback.format_exc())


def plan_and_convert(job: PlanConvertJob, threads: int,
                     report: Callable[[int], None]) -> PlanConvertResult:
    """Plan an input and convert its outputs with the same open reader: each file is opened
    (and, through Bio-Formats, parsed) once instead of twice. Outputs already complete are
    skipped unless ``job.overwrite``."""
    try:
        br = BioReader(job.path, max_workers=threads)
    except Exception as exc:
        return PlanConvertResult(InputPlan(job.path, error=reason(exc),
                                           detail=traceback.format_exc()))
    with br:
        try:
            plan = _describe(br, job.path)
        except Exception as exc:
            return PlanConvertResult(InputPlan(job.path, error=reason(exc),
                                               detail=traceback.format_exc()))
        outs = outputs_for(Path(job.path).name, plan.images, job.ext, job.layout)
        out_dir = Path(job.out_dir)
        todo = tuple(o for o in outs if job.overwrite or not (out_dir / o.name).exists())
        complete = tuple(o.name for o in outs if o not in todo)
        if not todo:
            return PlanConvertResult(plan, None, complete)
        result = convert(ConvertJob(job.path, job.out_dir, todo, plan.images), threads, report,
                         opened=br)
        return PlanConvertResult(plan, result, complete, len(todo))


def bands(br: BioReader, z: int, c: int, t: int,
          prefetch: ThreadPoolExecutor) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(y0, y1, rows)`` of one plane, reading the next band while the caller writes this one."""
    spans = [(y0, min(y0 + BAND, br.Y)) for y0 in range(0, br.Y, BAND)]

    def read(span: tuple[int, int]) -> np.ndarray:
        return br[span[0]:span[1], :, z, c, t]

    ahead = prefetch.submit(read, spans[0])
    for i, (y0, y1) in enumerate(spans):
        rows = ahead.result()
        if i + 1 < len(spans):
            ahead = prefetch.submit(read, spans[i + 1])
        yield y0, y1, rows


def _check(br: BioReader, info: SeriesInfo | None, path: str) -> None:
    if info is None:
        return
    found = (br.Y, br.X, br.Z, br.C, br.T)
    planned = (info.size_y, info.size_x, info.size_z, info.size_c, info.size_t)
    if found != planned:
        raise UnreadableFileError(path, f"series {info.index} is {found} (Y, X, Z, C, T) when "
                                  f"read but {planned} in its metadata")


def _write(br: BioReader, out: Output, target: Path, threads: int,
           prefetch: ThreadPoolExecutor, report: Callable[[int], None]) -> None:
    """One output: a plane (``out.z/c/t``) or the whole series, band by band."""
    meta = br.metadata.copy()
    if out.z is not None:
        meta.images[0].pixels.select(z=[out.z], c=[out.c], t=[out.t])
        planes = [(out.z, out.c, out.t, 0, 0, 0)]
    else:
        planes = [(z, c, t, z, c, t) for t in range(br.T) for c in range(br.C)
                  for z in range(br.Z)]
    with BioWriter(target, metadata=meta, max_workers=max(threads, compress_threads())) as bw:
        bw.dtype = br.dtype
        bw.Y, bw.X = br.Y, br.X
        for z, c, t, oz, oc, ot in planes:
            for y0, y1, rows in bands(br, z, c, t, prefetch):
                bw[y0:y1, :, oz, oc, ot] = rows
            report(1)


def _write_all(br: BioReader, outs: list[Output], out_dir: Path, threads: int,
               prefetch: ThreadPoolExecutor, lane: ThreadPoolExecutor,
               report: Callable[[int], None], written: list[str]) -> None:
    """The outputs of one series, as many at a time as ``lane`` has threads: a many-plane
    input (a Z stack) keeps every core busy even when it is the last file left, since reading
    and tiling a plane are serial. ``written`` gets the finished names in output order; at the
    first failure the outputs not started are dropped, those running finish, and the error is
    raised."""
    futures = [lane.submit(_write, br, out, out_dir / out.name, threads, prefetch, report)
               for out in outs]
    error: BaseException | None = None
    for out, future in zip(outs, futures):
        if error is not None:
            future.cancel()
        try:
            if not future.cancelled():
                future.result()
                written.append(out.name)
        except BaseException as exc:  # wait for the running ones, then raise the first
            error = error or exc
    if error is not None:
        raise error


def convert(job: ConvertJob, threads: int, report: Callable[[int], None],
            opened: BioReader | None = None) -> ConvertResult:
    """Write the job's outputs; each input series is opened once, outputs appear complete or
    not at all (the writer renames at close, and deletes its temporary on any error).

    ``opened``: a reader of the input already open (by planning), used for its own series and
    left open.
    """
    result = ConvertResult(job.path)
    planned = {s.index: s for s in job.expected}
    lanes = compress_threads()
    try:
        with ThreadPoolExecutor(lanes, thread_name_prefix="band-prefetch") as prefetch, \
                ThreadPoolExecutor(lanes, thread_name_prefix="output") as lane:
            for series, outs in groupby(job.outputs, key=lambda o: o.series):
                if opened is not None and opened.series == series:
                    context = nullcontext(opened)
                else:
                    context = BioReader(job.path, series=series, max_workers=threads)
                with context as br:
                    _check(br, planned.get(series), job.path)
                    _write_all(br, list(outs), Path(job.out_dir), threads, prefetch, lane,
                               report, result.written)
    except Exception as exc:
        result.error = reason(exc)
        result.detail = traceback.format_exc()
    return result
