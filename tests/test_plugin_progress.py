"""Progress: a redrawn bar on a terminal, periodic log lines otherwise; logs step around it."""

from __future__ import annotations

import io
import logging

from ome_converter import logsetup
from ome_converter.progress import Progress


def test_bar_on_a_terminal():
    stream = io.StringIO()
    bar = Progress("converting", files=4, planes=10, stream=stream, tty=True)
    bar.advance(files=1, planes=5)
    bar.tick(force=True)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K[")
    assert "[############............]  50.0% converting: 1/4 files, 5/10 planes" in text
    bar.advance(files=3, planes=5)
    bar.close()
    assert stream.getvalue().endswith("100.0% converting: 4/4 files, 10/10 planes, 00:00\n")


def test_log_lines_when_not_a_terminal(caplog):
    stream = io.StringIO()
    bar = Progress("planning", files=3, stream=stream, tty=False, period=3600)
    with caplog.at_level(logging.INFO, logger="ome_converter"):
        bar.advance(files=1)
        bar.tick()  # within the period: nothing
        assert caplog.messages == []
        bar.tick(force=True)
        bar.advance(files=2)
        bar.close()
    assert caplog.messages == ["progress planning: 1/3 files, 00:00",
                               "progress planning: 3/3 files, 00:00"]
    assert stream.getvalue() == ""  # never draws a bar into a log


def test_log_lines_step_around_the_bar():
    stream = io.StringIO()
    handler = logsetup.BarAwareHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    bar = Progress("converting", files=2, stream=stream, tty=True)
    bar.redraw()
    handler.bar = bar
    handler.emit(logging.makeLogRecord({"msg": "FAILED x.tif: broken", "levelno": 40}))
    out = stream.getvalue()
    first_bar = out.index("converting: 0/2 files")
    cleared = out.index("\r\x1b[KFAILED x.tif: broken\n", first_bar)
    assert out.index("converting: 0/2 files", cleared) > cleared  # redrawn after the line
