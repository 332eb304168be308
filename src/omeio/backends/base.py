"""What every backend provides; the facades in ``reader.py`` and ``writer.py`` need nothing else.

A reader backend opens one file at one series and one resolution level and serves rectangular
regions of it. A writer backend receives complete tiles (from :class:`omeio.tiles.TileAssembler`)
in any order, and turns them into a finished file at ``close()``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..indexing import Region
from ..metadata import OmeMetadata


def default_workers() -> int:
    """Threads to use when the caller does not say: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class ReaderBackend(ABC):
    """One open file, at one series and one level.

    Subclasses set, in ``__init__``: ``metadata`` (the whole file's OME document, RGB samples
    expanded to channels), ``series_count``, ``level_count``, ``shape`` (``Y, X, Z, C, T`` of
    the opened series and level) and ``dtype``.
    """

    name: ClassVar[str]

    metadata: OmeMetadata
    series_count: int
    level_count: int
    shape: tuple[int, int, int, int, int]
    dtype: np.dtype

    def __init__(self, path: Path, series: int = 0, level: int = 0, max_workers: int | None = None):
        self.path = Path(path)
        self.series = series
        self.level = level
        self.max_workers = max_workers or default_workers()

    @classmethod
    @abstractmethod
    def can_read(cls, path: Path) -> bool:
        """Cheap content sniffing: would this backend take the file?"""

    @classmethod
    def image_size(cls, path: Path) -> tuple[int, int]:
        """``(width, height)`` from the header alone; ``(-1, -1)`` when this backend cannot tell."""
        return -1, -1

    def series_kind(self, series: int) -> str:
        """``image``, or ``thumbnail`` / ``label`` / ``macro`` for ancillary series."""
        return "image"

    @abstractmethod
    def read_plane(self, z: int, c: int, t: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of one plane, as a 2-D array of ``dtype``."""

    def read_region(self, region: Region, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """The region as ``(Y, X, Z, C, T)``; planes are read in parallel when a pool is given.

        Backends that can do better (decode only the tiles touched, batch requests) override it.
        """
        y0, y1 = region.y_span
        x0, x1 = region.x_span
        out = np.empty((y1 - y0, x1 - x0, len(region.z), len(region.c), len(region.t)), self.dtype)

        def one(job):
            iz, ic, it, z, c, t = job
            out[:, :, iz, ic, it] = self.read_plane(z, c, t, y0, y1, x0, x1)

        jobs = list(region.planes())
        if pool is None or len(jobs) == 1:
            for job in jobs:
                one(job)
        else:
            for f in [pool.submit(one, job) for job in jobs]:
                f.result()
        if region.stepped:
            out = out[:: region.y.step, :: region.x.step]
        return out

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release file handles (and pooled Java readers)."""


class WriterBackend(ABC):
    """Turns complete tiles into a file. ``metadata`` holds one image with its final sizes."""

    name: ClassVar[str]
    #: extensions this backend writes, longest first
    extensions: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        path: Path,
        metadata: OmeMetadata,
        tile_size: int = 1024,
        max_workers: int | None = None,
        **options,
    ):
        self.path = Path(path)
        self.metadata = metadata
        self.tile_size = tile_size
        self.max_workers = max_workers or default_workers()
        pixels = metadata.images[0].pixels
        self.shape = (pixels.size_y, pixels.size_x, pixels.size_z, pixels.size_c, pixels.size_t)
        self.dtype = pixels.dtype

    @abstractmethod
    def write_tile(self, z: int, c: int, t: int, ty: int, tx: int, tile: np.ndarray) -> None:
        """Store one complete ``tile_size`` square tile (zero-padded at the image's edges)."""

    @abstractmethod
    def close(self) -> None:
        """Finish the file: everything is on disk and valid when this returns."""

    @abstractmethod
    def abort(self) -> None:
        """Stop and delete whatever was written."""
