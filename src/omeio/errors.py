"""Exceptions of omeio: every one names the file it is about and why."""

from __future__ import annotations

from pathlib import Path


class OmeioError(Exception):
    """Base class of every error omeio raises on purpose."""


class UnreadableFileError(OmeioError):
    """A file (or store) omeio cannot read, with the file's name and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CorruptFileError(UnreadableFileError):
    """A file whose own structure proves it broken (planes or bytes it claims but lacks).

    Conclusive: no other backend is tried, since a more lenient reader would turn the missing
    data into zeros or garbage, a silently wrong result.
    """


class UnsupportedPixelTypeError(OmeioError, TypeError):
    """A pixel type outside the OME types omeio writes exactly."""


class ReadOnlyError(OmeioError, AttributeError):
    """A property of a writer changed after its first write, or of a reader."""


class JavaUnavailableError(OmeioError, RuntimeError):
    """Java or the Bio-Formats jar is missing; the message says what to run."""
