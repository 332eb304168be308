"""What the worker processes run, as seen from the parent: thin wrappers that import the
converter (numpy, omeio, codecs) only when called, that is, only in the workers.

The parent pickles references to these functions, so it needs them importable; keeping the
real imports out of it saves the parent's start time and about 16 MiB of its memory.
"""

from __future__ import annotations

from collections.abc import Callable


def inspect(path: str, threads: int, report: Callable[[int], None]):
    from .convert import inspect as run

    return run(path, threads, report)


def convert(job, threads: int, report: Callable[[int], None]):
    from .convert import convert as run

    return run(job, threads, report)


def plan_and_convert(job, threads: int, report: Callable[[int], None]):
    from .convert import plan_and_convert as run

    return run(job, threads, report)


def reason(exc: BaseException) -> str:
    """One line saying why (see :func:`ome_converter.convert.reason`)."""
    from .convert import reason as why

    return why(exc)
