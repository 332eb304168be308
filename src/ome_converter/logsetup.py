"""Logging for the parent and the workers: one format on stderr, which WIPP captures.

The parent's handler steps around the progress bar (clears it, writes the line, redraws it),
so log lines and the bar never mix on a terminal.
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s - %(name)-22s - %(levelname)-7s - %(message)s"
DATEFMT = "%d-%b-%y %H:%M:%S"
#: loggers of libraries that talk too much at INFO
QUIET = ("pread", "pread.Manager", "pread.ThreadLock", "pread.ProcessLock", "main",
         "filepattern", "tifffile", "jpype", "numcodecs", "zarr", "asyncio", "PIL")


class BarAwareHandler(logging.StreamHandler):
    """A stderr handler that clears the progress bar before a line and redraws it after."""

    bar = None

    def emit(self, record: logging.LogRecord) -> None:
        bar = self.bar
        if bar is not None:
            bar.clear()
        super().emit(record)
        if bar is not None:
            bar.redraw()


_handler: BarAwareHandler | None = None


def configure(level: int) -> BarAwareHandler:
    """Parent process: ``level`` (from POLUS_LOG) on a single stderr handler."""
    global _handler
    _handler = BarAwareHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logging.basicConfig(level=level, handlers=[_handler], force=True)
    _quiet(level)
    return _handler


def attach_bar(bar) -> None:
    if _handler is not None:
        _handler.bar = bar


def configure_worker(level: int) -> None:
    """Worker process: same format, the worker's PID in each line."""
    fmt = FORMAT.replace("%(name)-22s", f"worker {os.getpid()}")
    logging.basicConfig(level=level, format=fmt, datefmt=DATEFMT, stream=sys.stderr, force=True)
    _quiet(level)


def _quiet(level: int) -> None:
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
