"""Progress of a phase: a one-line bar on a terminal, periodic log lines otherwise (WIPP logs)."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("ome_converter")

#: seconds between progress log lines when stderr is not a terminal
LOG_PERIOD = 10.0
BAR_PERIOD = 0.2
WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Files done/total and planes done/total of one phase (planning or converting)."""

    def __init__(self, label: str, files: int, planes: int = 0, stream: TextIO | None = None,
                 tty: bool | None = None, period: float = LOG_PERIOD):
        self.label = label
        self.files_total = files
        self.planes_total = planes
        self.files = 0
        self.planes = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.period = period
        self.start = time.monotonic()
        self._last = self.start
        self._shown = False

    def advance(self, files: int = 0, planes: int = 0) -> None:
        self.files += files
        self.planes += planes

    def text(self) -> str:
        parts = [f"{self.label}: {self.files}/{self.files_total} files"]
        if self.planes_total:
            parts.append(f"{self.planes}/{self.planes_total} planes")
        parts.append(_clock(time.monotonic() - self.start))
        return ", ".join(parts)

    def _bar(self) -> str:
        total = self.planes_total or self.files_total
        done = self.planes if self.planes_total else self.files
        frac = min(1.0, done / total) if total else 1.0
        filled = int(round(frac * WIDTH))
        return f"[{'#' * filled}{'.' * (WIDTH - filled)}] {frac * 100:5.1f}% {self.text()}"

    def tick(self, force: bool = False) -> None:
        """Redraw the bar, or log a line if the period has passed."""
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= BAR_PERIOD:
                self._last = now
                self.redraw()
        elif force or now - self._last >= self.period:
            self._last = now
            log.info("progress %s", self.text())

    def redraw(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self._bar())
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        """Leave the final state on its own line (terminal) or in the log."""
        if self.tty:
            self.redraw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
        else:
            log.info("progress %s", self.text())
