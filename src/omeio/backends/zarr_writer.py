"""OME-Zarr writer: 0.5 on Zarr v3 (the default) or 0.4 on Zarr v2, one full-resolution level.

zarr-python creates the store and its metadata; the chunks are encoded here with the very codec
the array declares and written straight to their keys. Every tile is exactly one chunk, so no
chunk is ever read back, and encoding runs in a bounded pool of our own threads rather than
through zarr's event loop, which is two to three times faster for 1024 x 1024 tiles.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from ..metadata import OmeMetadata, PixelsMeta, int_to_rgba
from ..tiles import frozen, tile_grid
from .base import WriterBackend

#: OME-Zarr versions written, and the Zarr format each one lives in
VERSIONS = {"0.5": 3, "0.4": 2}
#: compression names accepted, and the default level of each
COMPRESSIONS = {"blosc": 1, "zstd": 3, "gzip": 6, "deflate": 6, "none": None}
AXES = ("t", "c", "z", "y", "x")

#: OME length units -> (OME-Zarr unit name, factor to multiply the value by)
LENGTH_UNITS: dict[str, tuple[str, float]] = {
    "Ym": ("yottameter", 1.0), "Zm": ("zettameter", 1.0), "Em": ("exameter", 1.0),
    "Pm": ("petameter", 1.0), "Tm": ("terameter", 1.0), "Gm": ("gigameter", 1.0),
    "Mm": ("megameter", 1.0), "km": ("kilometer", 1.0), "hm": ("hectometer", 1.0),
    "dam": ("meter", 10.0), "m": ("meter", 1.0), "dm": ("decimeter", 1.0),
    "cm": ("centimeter", 1.0), "mm": ("millimeter", 1.0), "µm": ("micrometer", 1.0),
    "\u03bcm": ("micrometer", 1.0), "nm": ("nanometer", 1.0), "pm": ("picometer", 1.0),
    "fm": ("femtometer", 1.0), "am": ("attometer", 1.0), "zm": ("zeptometer", 1.0),
    "ym": ("yoctometer", 1.0), "Å": ("angstrom", 1.0), "in": ("inch", 1.0),
    "ft": ("foot", 1.0), "yd": ("yard", 1.0), "mi": ("mile", 1.0), "pc": ("parsec", 1.0),
    "thou": ("micrometer", 25.4), "li": ("millimeter", 25.4 / 12), "pt": ("millimeter", 25.4 / 72),
    "ua": ("meter", 149597870700.0), "ly": ("meter", 9460730472580800.0),
}
#: OME time units -> (OME-Zarr unit name, factor)
TIME_UNITS: dict[str, tuple[str, float]] = {
    "Ys": ("yottasecond", 1.0), "Zs": ("zettasecond", 1.0), "Es": ("exasecond", 1.0),
    "Ps": ("petasecond", 1.0), "Ts": ("terasecond", 1.0), "Gs": ("gigasecond", 1.0),
    "Ms": ("megasecond", 1.0), "ks": ("kilosecond", 1.0), "hs": ("hectosecond", 1.0),
    "das": ("second", 10.0), "s": ("second", 1.0), "ds": ("decisecond", 1.0),
    "cs": ("centisecond", 1.0), "ms": ("millisecond", 1.0), "µs": ("microsecond", 1.0),
    "\u03bcs": ("microsecond", 1.0), "ns": ("nanosecond", 1.0), "ps": ("picosecond", 1.0),
    "fs": ("femtosecond", 1.0), "as": ("attosecond", 1.0), "zs": ("zeptosecond", 1.0),
    "ys": ("yoctosecond", 1.0), "min": ("minute", 1.0), "h": ("hour", 1.0), "d": ("day", 1.0),
}
#: channel colors when the OME metadata gives none (a single channel is shown grey)
DEFAULT_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "FFFF00", "00FFFF", "FFFFFF")


def to_ngff_unit(value: float, unit: str | None, table: dict[str, tuple[str, float]]
                 ) -> tuple[float, str | None]:
    """``(value, unit name)`` in OME-Zarr's vocabulary; units it cannot name (pixel) go unnamed."""
    if unit in table:
        name, factor = table[unit]
        return value * factor, name
    return value, None


def _hex_color(color: int | None, index: int, count: int) -> str:
    if color is not None:
        r, g, b, _ = int_to_rgba(color)
        return f"{r:02X}{g:02X}{b:02X}"
    return "FFFFFF" if count == 1 else DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


def _window(dtype: np.dtype) -> dict[str, float]:
    """Display window over the type's range (floats: shown 0..1, allowed over the whole range)."""
    if dtype.kind == "f":
        info = np.finfo(dtype)
        return {"start": 0.0, "end": 1.0, "min": float(info.min), "max": float(info.max)}
    iinfo = np.iinfo(dtype)
    return {"start": float(iinfo.min), "end": float(iinfo.max),
            "min": float(iinfo.min), "max": float(iinfo.max)}


def axes_and_scale(pixels: PixelsMeta) -> tuple[list[dict[str, str]], list[float]]:
    """``t, c, z, y, x`` axes with units where the size is known, and the level-0 scale."""
    axes: list[dict[str, str]] = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    scale = [1.0, 1.0]
    increment = pixels.element.get("TimeIncrement")
    if increment is not None and float(increment) > 0:
        unit = pixels.element.get("TimeIncrementUnit") or "s"
        scale[0], name = to_ngff_unit(float(increment), unit, TIME_UNITS)
        if name:
            axes[0]["unit"] = name
    for axis in "ZYX":
        entry = {"name": axis.lower(), "type": "space"}
        value, unit = pixels.physical_size(axis)
        if value is None:
            scale.append(1.0)
        else:
            value, name = to_ngff_unit(value, unit, LENGTH_UNITS)
            scale.append(value)
            if name:
                entry["unit"] = name
        axes.append(entry)
    return axes, scale


def ngff_attributes(metadata: OmeMetadata, version: str) -> dict[str, Any]:
    """The image group's attributes: ``multiscales`` and ``omero``, laid out for ``version``."""
    image = metadata.images[0]
    pixels = image.pixels
    name = image.name or "image"
    axes, scale = axes_and_scale(pixels)
    multiscale: dict[str, Any] = {
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                  "scale": scale}]}],
    }
    channels = pixels.channels
    window = _window(pixels.dtype)
    omero = {
        "name": name,
        "channels": [
            {
                "label": ch.name or f"Channel {i}",
                "color": _hex_color(ch.color, i, len(channels)),
                "window": dict(window),
                "active": True,
                "family": "linear",
                "coefficient": 1.0,
                "inverted": False,
            }
            for i, ch in enumerate(channels)
        ],
        "rdefs": {"defaultT": 0, "defaultZ": pixels.size_z // 2,
                  "model": "color" if len(channels) > 1 else "greyscale"},
    }
    if version == "0.4":
        multiscale["version"] = "0.4"
        return {"multiscales": [multiscale], "omero": omero}
    return {"ome": {"version": version, "multiscales": [multiscale], "omero": omero}}


def _codecs(name: str | None, level: int | None, zarr_format: int):
    """``(name, level, compressors for zarr, encoder for our chunks)`` of a compression choice."""
    key = "blosc" if name is None else str(name).lower()
    if key not in COMPRESSIONS:
        raise ValueError(f"unknown compression {name!r} for OME-Zarr; choose one of "
                         f"{', '.join(COMPRESSIONS)}")
    if key == "none":
        return key, None, None, None
    level = COMPRESSIONS[key] if level is None else int(level)
    limits = {"blosc": (0, 9), "gzip": (0, 9), "deflate": (0, 9), "zstd": (-131072, 22)}[key]
    if not limits[0] <= level <= limits[1]:
        raise ValueError(f"{key} compression level must be in {limits[0]}..{limits[1]}, "
                         f"got {level}")
    if key == "blosc":
        encoder = numcodecs.Blosc(cname="zstd", clevel=level, shuffle=numcodecs.Blosc.SHUFFLE,
                                  blocksize=0)
        codec = BloscCodec(cname="zstd", clevel=level, shuffle="shuffle", blocksize=0)
    elif key == "zstd":
        encoder = numcodecs.Zstd(level=level)
        codec = ZstdCodec(level=level, checksum=False)
    else:
        encoder = numcodecs.GZip(level=level)
        codec = GzipCodec(level=level)
    return key, level, (codec if zarr_format == 3 else encoder), encoder


class ZarrWriter(WriterBackend):
    """An OME-Zarr image group with array ``0`` of shape ``(T, C, Z, Y, X)``, one chunk per tile.

    The full OME-XML goes to ``OME/METADATA.ome.xml`` (as bioformats2raw and bfio do). Chunks
    are written even when all zero, so that a missing chunk always means a damaged store.
    """

    name = "zarr"
    extensions = (".ome.zarr", ".zarr")

    def __init__(
        self,
        path: Path,
        metadata: OmeMetadata,
        tile_size: int = 1024,
        max_workers: int | None = None,
        ome_zarr_version: str = "0.5",
        compression: str | None = None,
        compression_level: int | None = None,
        bigtiff: bool | None = None,  # a TIFF option: accepted and ignored
        **options,
    ):
        if options:
            raise TypeError(f"ZarrWriter got unexpected option(s): {', '.join(options)}")
        super().__init__(path, metadata, tile_size=tile_size, max_workers=max_workers)
        version = str(ome_zarr_version)
        if version not in VERSIONS:
            raise ValueError(f"unknown ome_zarr_version {ome_zarr_version!r}; choose one of "
                             f"{', '.join(VERSIONS)}")
        self.version = version
        self.zarr_format = VERSIONS[version]
        self.compression, self.compression_level, compressor, self._encoder = _codecs(
            compression, compression_level, self.zarr_format
        )
        self._chunk_dtype = self.dtype.newbyteorder("<")
        y, x, z, c, t = self.shape
        self._grid = tile_grid(y, x, tile_size)
        self._total = self._grid[0] * self._grid[1] * z * c * t
        self._written: set[tuple[int, int, int, int, int]] = set()
        self._dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(2 * self.max_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        try:
            self._create(compressor)
        except BaseException:
            self.abort()
            raise
        if self.max_workers > 1:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="omeio-zarr")

    # -- layout ------------------------------------------------------------------------------

    def _create(self, compressor) -> None:
        """Group, array ``0`` and the OME-XML; the chunks come later."""
        y, x, z, c, t = self.shape
        group = zarr.create_group(
            str(self.path), zarr_format=self.zarr_format, overwrite=True,
            attributes=ngff_attributes(self.metadata, self.version),
        )
        extra: dict[str, Any] = {}
        if self.zarr_format == 3:
            extra["dimension_names"] = list(AXES)
        else:
            extra["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        array = group.create_array(
            "0",
            shape=(t, c, z, y, x),
            chunks=(1, 1, 1, self.tile_size, self.tile_size),
            dtype=self._chunk_dtype if self.zarr_format == 2 else self.dtype,
            fill_value=0,
            compressors=None if compressor is None else [compressor],
            filters=None,
            config={"write_empty_chunks": True},
            **extra,
        )
        self._chunk_key = array.metadata.encode_chunk_key
        self._array_dir = self.path / "0"
        xml = self.metadata.copy()
        xml.images[0].pixels.set_metadata_only()
        # a group of its own, so that zarr sees a hierarchy with nothing foreign in it
        group.create_group("OME")
        (self.path / "OME" / "METADATA.ome.xml").write_text(xml.to_xml(), encoding="utf-8")

    # -- chunks ------------------------------------------------------------------------------

    def _prepare(self, ty: int, tx: int, tile: np.ndarray) -> np.ndarray:
        """The tile as its chunk: little-endian, C-ordered, zero outside the image, ours alone."""
        n = self.tile_size
        if tile.shape != (n, n):
            raise ValueError(f"tile of shape {tile.shape}, expected ({n}, {n})")
        vy = min(n, self.shape[0] - ty * n)
        vx = min(n, self.shape[1] - tx * n)
        owned = frozen(tile) and tile.dtype == self._chunk_dtype
        dirty = (vy < n and tile[vy:].any()) or (vx < n and tile[:, vx:].any())
        if not owned or dirty:
            tile = np.array(tile, dtype=self._chunk_dtype, order="C")
        if dirty:
            tile[vy:] = 0
            tile[:, vx:] = 0
        return tile

    def _store(self, key: tuple[int, int, int, int, int], tile: np.ndarray) -> None:
        data = tile.tobytes() if self._encoder is None else self._encoder.encode(tile)
        file = self._array_dir / self._chunk_key(key)
        parent = file.parent
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._dirs.add(parent)
        with open(file, "wb") as fh:
            fh.write(data)
        with self._lock:
            self._written.add(key)

    def _done(self, future: Future) -> None:
        self._slots.release()
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def write_tile(self, z: int, c: int, t: int, ty: int, tx: int, tile: np.ndarray) -> None:
        """Encode and store chunk ``(t, c, z, ty, tx)``, in the pool when there is one."""
        self._raise_pending()
        if self._closed:
            raise ValueError(f"{self.path}: write after close")
        sy, sx, sz, sc, st = self.shape
        if not (0 <= z < sz and 0 <= c < sc and 0 <= t < st
                and 0 <= ty < self._grid[0] and 0 <= tx < self._grid[1]):
            raise IndexError(f"tile (z={z}, c={c}, t={t}, row={ty}, col={tx}) is outside the "
                             f"image {self.shape}")
        key = (t, c, z, ty, tx)
        chunk = self._prepare(ty, tx, tile)
        if self._pool is None:
            self._store(key, chunk)
            return
        self._slots.acquire()
        try:
            future = self._pool.submit(self._store, key, chunk)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._done)

    # -- end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for every chunk in flight; fail if one failed or was never written."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._raise_pending()
        if len(self._written) != self._total:
            raise RuntimeError(f"{self.path}: only {len(self._written)} of {self._total} chunks "
                               "were written")

    def abort(self) -> None:
        """Drop the chunks in flight and delete the store."""
        self._closed = True
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.exists():
            os.unlink(self.path)
