"""Write tiled OME-TIFF (classic or BigTIFF) in our own small layout.

Tiles come from :class:`omeio.tiles.TileAssembler` in any order and from several threads, which
tifffile's writer (strictly sequential) cannot take. So the layout is ours: the header first, then
every tile, compressed in a thread pool and appended with ``os.pwrite`` the moment it is ready,
and at ``close()`` one IFD per plane (XYZCT order, the OME-XML in the first) followed by a patch
of the header's first-IFD offset. Until that patch the file has no IFD at all, so an interrupted
write never looks like a valid TIFF.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import imagecodecs
import numpy as np

from ..metadata import OmeMetadata
from ..tiles import frozen
from .base import WriterBackend

#: compression name -> (TIFF Compression tag value, default level)
COMPRESSIONS: dict[str, tuple[int, int | None]] = {
    "deflate": (8, 1),  # ADOBE_DEFLATE, no predictor: what bfio writes
    "zstd": (50000, None),  # Bio-Formats 7.3.1 reads it (loci.formats.codec.ZstdCodec)
    "lzw": (5, None),
    "none": (1, None),
}
_ALIASES = {"zlib": "deflate", "adobe_deflate": "deflate", "uncompressed": "none",
            "zstandard": "zstd"}
#: worst-case growth of compressed data over raw, for choosing BigTIFF in advance
_GROWTH = {1: 1.0, 8: 1.01, 50000: 1.01, 5: 1.6}
_CLASSIC_LIMIT = 2**32 - 1
_MARGIN = 64 << 20

#: OME length units -> centimetres, for the resolution tags
_CM_PER_UNIT = {
    "pm": 1e-10, "Å": 1e-8, "nm": 1e-7, "µm": 1e-4, "μm": 1e-4, "um": 1e-4, "mm": 0.1,
    "cm": 1.0, "dm": 10.0, "m": 100.0,
}

# TIFF field types
_ASCII, _SHORT, _LONG, _RATIONAL, _LONG8 = 2, 3, 4, 5, 16
_TYPE_FORMAT = {_SHORT: "H", _LONG: "I", _LONG8: "Q"}


def compression_code(name: str | None) -> tuple[int, int | None]:
    """``(tag value, default level)`` of a compression name; ValueError lists the choices."""
    key = "deflate" if name is None else str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in COMPRESSIONS:
        raise ValueError(f"unknown TIFF compression {name!r}; choose one of "
                         f"{', '.join(COMPRESSIONS)}")
    return COMPRESSIONS[key]


def _rational(value: float) -> tuple[int, int]:
    """A positive float as a TIFF RATIONAL: numerator and denominator both fit 32 bits."""
    limit = max(1, min(_CLASSIC_LIMIT, int(_CLASSIC_LIMIT / max(value, 1.0))))
    f = Fraction(value).limit_denominator(limit)
    num, den = f.numerator, f.denominator
    if num > _CLASSIC_LIMIT:
        num, den = _CLASSIC_LIMIT, 1
    if num == 0:
        num, den = 1, _CLASSIC_LIMIT
    return num, den


def resolution(metadata: OmeMetadata) -> tuple[tuple[int, int], tuple[int, int], int]:
    """XResolution, YResolution and ResolutionUnit matching PhysicalSizeX/Y.

    Pixels per centimetre (unit 3) when both sizes are in a metric length unit; otherwise
    1/1 with no unit (1), as the tags cannot say anything the metadata does not.
    """
    pixels = metadata.images[0].pixels
    per_cm = []
    for axis in ("X", "Y"):
        value, unit = pixels.physical_size(axis)
        if value is None or unit not in _CM_PER_UNIT or not value > 0:
            return (1, 1), (1, 1), 1
        cm = value * _CM_PER_UNIT[unit]
        if not 0 < cm < math.inf or not 1.0 / cm < math.inf:  # e.g. 1e-320 from a bad header
            return (1, 1), (1, 1), 1
        per_cm.append(1.0 / cm)
    return _rational(per_cm[0]), _rational(per_cm[1]), 3


def _encoder(code: int, level: int | None):
    if code == 8:
        return lambda a: imagecodecs.deflate_encode(a, level=level)
    if code == 50000:
        return lambda a: imagecodecs.zstd_encode(a, level=level)
    if code == 5:
        return imagecodecs.lzw_encode
    return lambda a: a.tobytes()


class TiffWriter(WriterBackend):
    """Tiled OME-TIFF, one IFD per plane, tiles written as they arrive."""

    name = "tiff"
    extensions = (".ome.tiff", ".ome.tif", ".tiff", ".tif")

    def __init__(
        self,
        path: Path,
        metadata: OmeMetadata,
        tile_size: int = 1024,
        max_workers: int | None = None,
        compression: str | None = None,
        compression_level: int | None = None,
        bigtiff: bool | None = None,
        **options,
    ):
        if options:
            raise TypeError(f"unexpected TIFF writer option(s): {', '.join(options)}")
        super().__init__(path, metadata, tile_size, max_workers)
        if tile_size < 16 or tile_size % 16:
            raise ValueError(f"TIFF tile size must be a positive multiple of 16, got {tile_size}")
        self.compression, default_level = compression_code(compression)
        level = default_level if compression_level is None else int(compression_level)
        self._encode = _encoder(self.compression, level)
        y, x, z, c, t = self.shape
        self._grid = (math.ceil(y / tile_size), math.ceil(x / tile_size))
        self._planes = z * c * t
        self.bigtiff = self._needs_bigtiff() if bigtiff is None else bool(bigtiff)
        self._tiles: dict[tuple[int, int, int, int, int], tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(2 * self.max_workers)
        self._finished = False
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                           0o666)
        try:
            # first-IFD offset 0 for now: patched at close()
            header = (struct.pack("<2sHHHQ", b"II", 43, 8, 0, 0) if self.bigtiff
                      else struct.pack("<2sHI", b"II", 42, 0))
            self._pwrite(header, 0)
        except BaseException:
            os.close(self._fd)
            raise
        self._end = len(header)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="omeio-tiff-write")

    def _needs_bigtiff(self) -> bool:
        """Could the file pass 4 GiB? Judged on padded raw tiles times worst-case growth."""
        ny, nx = self._grid
        tiles = ny * nx * self._planes
        data = tiles * self.tile_size**2 * self.dtype.itemsize * _GROWTH[self.compression]
        ifds = self._planes * (512 + 16 * ny * nx)
        xml = len(self.metadata.to_xml().encode()) + 160 * self._planes
        return data + ifds + xml + _MARGIN >= 2**32

    # -- tiles ------------------------------------------------------------------------------------

    def write_tile(self, z: int, c: int, t: int, ty: int, tx: int, tile: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise ValueError(f"{self.path.name}: write after close or abort")
        n = self.tile_size
        if tile.shape != (n, n):
            raise ValueError(f"tile of shape {tile.shape}, expected ({n}, {n})")
        # the tile is encoded later in the pool: a read-only array that owns its memory (what
        # the tile assembler hands out, see tiles.frozen) is taken as is; anything else may
        # still change once write_tile returns and is copied (a memcpy, small next to deflate)
        owned = frozen(tile) and tile.dtype == tile.dtype.newbyteorder("<")
        if not owned:
            tile = np.array(tile, dtype=tile.dtype.newbyteorder("<"), order="C", copy=True)
        self._slots.acquire()
        try:
            future = self._pool.submit(self._store, (z, c, t, ty, tx), tile)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        self._slots.release()
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _store(self, key: tuple[int, int, int, int, int], tile: np.ndarray) -> None:
        data = self._encode(tile)
        size = len(data)
        with self._lock:
            if key in self._tiles:
                raise ValueError(f"tile {key} (z, c, t, row, col) written twice")
            offset = self._end
            self._end += size
            if not self.bigtiff and self._end > _CLASSIC_LIMIT:
                raise ValueError(f"{self.path.name}: data passed 4 GiB in a classic TIFF; "
                                 "write with bigtiff=True")
            self._tiles[key] = (offset, size)
        self._pwrite(data, offset)

    def _pwrite(self, data, offset: int) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    # -- finishing --------------------------------------------------------------------------------

    def close(self) -> None:
        if self._finished:
            return
        self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
        ny, nx = self._grid
        y, x, zs, cs, ts = self.shape
        order = [(z, c, t) for t in range(ts) for c in range(cs) for z in range(zs)]
        missing = self._planes * ny * nx - len(self._tiles)
        if missing:
            raise ValueError(f"{self.path.name}: {missing} tile(s) were never written")
        pixels = self.metadata.images[0].pixels
        pixels.set_tiff_data((i, z, c, t) for i, (z, c, t) in enumerate(order))
        description = self.metadata.to_xml().encode("utf-8") + b"\0"
        common = self._common_tags()
        start = first = _align(self._end)
        blocks = []
        for i, (z, c, t) in enumerate(order):
            spots = [self._tiles[(z, c, t, ty, tx)] for ty in range(ny) for tx in range(nx)]
            tags = dict(common)
            if i == 0:
                tags[270] = (_ASCII, len(description), description)
            kind = _LONG8 if self.bigtiff else _LONG
            tags[324] = (kind, len(spots), _pack(kind, [o for o, _ in spots]))
            tags[325] = (kind, len(spots), _pack(kind, [n for _, n in spots]))
            block = _ifd(tags, start, last=i == len(order) - 1, big=self.bigtiff)
            blocks.append(block)
            start += len(block)
        if not self.bigtiff and start > _CLASSIC_LIMIT:
            raise ValueError(f"{self.path.name}: file passed 4 GiB in a classic TIFF; "
                             "write with bigtiff=True")
        self._pwrite(b"\0" * (first - self._end) + b"".join(blocks), self._end)
        self._pwrite(struct.pack("<Q" if self.bigtiff else "<I", first), 8 if self.bigtiff else 4)
        self._finished = True
        os.close(self._fd)

    def _common_tags(self) -> dict[int, tuple[int, int, bytes]]:
        y, x = self.shape[:2]
        bits = self.dtype.itemsize * 8
        fmt = {"u": 1, "i": 2, "f": 3}[self.dtype.kind]
        xres, yres, unit = resolution(self.metadata)
        n = self.tile_size
        tags = {
            254: (_LONG, 1, _pack(_LONG, [0])),
            256: (_LONG, 1, _pack(_LONG, [x])),
            257: (_LONG, 1, _pack(_LONG, [y])),
            258: (_SHORT, 1, _pack(_SHORT, [bits])),
            259: (_SHORT, 1, _pack(_SHORT, [self.compression])),
            262: (_SHORT, 1, _pack(_SHORT, [1])),
            277: (_SHORT, 1, _pack(_SHORT, [1])),
            282: (_RATIONAL, 1, struct.pack("<II", *xres)),
            283: (_RATIONAL, 1, struct.pack("<II", *yres)),
            284: (_SHORT, 1, _pack(_SHORT, [1])),
            296: (_SHORT, 1, _pack(_SHORT, [unit])),
            305: (_ASCII, 6, b"omeio\0"),
            322: (_LONG, 1, _pack(_LONG, [n])),
            323: (_LONG, 1, _pack(_LONG, [n])),
            339: (_SHORT, 1, _pack(_SHORT, [fmt])),
        }
        return tags

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            os.close(self._fd)
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _align(offset: int, to: int = 8) -> int:
    return -(-offset // to) * to


def _pack(kind: int, values) -> bytes:
    return np.asarray(values, dtype="<" + _TYPE_FORMAT[kind]).tobytes()


def _ifd(tags: dict[int, tuple[int, int, bytes]], start: int, last: bool, big: bool) -> bytes:
    """One IFD at ``start``: entries sorted by tag, values too long to inline right after it."""
    slot = 8 if big else 4
    head = (8 + 20 * len(tags) + 8) if big else (2 + 12 * len(tags) + 4)
    extra = bytearray()
    entries = bytearray(struct.pack("<Q" if big else "<H", len(tags)))
    for tag in sorted(tags):
        kind, count, value = tags[tag]
        if len(value) <= slot:
            field = value.ljust(slot, b"\0")
        else:
            where = start + head + len(extra)
            field = struct.pack("<Q" if big else "<I", where)
            extra += value
            extra += b"\0" * (_align(len(extra)) - len(extra))
        entries += struct.pack("<HHQ" if big else "<HHI", tag, kind, count) + field
    size = _align(head + len(extra))
    following = 0 if last else start + size
    entries += struct.pack("<Q" if big else "<I", following)
    block = bytes(entries) + bytes(extra)
    return block + b"\0" * (size - len(block))
