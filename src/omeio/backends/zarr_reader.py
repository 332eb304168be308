"""OME-Zarr reader: 0.4 and 0.5 images, their pyramids, bioformats2raw series and plain arrays.

The store's layout is worked out from its JSON metadata alone; zarr-python then reads the pixels.
zarr silently returns the fill value for a chunk whose key is absent, which for a converter is a
silently wrong output, so every read first checks that the chunks it touches exist.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import UnreadableFileError, UnsupportedPixelTypeError
from ..indexing import Region
from ..metadata import MetadataError, OmeMetadata, rgba_to_int
from ..pixeltypes import check_dtype
from .base import ReaderBackend
from .zarr_writer import LENGTH_UNITS, TIME_UNITS

log = logging.getLogger(__name__)

_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")
_XML = Path("OME") / "METADATA.ome.xml"
#: extra spellings of units seen in the wild
_ALIASES = {"micron": "µm", "microns": "µm", "um": "µm", "sec": "s", "seconds": "s"}
#: Bio-Formats' names of ancillary images
_KINDS = {"macro image": "macro", "macro": "macro", "label image": "label", "label": "label",
          "thumbnail image": "thumbnail", "thumbnail": "thumbnail"}


def _ome_unit(name: str | None, table: dict[str, tuple[str, float]]) -> str | None:
    """OME symbol of an OME-Zarr unit name (or of an OME symbol used as one); None if unknown."""
    if not name:
        return None
    if name in table:
        return name
    name = _ALIASES.get(name.lower(), name)
    if name in table:
        return name
    for symbol, (ngff, factor) in table.items():
        if ngff == name and factor == 1.0:
            return symbol
    return None


@dataclass
class _Node:
    """One Zarr node as its JSON says: ``array`` or ``group``, its format and attributes."""

    kind: str
    zarr_format: int
    attrs: dict[str, Any]
    meta: dict[str, Any]

    @property
    def ome(self) -> dict[str, Any]:
        """OME attributes: under ``ome`` in 0.5, at the top level before."""
        inner = self.attrs.get("ome")
        return inner if isinstance(inner, dict) else self.attrs


def _json(file: Path, store: Path) -> dict[str, Any] | None:
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableFileError(store, f"broken Zarr metadata {_rel(file, store)}: {exc}") from exc
    if not isinstance(data, dict):
        raise UnreadableFileError(store, f"broken Zarr metadata {_rel(file, store)}: "
                                         "not a JSON object")
    return data


def _rel(path: Path, store: Path) -> str:
    try:
        return str(path.relative_to(store)) or "."
    except ValueError:
        return str(path)


def _node(directory: Path, store: Path) -> _Node | None:
    v3 = _json(directory / "zarr.json", store)
    if v3 is not None:
        kind = v3.get("node_type")
        if kind not in ("array", "group"):
            raise UnreadableFileError(store, f"broken Zarr metadata {_rel(directory, store)}/"
                                             f"zarr.json: node_type {kind!r}")
        attrs = v3.get("attributes") or {}
        return _Node(kind, 3, attrs if isinstance(attrs, dict) else {}, v3)
    zarray = _json(directory / ".zarray", store)
    zattrs = _json(directory / ".zattrs", store) or {}
    if zarray is not None:
        return _Node("array", 2, zattrs, zarray)
    zgroup = _json(directory / ".zgroup", store)
    if zgroup is not None or zattrs:
        return _Node("group", 2, zattrs, zgroup or {})
    return None


def _shape(node: _Node, where: Path, store: Path) -> tuple[int, ...]:
    shape = node.meta.get("shape")
    if not isinstance(shape, list) or not all(isinstance(v, int) and v >= 0 for v in shape):
        raise UnreadableFileError(store, f"array {_rel(where, store)} has no valid shape")
    return tuple(shape)


@dataclass
class _Image:
    """One multiscale image: where its levels are and what its axes mean."""

    directory: Path
    name: str | None
    letters: list[str]  # per array dimension: t, c, z, y, x or "?" (an unknown axis of size 1)
    units: dict[str, str | None]
    datasets: list[str]
    scales: list[list[float]]
    shape0: tuple[int, ...]
    omero: dict[str, Any] | None = None
    arrays: dict[int, Any] = field(default_factory=dict)

    def size(self, letter: str, shape: tuple[int, ...] | None = None) -> int:
        shape = self.shape0 if shape is None else shape
        return shape[self.letters.index(letter)] if letter in self.letters else 1


def _letters(axes: list[Any], shape: tuple[int, ...], where: str, store: Path) -> list[str]:
    """Map each axis to one of ``t, c, z, y, x`` by name, else by type; unknown unit axes drop."""
    if len(axes) != len(shape):
        raise UnreadableFileError(store, f"{where}: {len(axes)} axes for an array of "
                                         f"{len(shape)} dimensions")
    letters: list[str] = []
    for axis, size in zip(axes, shape, strict=True):
        name = str(axis.get("name", "") if isinstance(axis, dict) else axis).lower()
        kind = str(axis.get("type") or "").lower() if isinstance(axis, dict) else ""
        if name in ("t", "c", "z", "y", "x"):
            letter = name
        elif kind in ("time", "channel"):
            letter = kind[0]
        elif size == 1:
            letter = "?"
        else:
            raise UnreadableFileError(store, f"{where}: axis {name!r} of size {size} is not one "
                                             "of t, c, z, y, x")
        if letter != "?" and letter in letters:
            raise UnreadableFileError(store, f"{where}: two axes map to {letter!r}")
        letters.append(letter)
    if "y" not in letters or "x" not in letters:
        raise UnreadableFileError(store, f"{where}: no y and x axes among {axes}")
    return letters


def _scale(transforms: Any, ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for item in transforms or []:
        if isinstance(item, dict) and item.get("type") == "scale":
            values = item.get("scale")
            if isinstance(values, list) and len(values) == ndim:
                scale = [a * float(b) for a, b in zip(scale, values, strict=True)]
    return scale


def _image(directory: Path, store: Path) -> _Image:
    """Parse the multiscales of the image group at ``directory`` (JSON only)."""
    where = _rel(directory, store)
    node = _node(directory, store)
    if node is None:
        raise UnreadableFileError(store, f"image group {where} is missing")
    ome = node.ome
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise UnreadableFileError(store, f"group {where} has no multiscales metadata")
    ms = multiscales[0]
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise UnreadableFileError(store, f"multiscales of {where} list no datasets")
    paths = []
    for d in datasets:
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            raise UnreadableFileError(store, f"multiscales of {where}: dataset without a path")
        paths.append(d["path"])
    level0 = directory / paths[0]
    array = _node(level0, store)
    if array is None or array.kind != "array":
        raise UnreadableFileError(store, f"level 0 array {_rel(level0, store)} is missing")
    shape0 = _shape(array, level0, store)
    axes = ms.get("axes")
    if axes is None:  # 0.1 / 0.2: always five dimensions, t c z y x
        axes = list("tczyx")[-len(shape0):] if len(shape0) <= 5 else []
    if not isinstance(axes, list):
        raise UnreadableFileError(store, f"multiscales of {where}: axes is not a list")
    letters = _letters(axes, shape0, f"multiscales of {where}", store)
    units = {}
    for letter, axis in zip(letters, axes, strict=True):
        units[letter] = axis.get("unit") if isinstance(axis, dict) else None
    common = _scale(ms.get("coordinateTransformations"), len(shape0))
    scales = [[a * b for a, b in zip(common, _scale(d.get("coordinateTransformations"),
                                                    len(shape0)), strict=True)] for d in datasets]
    omero = ome.get("omero") if isinstance(ome.get("omero"), dict) else None
    name = ms.get("name") if isinstance(ms.get("name"), str) else None
    return _Image(directory, name, letters, units, paths, scales, shape0, omero)


def _plain(directory: Path, node: _Node, store: Path) -> _Image:
    """A bare 2-to-5-D array: the last axes of ``t, c, z, y, x``."""
    shape = _shape(node, directory, store)
    if not 2 <= len(shape) <= 5:
        raise UnreadableFileError(store, f"a plain Zarr array of {len(shape)} dimensions; "
                                         "2 to 5 (t, c, z, y, x) can be read")
    letters = list("tczyx")[-len(shape):]
    return _Image(directory, None, letters, {}, [""], [[1.0] * len(shape)], shape)


def _series(store: Path) -> tuple[list[_Image], bool]:
    """Every image of the store, and whether its OME/METADATA.ome.xml applies to them."""
    root = _node(store, store)
    if root is None:
        raise UnreadableFileError(store, "no Zarr metadata (zarr.json, .zgroup, .zattrs, .zarray)")
    if root.kind == "array":
        return [_plain(store, root, store)], False
    ome = root.ome
    if "multiscales" in ome:
        return [_image(store, store)], True
    if "bioformats2raw.layout" in ome:
        listed = None
        meta = _node(store / "OME", store)
        if meta is not None:
            listed = meta.ome.get("series")
        if isinstance(listed, list) and listed:
            paths = [str(p) for p in listed]
        else:
            paths = []
            while (store / str(len(paths))).is_dir() and _node(store / str(len(paths)), store):
                paths.append(str(len(paths)))
        if not paths:
            raise UnreadableFileError(store, "bioformats2raw layout without any series group")
        return [_image(store / p, store) for p in paths], True
    if "plate" in ome or "well" in ome:
        raise UnreadableFileError(store, "an OME-Zarr plate/well: open one field's image group "
                                         "(row/column/field) instead")
    raise UnreadableFileError(store, "a Zarr group without OME-Zarr multiscales or a "
                                     "bioformats2raw layout")


def _pixel_type(dtype: np.dtype, store: Path) -> np.dtype:
    """The type pixels are served as: exact, with bool as uint8 and float16 widened."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype("uint8")
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype("float32")
    try:
        return check_dtype(dtype)
    except UnsupportedPixelTypeError as exc:
        raise UnreadableFileError(store, f"pixel type {dtype} is not supported") from exc


def _hex_to_color(value: Any) -> int | None:
    text = str(value or "").lstrip("#")
    if len(text) != 6:
        return None
    try:
        rgb = int(text, 16)
    except ValueError:
        return None
    return rgba_to_int((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255, 255)


def _runs(indices: tuple[int, ...]) -> slice | np.ndarray:
    """A slice when the indices are consecutive, else an index array."""
    if all(b == a + 1 for a, b in zip(indices, indices[1:], strict=False)):
        return slice(indices[0], indices[-1] + 1)
    return np.asarray(indices, dtype=np.int64)


class ZarrReader(ReaderBackend):
    """OME-Zarr 0.4 / 0.5 (Zarr v2 / v3): ``series`` are bioformats2raw images, ``level``
    a multiscales dataset."""

    name = "zarr"

    def __init__(self, path: Path, series: int = 0, level: int = 0, max_workers: int | None = None):
        super().__init__(path, series=series, level=level, max_workers=max_workers)
        if not self.path.is_dir():
            raise UnreadableFileError(self.path, "not a directory, so not a Zarr store")
        self._images, has_xml = _series(self.path)
        self.series_count = len(self._images)
        if not 0 <= series < self.series_count:
            raise IndexError(f"series {series} out of range: the store has {self.series_count}")
        self._image = self._images[series]
        self.level_count = len(self._image.datasets)
        if not 0 <= level < self.level_count:
            raise IndexError(f"level {level} out of range: series {series} has "
                             f"{self.level_count} level(s)")
        self._array = self._open(self._image, level)
        self._letters = [x for x in self._image.letters if x != "?"]
        shape = tuple(self._array.shape)
        self.shape = tuple(self._image.size(a, shape) for a in "yxzct")  # type: ignore[assignment]
        self._stored_dtype = np.dtype(self._array.dtype)
        self.dtype = _pixel_type(self._stored_dtype, self.path)
        grid = self._array.shards or self._array.chunks
        self._grid = tuple(int(g) for g in grid)
        self._array_dir = self._image.directory / self._image.datasets[level]
        self.metadata = self._metadata(has_xml)

    # -- opening -----------------------------------------------------------------------------

    def _open(self, image: _Image, level: int):
        if level in image.arrays:
            return image.arrays[level]
        directory = image.directory / image.datasets[level]
        where = _rel(directory, self.path)
        node = _node(directory, self.path)
        if node is None or node.kind != "array":
            raise UnreadableFileError(self.path, f"level {level} array {where} is missing")
        try:
            array = zarr.open_array(store=str(directory), mode="r", zarr_format=node.zarr_format)
        except Exception as exc:
            raise UnreadableFileError(self.path, f"cannot open array {where}: "
                                                 f"{type(exc).__name__}: {exc}") from exc
        if array.ndim != len(image.letters):
            raise UnreadableFileError(self.path, f"array {where} has {array.ndim} dimensions, "
                                                 f"its axes {len(image.letters)}")
        image.arrays[level] = array
        return array

    # -- metadata ----------------------------------------------------------------------------

    def _synthesised(self) -> OmeMetadata:
        """An OME document made from multiscales (sizes, scale, units) and omero (channels)."""
        doc: OmeMetadata | None = None
        for i, image in enumerate(self._images):
            array = self._open(image, 0)
            shape = tuple(array.shape)
            channels = (image.omero or {}).get("channels")
            size_c = image.size("c", shape)
            if not isinstance(channels, list) or len(channels) != size_c:
                channels = [{}] * size_c
            names = [ch.get("label") if isinstance(ch, dict) and isinstance(ch.get("label"), str)
                     else None for ch in channels]
            meta = OmeMetadata.new(
                size_x=image.size("x", shape), size_y=image.size("y", shape),
                size_z=image.size("z", shape), size_c=size_c, size_t=image.size("t", shape),
                dtype=_pixel_type(array.dtype, self.path), channel_names=names,
                name=image.name or (image.omero or {}).get("name") or None,
            )
            pixels = meta.images[0].pixels
            for ch, raw in zip(pixels.channels, channels, strict=False):
                color = _hex_to_color(raw.get("color")) if isinstance(raw, dict) else None
                if color is not None:
                    ch.color = color
            scale = dict(zip(image.letters, image.scales[0], strict=True))
            for letter in "zyx":
                symbol = _ome_unit(image.units.get(letter), LENGTH_UNITS)
                if letter in scale and symbol is not None and scale[letter] > 0:
                    pixels.set_physical_size(letter.upper(), scale[letter], symbol)
            symbol = _ome_unit(image.units.get("t"), TIME_UNITS)
            if "t" in scale and symbol is not None and scale["t"] > 0:
                pixels.element.set("TimeIncrement", repr(float(scale["t"])))
                pixels.element.set("TimeIncrementUnit", symbol)
            element = meta.images[0].element
            element.set("ID", f"Image:{i}")
            pixels.element.set("ID", f"Pixels:{i}")
            for k, ch in enumerate(pixels.channels):
                ch.element.set("ID", f"Channel:{i}:{k}")
            if doc is None:
                doc = meta
            else:
                doc.root.append(element)
        assert doc is not None
        return doc

    def _metadata(self, has_xml: bool) -> OmeMetadata:
        """OME/METADATA.ome.xml when it is there and fits, else the synthesised document."""
        file = self.path / _XML
        if not has_xml or not file.is_file():
            return self._synthesised()
        try:
            meta = OmeMetadata.from_xml(file.read_bytes())
        except (OSError, MetadataError) as exc:
            log.warning("%s: ignoring %s (%s); metadata rebuilt from the Zarr attributes",
                        self.path, _XML, exc)
            return self._synthesised()
        if len(meta.images) != len(self._images):
            log.warning("%s: %s describes %d image(s) for %d series; metadata rebuilt from the "
                        "Zarr attributes", self.path, _XML, len(meta.images), len(self._images))
            return self._synthesised()
        for image, ome_image in zip(self._images, meta.images, strict=True):
            self._reconcile(image, ome_image)
        return meta

    def _reconcile(self, image: _Image, ome_image) -> None:
        """Make the XML's sizes and type those of the level-0 array, which are the truth."""
        pixels = ome_image.pixels
        pixels.expand_samples()
        array = self._open(image, 0)
        shape = tuple(array.shape)
        want = {a: image.size(a, shape) for a in "xyzct"}
        have = {"x": pixels.size_x, "y": pixels.size_y, "z": pixels.size_z,
                "c": pixels.size_c, "t": pixels.size_t}
        dtype = _pixel_type(array.dtype, self.path)
        if want != have or pixels.dtype != dtype or len(pixels.channels) != want["c"]:
            log.warning("%s: OME-XML of %s says %s %s, the array is %s %s; using the array's",
                        self.path, ome_image.id, have, pixels.type, want, dtype)
            pixels.size_x, pixels.size_y = want["x"], want["y"]
            pixels.size_z, pixels.size_t = want["z"], want["t"]
            pixels.set_channel_count(want["c"])
            pixels.dtype = dtype
            pixels.reset_planes()

    def series_kind(self, series: int) -> str:
        name = (self.metadata.image(series).name or "").strip().lower()
        return _KINDS.get(name, "image")

    # -- pixels ------------------------------------------------------------------------------

    def _check_chunks(self, selection: list[slice | np.ndarray]) -> None:
        """Raise if a chunk (a shard, when sharded) the selection touches has no stored key."""
        per_axis = []
        for sel, g in zip(selection, self._grid, strict=True):
            if isinstance(sel, slice):
                start, stop = sel.start, sel.stop
                if isinstance(sel.step, int) and sel.step > 1:
                    stop = start + (len(range(start, stop, sel.step)) - 1) * sel.step + 1
                per_axis.append(range(start // g, (stop - 1) // g + 1))
            else:
                per_axis.append(sorted({int(i) // g for i in sel}))
        encode = self._array.metadata.encode_chunk_key
        base = str(self._array_dir)
        for coords in itertools.product(*per_axis):
            key = encode(coords)
            if not os.path.exists(os.path.join(base, key)):
                where = _rel(self._array_dir / key, self.path)
                raise UnreadableFileError(
                    self.path, f"missing chunk {where} (chunk {coords} of level {self.level}); "
                    "zarr would silently return fill values there: the store is incomplete or "
                    "was written without its empty chunks")

    def _read_box(self, y: range, x: range, z: tuple[int, ...], c: tuple[int, ...],
                  t: tuple[int, ...]) -> np.ndarray:
        """``(Y, X, Z, C, T)`` pixels of one orthogonal box, read through zarr."""
        wanted = {"y": slice(y.start, y.stop, y.step), "x": slice(x.start, x.stop, x.step),
                  "z": _runs(z), "c": _runs(c), "t": _runs(t)}
        selection = [slice(0, 1) if a == "?" else wanted[a] for a in self._image.letters]
        self._check_chunks(selection)
        try:
            data = self._array.get_orthogonal_selection(tuple(selection))
        except Exception as exc:
            raise UnreadableFileError(self.path, f"cannot read level {self.level}: "
                                                 f"{type(exc).__name__}: {exc}") from exc
        data = np.asarray(data)
        keep = [i for i, a in enumerate(self._image.letters) if a != "?"]
        data = data.reshape([data.shape[i] for i in keep])
        present = [a for a in "yxzct" if a in self._letters]
        data = data.transpose([self._letters.index(a) for a in present])
        data = data.reshape((len(y), len(x), len(z), len(c), len(t)))
        return data.astype(self.dtype, copy=False)

    def read_region(self, region: Region, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """Read the chunks the region touches; bands of chunk rows and planes go to the pool."""
        if 0 in region.shape:
            return np.empty(region.shape, self.dtype)
        gy = self._grid[self._image.letters.index("y")]
        gx = self._grid[self._image.letters.index("x")]
        y0, y1 = region.y_span
        x0, x1 = region.x_span
        rows = (y1 - 1) // gy - y0 // gy + 1
        cols = (x1 - 1) // gx - x0 // gx + 1
        planes = len(region.z) * len(region.c) * len(region.t)
        if pool is None or self.max_workers <= 1 or rows * cols < 2 or rows * planes < 2:
            return self._read_box(region.y, region.x, region.z, region.c, region.t)
        out = np.empty(region.shape, self.dtype)
        step = region.y.step
        jobs = []
        for band in range(y0 // gy, (y1 - 1) // gy + 1):
            b0, b1 = band * gy, (band + 1) * gy
            k0 = max(0, math.ceil((b0 - region.y.start) / step))
            k1 = min(len(region.y), math.ceil((b1 - region.y.start) / step))
            if k1 <= k0:
                continue
            for iz, ic, it, z, c, t in region.planes():
                jobs.append((k0, k1, iz, ic, it, z, c, t))

        def one(job):
            k0, k1, iz, ic, it, z, c, t = job
            box = self._read_box(region.y[k0:k1], region.x, (z,), (c,), (t,))
            out[k0:k1, :, iz, ic, it] = box[:, :, 0, 0, 0]

        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
        return out

    def read_plane(self, z: int, c: int, t: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self._read_box(range(y0, y1), range(x0, x1), (z,), (c,), (t,))[:, :, 0, 0, 0]

    # -- sniffing ----------------------------------------------------------------------------

    @classmethod
    def can_read(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and any((path / m).is_file() for m in _MARKERS)

    @classmethod
    def image_size(cls, path: Path) -> tuple[int, int]:
        """``(width, height)`` of series 0, level 0, from the JSON metadata alone."""
        path = Path(path)
        try:
            image = _series(path)[0][0]
            return image.size("x"), image.size("y")
        except Exception:
            return -1, -1
