"""``BioReader``: a bfio-style 5-D view (``Y, X, Z, C, T``) on any file a backend can read."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import backends
from .backends.base import ReaderBackend, default_workers
from .errors import ReadOnlyError
from .indexing import Region, region_from_args, region_from_key, strip_trailing
from .metadata import OmeMetadata


class BioReader:
    """Read any supported image as ``Y, X, Z, C, T``.

    ``series`` picks an image of a multi-image file; ``level`` a resolution of that image's
    pyramid (0 is full resolution). ``backend`` forces ``"tiff"``, ``"zarr"`` or
    ``"bioformats"``; by default the file's content decides.
    """

    def __init__(
        self,
        path: str | Path,
        backend: str | None = None,
        max_workers: int | None = None,
        series: int = 0,
        level: int = 0,
    ):
        self._path = Path(path)
        self._max_workers = max_workers or default_workers()
        self._backend: ReaderBackend = backends.open_reader(
            self._path, backend, series, level, self._max_workers
        )
        self._pool: ThreadPoolExecutor | None = None
        self._metadata: OmeMetadata | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> BioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._backend.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
        except Exception:
            pass

    def _executor(self) -> ThreadPoolExecutor | None:
        if self._max_workers <= 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="omeio-read")
        return self._pool

    # -- what the file is ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def series(self) -> int:
        return self._backend.series

    @property
    def level(self) -> int:
        return self._backend.level

    @property
    def series_count(self) -> int:
        return self._backend.series_count

    @property
    def level_count(self) -> int:
        return self._backend.level_count

    def series_kind(self, series: int | None = None) -> str:
        """``image``, or ``thumbnail`` / ``label`` / ``macro`` for ancillary series."""
        return self._backend.series_kind(self.series if series is None else series)

    @property
    def file_metadata(self) -> OmeMetadata:
        """The OME document of the whole file, every series."""
        return self._backend.metadata

    @property
    def metadata(self) -> OmeMetadata:
        """The OME document of the opened series alone (its ``images[0]``), sized to the level.

        Pass it to ``BioWriter(metadata=...)`` to carry everything over.
        """
        if self._metadata is None:
            meta = self._backend.metadata.only_image(self.series)
            pixels = meta.images[0].pixels
            y, x = self._backend.shape[:2]
            if (pixels.size_y, pixels.size_x) != (y, x):
                for axis, old, new in (("X", pixels.size_x, x), ("Y", pixels.size_y, y)):
                    value, unit = pixels.physical_size(axis)
                    if value is not None:
                        pixels.set_physical_size(axis, value * old / new, unit)
                pixels.size_y, pixels.size_x = y, x
            self._metadata = meta
        return self._metadata

    @property
    def _pixels(self):
        return self.metadata.images[0].pixels

    Y = property(lambda self: self._backend.shape[0])
    X = property(lambda self: self._backend.shape[1])
    Z = property(lambda self: self._backend.shape[2])
    C = property(lambda self: self._backend.shape[3])
    T = property(lambda self: self._backend.shape[4])

    @property
    def shape(self) -> tuple[int, ...]:
        """``(Y, X, Z, C, T)`` with trailing unit axes dropped, as bfio reports it."""
        shape = self._backend.shape
        while len(shape) > 2 and shape[-1] == 1:
            shape = shape[:-1]
        return tuple(shape)

    @property
    def dtype(self) -> np.dtype:
        return self._backend.dtype

    @property
    def bpp(self) -> int:
        """Bytes per pixel (per sample)."""
        return self.dtype.itemsize

    bytes_per_pixel = bpp

    @property
    def spp(self) -> int:
        """Samples per pixel of each exposed channel: always 1, RGB is exposed as channels."""
        return 1

    samples_per_pixel = spp

    @property
    def channel_names(self) -> list[str | None]:
        return [ch.name for ch in self._pixels.channels]

    cnames = channel_names

    physical_size_x = property(lambda self: self._pixels.physical_size("X"))
    physical_size_y = property(lambda self: self._pixels.physical_size("Y"))
    physical_size_z = property(lambda self: self._pixels.physical_size("Z"))
    ps_x = physical_size_x
    ps_y = physical_size_y
    ps_z = physical_size_z

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            raise ReadOnlyError(f"{name} is read-only in BioReader")
        object.__setattr__(self, name, value)

    # -- pixels ----------------------------------------------------------------------------------

    def read_region(self, region: Region) -> np.ndarray:
        """The region as a 5-D ``(Y, X, Z, C, T)`` array, never squeezed."""
        return self._backend.read_region(region, self._executor())

    def read(self, X=None, Y=None, Z=None, C=None, T=None) -> np.ndarray:
        """Read as bfio does: X, Y, Z as ``(start, stop)``, C and T as index lists.

        Returns ``(Y, X, Z, C, T)`` with trailing unit axes removed.
        """
        region = region_from_args(self._backend.shape, X=X, Y=Y, Z=Z, C=C, T=T)
        return strip_trailing(self.read_region(region))

    def __getitem__(self, key) -> np.ndarray:
        """numpy-style ``br[y, x, z, c, t]``; lists select in Z, C and T; trailing unit axes go."""
        return strip_trailing(self.read_region(region_from_key(self._backend.shape, key)))

    def __array__(self, dtype=None, copy=None):
        data = self.read()
        return data if dtype is None else data.astype(dtype)

    def __call__(
        self,
        tile_size: Sequence[int],
        tile_stride: Sequence[int] | None = None,
        batch_size: int | None = None,
        channels: Sequence[int] = (0,),
    ) -> Iterator[tuple[np.ndarray, tuple[list, list, list, list, list]]]:
        """Iterate over tiles of plane Z=0, T=0 in batches, as bfio does (without its hangs).

        Yields ``(batch, index)``: ``batch`` is ``(n, tile_y, tile_x, len(channels))``; edge tiles
        are padded by mirroring; ``index`` is ``(X, Y, Z, C, T)`` lists of the tiles' ranges.
        """
        if len(tile_size) != 2:
            raise ValueError("tile_size must have 2 elements (rows, columns)")
        ty, tx = (int(v) for v in tile_size)
        sy, sx = (int(v) for v in (tile_stride or tile_size))
        if min(ty, tx, sy, sx) < 1:
            raise ValueError("tile_size and tile_stride must be positive")
        batch_size = int(batch_size or 32)
        chans = [int(c) for c in channels]
        boxes = [
            (y, x)
            for x in range(0, self.X, sx)
            for y in range(0, self.Y, sy)
        ]
        # read one band of tile rows at a time: memory stays at a band, not the plane
        band_rows = max(ty, sy * max(1, math.ceil(1024 / sy)))
        cache: dict[int, tuple[np.ndarray, int]] = {}

        def band(y: int) -> tuple[np.ndarray, int]:
            b = y // band_rows
            if b not in cache:
                cache.clear()
                y0 = b * band_rows
                y1 = min(self.Y, y0 + band_rows + ty)
                region = Region(range(y0, y1), range(0, self.X), (0,), tuple(chans), (0,))
                cache[b] = (self.read_region(region)[:, :, 0, :, 0], y0)
            return cache[b]

        boxes.sort()
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start:start + batch_size]
            out = np.empty((len(chunk), ty, tx, len(chans)), self.dtype)
            index: tuple[list, list, list, list, list] = ([], [], [], [], [])
            for i, (y, x) in enumerate(chunk):
                data, y_origin = band(y)
                tile = data[y - y_origin:y - y_origin + ty, x:x + tx]
                pad = ((0, ty - tile.shape[0]), (0, tx - tile.shape[1]), (0, 0))
                if pad[0][1] or pad[1][1]:
                    tile = np.pad(tile, pad, mode="symmetric")
                out[i] = tile
                index[0].append([x, x + tx])
                index[1].append([y, y + ty])
                index[2].append([0, 1])
                index[3].append(list(chans))
                index[4].append([0])
            yield out, index

    # -- class helpers -----------------------------------------------------------------------------

    @classmethod
    def image_size(cls, path: str | Path) -> tuple[int, int]:
        """``(width, height)`` from the header alone; ``(-1, -1)`` when that is not possible."""
        p = Path(path)
        try:
            names = backends.sniff(p)
        except Exception:
            return -1, -1
        for name in names:
            if name == "bioformats":
                continue
            size = backends.reader_class(name).image_size(p)
            if size != (-1, -1):
                return size
        return -1, -1

    def __repr__(self) -> str:
        return (
            f"BioReader({str(self._path)!r}, backend={self.backend_name!r}, series={self.series}, "
            f"level={self.level}, YXZCT={self._backend.shape}, dtype={self.dtype})"
        )
