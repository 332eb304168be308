"""``BioWriter``: write a 5-D ``Y, X, Z, C, T`` image as tiled OME-TIFF or OME-Zarr.

Properties can be set until the first write and are read-only after it. Writes may come in any
order and at any alignment; the file is written under a hidden temporary name and only renamed
to its real name when ``close()`` has finished it, so an interrupted write never leaves anything
that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import backends
from .backends.base import WriterBackend, default_workers
from .errors import ReadOnlyError
from .indexing import Region, as_5d, check_write_region, region_for_write, region_from_key
from .metadata import OmeMetadata
from .pixeltypes import check_dtype
from .tiles import TILE, TileAssembler

log = logging.getLogger(__name__)

#: keyword arguments that go to the backend rather than to the image's metadata
BACKEND_OPTIONS = ("compression", "compression_level", "bigtiff", "ome_zarr_version")


def partial_path(path: Path) -> Path:
    """The hidden name a file is written under until it is complete."""
    return path.with_name(f".{path.name}.partial")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


class BioWriter:
    """Write an image; the extension (or ``backend=``) picks OME-TIFF or OME-Zarr.

    ``metadata=reader.metadata`` carries the source's OME metadata over. Keyword arguments set
    properties (``X, Y, Z, C, T, dtype, channel_names, physical_size_x/y/z``, ``image=`` an
    array to size from) and backend options (``compression``, ``compression_level``,
    ``bigtiff``, ``ome_zarr_version``).
    """

    def __init__(
        self,
        path: str | Path,
        metadata: OmeMetadata | None = None,
        backend: str | None = None,
        max_workers: int | None = None,
        **kwargs,
    ):
        object.__setattr__(self, "_frozen", False)
        self._path = Path(path)
        self._backend_cls: type[WriterBackend] = backends.writer_for(self._path, backend)
        self._max_workers = max_workers or default_workers()
        self._options = {k: kwargs.pop(k) for k in BACKEND_OPTIONS if k in kwargs}
        self._tile_size = int(kwargs.pop("tile_size", TILE))
        self._backend: WriterBackend | None = None
        self._assembler: TileAssembler | None = None
        self._closed = False
        if metadata is not None:
            self._meta = metadata.only_image(0) if len(metadata.images) > 1 else metadata.copy()
            pixels = self._meta.images[0].pixels
            pixels.expand_samples()
            pixels.set_channel_count(pixels.size_c)
        else:
            self._meta = OmeMetadata.new()
        image = kwargs.pop("image", None)
        if image is not None:
            shape = as_5d(np.asarray(image)).shape
            self.Y, self.X, self.Z, self.C, self.T = shape
            self.dtype = image.dtype
        for key, value in kwargs.items():
            if key not in _SETTABLE:
                raise TypeError(f"BioWriter got an unexpected keyword argument {key!r}")
            setattr(self, key, value)

    # -- properties, settable until the first write -------------------------------------------

    def __setattr__(self, name, value):
        if not name.startswith("_") and self._frozen and name in _SETTABLE:
            raise ReadOnlyError(
                f"{name} cannot be changed after the first write to {self._path.name}"
            )
        object.__setattr__(self, name, value)

    @property
    def _pixels(self):
        return self._meta.images[0].pixels

    @property
    def metadata(self) -> OmeMetadata:
        return self._meta

    def _size_property(axis: str):  # noqa: N805 - a property factory used in the class body
        def get(self) -> int:
            return getattr(self._pixels, f"size_{axis.lower()}")

        def set_(self, value: int) -> None:
            value = int(value)
            if value < 1:
                raise ValueError(f"{axis} must be at least 1, got {value}")
            if axis == "C":
                self._pixels.set_channel_count(value)
            else:
                setattr(self._pixels, f"size_{axis.lower()}", value)
            self._pixels.reset_planes()

        return property(get, set_)

    X = _size_property("X")
    Y = _size_property("Y")
    Z = _size_property("Z")
    C = _size_property("C")
    T = _size_property("T")
    del _size_property

    @property
    def shape(self) -> tuple[int, ...]:
        shape = (self.Y, self.X, self.Z, self.C, self.T)
        while len(shape) > 2 and shape[-1] == 1:
            shape = shape[:-1]
        return shape

    @shape.setter
    def shape(self, value: Sequence[int]) -> None:
        value = tuple(value) + (1,) * (5 - len(value))
        self.Y, self.X, self.Z, self.C, self.T = value

    @property
    def dtype(self) -> np.dtype:
        return self._pixels.dtype

    @dtype.setter
    def dtype(self, value) -> None:
        self._pixels.dtype = check_dtype(value)

    @property
    def bpp(self) -> int:
        return self.dtype.itemsize

    @property
    def spp(self) -> int:
        return 1

    @property
    def channel_names(self) -> list[str | None]:
        return [ch.name for ch in self._pixels.channels]

    @channel_names.setter
    def channel_names(self, names: Sequence[str | None]) -> None:
        names = list(names)
        if len(names) != self.C:
            raise ValueError(f"{len(names)} channel names given for {self.C} channel(s)")
        for ch, name in zip(self._pixels.channels, names):
            ch.name = None if name is None else str(name)

    cnames = channel_names

    def _physical(axis: str):  # noqa: N805
        def get(self):
            return self._pixels.physical_size(axis)

        def set_(self, value) -> None:
            if value is None:
                self._pixels.set_physical_size(axis, None)
                return
            if isinstance(value, (int, float)):
                value = (value, None)
            size, unit = value
            self._pixels.set_physical_size(axis, None if size is None else float(size), unit)

        return property(get, set_)

    physical_size_x = _physical("X")
    physical_size_y = _physical("Y")
    physical_size_z = _physical("Z")
    ps_x, ps_y, ps_z = physical_size_x, physical_size_y, physical_size_z
    del _physical

    @property
    def compression(self) -> str | None:
        return self._options.get("compression")

    @compression.setter
    def compression(self, value: str | None) -> None:
        self._options["compression"] = value

    @property
    def compression_level(self) -> int | None:
        return self._options.get("compression_level")

    @compression_level.setter
    def compression_level(self, value: int | None) -> None:
        self._options["compression_level"] = value

    @property
    def bigtiff(self) -> bool | None:
        return self._options.get("bigtiff")

    @bigtiff.setter
    def bigtiff(self, value: bool | None) -> None:
        self._options["bigtiff"] = value

    @property
    def path(self) -> Path:
        return self._path

    # -- writing ---------------------------------------------------------------------------------

    def _start(self) -> None:
        """Freeze the metadata and open the backend on the hidden temporary name."""
        dtype = check_dtype(self.dtype)
        sizes = (self.Y, self.X, self.Z, self.C, self.T)
        if min(sizes) < 1:  # e.g. metadata= from a broken header
            raise ValueError(f"{self._path.name}: size {sizes} (Y, X, Z, C, T) has an empty axis")
        pixels = self._pixels
        pixels.dtype = dtype
        pixels.dimension_order = "XYZCT"
        pixels.element.set("BigEndian", "false")
        pixels.element.set("Interleaved", "false")
        pixels.clear_storage()
        pixels.reset_planes()
        self._meta.images[0].name = self._path.name
        tmp = partial_path(self._path)
        _remove(tmp)
        self._backend = self._backend_cls(
            tmp, self._meta, tile_size=self._tile_size, max_workers=self._max_workers,
            **self._options,
        )
        shape = (self.Y, self.X, self.Z, self.C, self.T)
        self._assembler = TileAssembler(shape, dtype, self._backend.write_tile, self._tile_size)
        object.__setattr__(self, "_frozen", True)

    def _put(self, region: Region, data: np.ndarray) -> None:
        if self._closed:
            raise ValueError(f"{self._path.name}: write after close")
        if not self._frozen:
            self._start()
        data = np.asarray(data)
        if data.dtype != self.dtype:
            if not np.can_cast(data.dtype, self.dtype, "safe"):
                raise TypeError(
                    f"cannot write {data.dtype} data into a {self.dtype} image without loss"
                )
            data = data.astype(self.dtype)
        data = as_5d(data)
        if data.shape != region.shape:
            if data.size == int(np.prod(region.shape)):
                data = data.reshape(region.shape)
            else:
                raise ValueError(f"data of shape {data.shape} does not fit a region of {region.shape}")
        try:
            self._assembler.write(region, data)
        except BaseException:
            self.abort()
            raise

    def write(self, image: np.ndarray, X=None, Y=None, Z=None, C=None, T=None) -> None:
        """Write ``image`` (``Y, X, Z, C, T``, trailing axes optional) starting at X, Y, Z.

        C and T are the channel and time indices the image's C and T axes go to.
        """
        data = as_5d(np.asarray(image))
        region = region_for_write((self.Y, self.X, self.Z, self.C, self.T), data.shape,
                                  X=X, Y=Y, Z=Z, C=C, T=T)
        self._put(region, data)

    def __setitem__(self, key, value) -> None:
        """``bw[y0:y1, x0:x1, z, c, t] = array``."""
        region = region_from_key((self.Y, self.X, self.Z, self.C, self.T), key)
        check_write_region((self.Y, self.X, self.Z, self.C, self.T), region)
        value = np.asarray(value)
        if value.ndim < 5 and value.size == int(np.prod(region.shape)):
            value = value.reshape(region.shape)
        self._put(region, value)

    def close(self) -> None:
        """Finish the file and give it its real name. Unwritten pixels are zero."""
        if self._closed:
            return
        if not self._frozen:
            self._start()
        try:
            missing = self._assembler.finish()
            if missing:
                log.warning("%s: %d tile(s) were never completely written; filled with zeros",
                            self._path.name, missing)
            self._backend.close()
            tmp = partial_path(self._path)
            if self._path.exists() or self._path.is_symlink():
                _remove(self._path)
            os.replace(tmp, self._path)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop writing and delete the partial file; nothing is left under the real name."""
        if self._closed:
            return
        self._closed = True
        if self._backend is not None:
            try:
                self._backend.abort()
            finally:
                _remove(partial_path(self._path))

    def __enter__(self) -> BioWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (f"BioWriter({str(self._path)!r}, backend={self._backend_cls.name!r}, "
                f"YXZCT={(self.Y, self.X, self.Z, self.C, self.T)}, dtype={self.dtype})")


_SETTABLE = frozenset(
    {"X", "Y", "Z", "C", "T", "shape", "dtype", "channel_names", "cnames", "physical_size_x",
     "physical_size_y", "physical_size_z", "ps_x", "ps_y", "ps_z", "compression",
     "compression_level", "bigtiff"}
)
