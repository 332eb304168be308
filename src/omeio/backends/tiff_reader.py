"""Read any TIFF through tifffile, decoding only the tiles or strips a window touches.

tifffile parses the file (series, pyramid levels, OME/ImageJ metadata, codecs); this module does
its own I/O: it works out which segments of which pages a region needs, reads their bytes with
``os.pread`` on a raw descriptor (no shared file position, so no lock) and decodes them with the
page's own segment decoder in the caller's thread pool. A 1024x1024 window of a 20000x20000 image
costs a handful of tiles, not the plane.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ..errors import CorruptFileError, UnreadableFileError
from ..indexing import Region
from ..metadata import MetadataError, OmeMetadata
from ..pixeltypes import OME_TYPES, SUPPORTED
from .base import ReaderBackend

log = logging.getLogger(__name__)

_ANCILLARY = ("thumbnail", "label", "macro")
#: tifffile ResolutionUnit -> micrometres per unit
_RESUNIT_UM = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}
#: ImageJ ``unit`` strings -> OME length unit symbols
_IMAGEJ_UNITS = {
    "micron": "µm", "microns": "µm", "um": "µm", "µm": "µm", "μm": "µm", "\\u00b5m": "µm",
    "nm": "nm", "nanometer": "nm", "mm": "mm", "millimeter": "mm", "cm": "cm",
    "centimeter": "cm", "m": "m", "meter": "m", "inch": "in", "in": "in", "pm": "pm",
    "angstrom": "Å", "å": "Å",
}
_JPEG = {6, 7, 33007, 34892}
#: a gap between two segments up to which one read is cheaper than two
_COALESCE_GAP = 1 << 14


# -- axes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One axis of a series that feeds a 5-D axis: an outer (page) axis, page depth or samples."""

    kind: str  # "page" (position in the outer axes), "depth" or "sample"
    pos: int
    size: int


@dataclass(frozen=True)
class AxisMap:
    """How the 5-D view's Z, C and T index a series: which page, which depth, which sample.

    A target axis made of several sources is their C-order flattening, in series order, with
    page depth (for Z) and samples (for C) innermost, which is how OME expands RGB channels.
    """

    outer_shape: tuple[int, ...]
    z: tuple[_Source, ...]
    c: tuple[_Source, ...]
    t: tuple[_Source, ...]

    @staticmethod
    def _size(sources: tuple[_Source, ...]) -> int:
        return math.prod(s.size for s in sources)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return self._size(self.z), self._size(self.c), self._size(self.t)

    def locate(self, z: int, c: int, t: int) -> tuple[int, int, int]:
        """``(page index in series, depth in page, sample in page)`` of plane ``(z, c, t)``."""
        outer = [0] * len(self.outer_shape)
        depth = sample = 0
        for sources, value in ((self.z, z), (self.c, c), (self.t, t)):
            for src in reversed(sources):
                value, k = divmod(value, src.size)
                if src.kind == "page":
                    outer[src.pos] = k
                elif src.kind == "depth":
                    depth = k
                else:
                    sample = k
        page = 0
        for k, n in zip(outer, self.outer_shape, strict=True):
            page = page * n + k
        return page, depth, sample


def axis_map(axes: str, shape: Sequence[int], page_shaped: Sequence[int]) -> AxisMap:
    """Map a tifffile series (unsqueezed ``axes``/``shape``) onto Z, C and T.

    The trailing axes whose product is one page's size belong to the page; the rest index pages
    in C order. S and C go to C, Z to Z, T to T; any other axis to Z while Z is empty, else to T
    while T is empty, else it is flattened into T.
    """
    sep, depth, _, _, contig = (int(v) for v in page_shaped)
    page_size = math.prod(int(v) for v in page_shaped)
    shape = [int(v) for v in shape]
    k, acc = len(shape), 1
    while k > 0 and acc < page_size:
        k -= 1
        acc *= shape[k]
    outer_axes, outer_shape = axes[:k], shape[:k]
    if acc != page_size:  # metadata that does not split into pages: one flat page axis
        total = math.prod(shape)
        outer_axes, outer_shape = "I", [max(1, total // max(1, page_size))]
    targets: dict[str, list[_Source]] = {"Z": [], "C": [], "T": []}
    others: list[_Source] = []
    for pos, (ax, n) in enumerate(zip(outer_axes, outer_shape, strict=True)):
        if n == 1:
            continue
        src = _Source("page", pos, n)
        if ax in "ZCT":
            targets[ax].append(src)
        elif ax == "S":
            targets["C"].append(src)
        else:
            others.append(src)
    if depth > 1:
        targets["Z"].append(_Source("depth", 0, depth))
    if sep * contig > 1:
        targets["C"].append(_Source("sample", 0, sep * contig))
    for src in others:
        if not targets["Z"]:
            targets["Z"].append(src)
        elif not targets["T"]:
            targets["T"].append(src)
        else:
            targets["T"].append(src)
    for key in targets:  # series order; depth and samples (pos 0, kind != page) stay innermost
        targets[key].sort(key=lambda s: (s.kind != "page", s.pos))
    return AxisMap(tuple(outer_shape), *(tuple(targets[a]) for a in "ZCT"))


def series_map(series) -> AxisMap:
    return axis_map(series.get_axes(False), series.get_shape(False), series.keyframe.shaped)


# -- metadata --------------------------------------------------------------------------------------


def _exposed_dtype(dtype: np.dtype) -> np.dtype | None:
    """The dtype the 5-D view has (bilevel reads as uint8), or None when omeio cannot hold it."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype("uint8")
    native = dtype.newbyteorder("=")
    return native if native in OME_TYPES else None


def _physical_sizes(tf: tifffile.TiffFile, page) -> dict[str, tuple[float, str]]:
    """Physical sizes from the resolution tags, or from ImageJ's unit and spacing."""
    out: dict[str, tuple[float, str]] = {}
    tags = page.tags
    unit = int(tags.valueof(296, default=2))
    ij = tf.imagej_metadata if tf.is_imagej else None
    if 282 in tags and 283 in tags:
        xres, yres = page.get_resolution()
        if unit in _RESUNIT_UM:
            scale, symbol = _RESUNIT_UM[unit], "µm"
        elif ij and str(ij.get("unit", "")).lower() in _IMAGEJ_UNITS:
            scale, symbol = 1.0, _IMAGEJ_UNITS[str(ij["unit"]).lower()]
        else:
            scale = symbol = None
        if symbol is not None:
            for axis, res in (("X", xres), ("Y", yres)):
                if res and res > 0 and math.isfinite(res):
                    out[axis] = (scale / res, symbol)
    if ij and str(ij.get("unit", "")).lower() in _IMAGEJ_UNITS:
        spacing = ij.get("spacing")
        if isinstance(spacing, (int, float)) and spacing > 0:
            out["Z"] = (float(spacing), _IMAGEJ_UNITS[str(ij["unit"]).lower()])
    return out


def _add_image(meta: OmeMetadata | None, index: int, shape, dtype: np.dtype, name: str | None,
               physical: dict[str, tuple[float, str]]) -> OmeMetadata:
    """Append a synthesised Image ``index`` (a fresh one-image document's, renumbered)."""
    y, x, z, c, t = shape
    doc = OmeMetadata.new(x, y, z, c, t, dtype="uint8", name=name or None)
    image = doc.images[0]
    pixels = image.pixels
    exposed = _exposed_dtype(dtype)
    if exposed is not None:
        pixels.dtype = exposed
        if np.dtype(dtype) == np.bool_:
            pixels.element.set("Type", "bit")
            pixels.element.set("SignificantBits", "1")
    for axis, (value, unit) in physical.items():
        pixels.set_physical_size(axis, value, unit)
    image.element.set("ID", f"Image:{index}")
    pixels.element.set("ID", f"Pixels:{index}")
    for i, ch in enumerate(pixels.channels):
        ch.element.set("ID", f"Channel:{index}:{i}")
    if meta is None:
        return doc
    meta.root.append(image.element)
    return meta


# -- segments --------------------------------------------------------------------------------------


@dataclass
class _Target:
    """Where one plane of a page goes: page depth and sample, and the output plane's index."""

    depth: int
    sample: int
    plane: tuple[int, int, int]


@dataclass
class _Segment:
    """One strip or tile to read: bytes, decoder index, origin in the image, destinations."""

    fd: int
    offset: int
    nbytes: int
    index: int
    page: object
    y: int
    x: int
    d: int
    targets: list[_Target]


class _VirtualPage:
    """A page of a contiguous (e.g. ImageJ > 4 GB) series that has no IFD of its own."""

    def __init__(self, keyframe, shift: int):
        self.keyframe = keyframe
        self.index = keyframe.index
        self.parent = keyframe.parent
        self.dataoffsets = tuple(o + shift for o in keyframe.dataoffsets)
        self.databytecounts = keyframe.databytecounts
        self.jpegtables = None


class TiffReader(ReaderBackend):
    """tifffile-parsed TIFF (OME, ImageJ, pyramids, RGB, BigTIFF...) with windowed decoding."""

    name = "tiff"

    def __init__(self, path: Path, series: int = 0, level: int = 0,
                 max_workers: int | None = None):
        super().__init__(path, series, level, max_workers)
        self._fds: dict[str, int] = {}
        self._lock = threading.RLock()
        self._pages: dict[int, object] = {}
        self._whole: tuple[object, np.ndarray] | None = None
        loops, self._chain_defect = ifd_chain_defect(self.path)
        if loops:  # tifffile would walk it for ever
            raise CorruptFileError(self.path, self._chain_defect)
        try:
            self._tf = tifffile.TiffFile(str(self.path))
        except Exception as exc:
            raise self._structure_error("not a readable TIFF", exc) from exc
        try:
            self._open(series, level)
        except BaseException:
            self.close()
            raise

    def _structure_error(self, what: str, exc: Exception) -> UnreadableFileError:
        """tifffile's refusal; conclusive when the IFD chain itself runs out of the file.

        A damaged chain sent Bio-Formats, the next backend, past any time limit (its ImageJ
        comment parser over thousands of bogus IFD entries). A chain that breaks after readable
        pages is no reason to refuse a file that tifffile reads.
        """
        if self._chain_defect is not None:
            return CorruptFileError(self.path, f"{what}: {exc}; {self._chain_defect}")
        return UnreadableFileError(self.path, f"{what}: {exc}")

    def _open(self, series: int, level: int) -> None:
        try:
            all_series = self._tf.series
        except Exception as exc:
            raise self._structure_error("TIFF structure unreadable", exc) from exc
        if not all_series:
            raise UnreadableFileError(self.path, "the TIFF holds no image")
        self.series_count = len(all_series)
        if not 0 <= series < self.series_count:
            raise IndexError(f"series {series} out of range: the file has {self.series_count}")
        base = all_series[series]
        self.level_count = len(base.levels)
        if not 0 <= level < self.level_count:
            raise IndexError(f"level {level} out of range: series {series} has "
                             f"{self.level_count} level(s)")
        if base.dtype is None or base.keyframe.dtype is None:
            kf = base.keyframe
            raise UnreadableFileError(
                self.path, f"pixel type not supported (SampleFormat {kf.sampleformat}, "
                f"{kf.bitspersample}-bit)")
        dtype = _exposed_dtype(base.dtype)
        if dtype is None:
            raise UnreadableFileError(
                self.path, f"pixel type {base.dtype} of series {series} is not supported "
                f"(supported: {SUPPORTED})")
        self.dtype = dtype
        self._series = base.levels[level]
        self._kf = self._series.keyframe
        self._map = series_map(self._series)
        kf = self._kf
        self.shape = (int(kf.imagelength), int(kf.imagewidth), *self._map.sizes)
        if min(self.shape) < 1:
            raise UnreadableFileError(self.path, f"the image holds no pixels: its size is "
                                      f"{self.shape} (Y, X, Z, C, T)")
        self._byteorder = self._tf.byteorder
        self._plan_storage()
        self._check_claims()
        self.metadata = self._read_metadata(all_series)

    # -- metadata ---------------------------------------------------------------------------------

    def _read_metadata(self, all_series) -> OmeMetadata:
        shapes = []
        for s in all_series:
            m = series_map(s)
            shapes.append((int(s.keyframe.imagelength), int(s.keyframe.imagewidth), *m.sizes))
        if self._tf.is_ome:
            try:
                meta = OmeMetadata.from_xml(self._tf.ome_metadata)
                for image in meta.images:
                    image.pixels.expand_samples()
                if len(meta.images) == len(all_series):
                    for image, shape in zip(meta.images, shapes, strict=True):
                        self._reconcile(image.pixels, shape)
                    return meta
                log.warning("%s: %d OME images but %d series; describing the series instead",
                            self.path.name, len(meta.images), len(all_series))
            except (MetadataError, ValueError) as exc:
                log.warning("%s: OME-XML unusable (%s); describing the TIFF instead",
                            self.path.name, exc)
        meta = None
        for i, (s, shape) in enumerate(zip(all_series, shapes, strict=True)):
            physical = _physical_sizes(self._tf, s.keyframe)
            meta = _add_image(meta, i, shape, s.dtype, s.name, physical)
        return meta

    @staticmethod
    def _reconcile(pixels, shape) -> None:
        """Make the sizes the XML claims agree with the pixels tifffile found."""
        y, x, z, c, t = shape
        if pixels.size_c != c:
            pixels.set_channel_count(c)
        pixels.size_y, pixels.size_x, pixels.size_z, pixels.size_t = y, x, z, t
        pixels.reset_planes()

    # -- ReaderBackend ----------------------------------------------------------------------------

    @classmethod
    def can_read(cls, path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
        except OSError:
            return False

    @classmethod
    def image_size(cls, path: Path) -> tuple[int, int]:
        try:
            with tifffile.TiffFile(str(path)) as tf:
                page = tf.pages.first
                return int(page.imagewidth), int(page.imagelength)
        except Exception:
            return -1, -1

    def series_kind(self, series: int) -> str:
        s = self._tf.series[series]
        for text in (s.name, s.kind):
            low = (text or "").strip().lower()
            for kind in _ANCILLARY:
                if low == kind or low.startswith(kind):
                    return kind
        return "image"

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds.clear()
            self._whole = None
            tf = getattr(self, "_tf", None)
            if tf is not None:
                tf.close()

    def read_plane(self, z: int, c: int, t: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        region = Region(range(y0, y1), range(x0, x1), (z,), (c,), (t,))
        return self.read_region(region)[:, :, 0, 0, 0]

    def read_region(self, region: Region, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        y0, y1 = region.y_span
        x0, x1 = region.x_span
        out = np.empty((y1 - y0, x1 - x0, len(region.z), len(region.c), len(region.t)), self.dtype)
        if out.size:
            tasks = self._plan(region, y0, y1, x0, x1, out)
            self._run(tasks, pool)
        if region.stepped:
            out = out[:: region.y.step, :: region.x.step]
        return out

    # -- storage ----------------------------------------------------------------------------------

    def _plan_storage(self) -> None:
        """Decide how pages are read: raw rows, decoded segments, or (rarely) whole pages."""
        kf = self._kf
        sep, depth, length, width, contig = kf.shaped
        self._sep, self._depth, self._contig = int(sep), int(depth), int(contig)
        if min(self._sep, self._depth, self._contig) < 1:
            raise UnreadableFileError(self.path, f"pages of {self._sep * self._contig} "
                                      f"samples and depth {self._depth} hold no pixels")
        self._tiled = bool(kf.is_tiled)
        if self._tiled:
            self._seg_shape = (int(kf.tiledepth), int(kf.tilelength), int(kf.tilewidth))
        else:
            self._seg_shape = (1, int(min(kf.rowsperstrip or length, length)) or 1, int(width))
        sd, sl, sw = self._seg_shape
        if min(self._seg_shape) < 1:
            raise UnreadableFileError(self.path, f"{'tiles' if self._tiled else 'strips'} of "
                                      f"{sw} x {sl} x {sd} pixels hold nothing")
        self._grid = (math.ceil(depth / sd), math.ceil(length / sl), math.ceil(width / sw))
        self._jpeg = kf.compression in _JPEG
        if kf.compression != 1 and kf.compression not in tifffile.TIFF.DECOMPRESSORS:
            raise UnreadableFileError(
                self.path, f"TIFF compression {kf.compression} cannot be decoded here")
        # Full-page decode only where a page cannot be read piecewise: NDPI-like single JPEG
        # strips that tifffile presents as virtual tiles, and series whose pixels tifffile
        # transforms after decoding (MD Gel).
        self._transform = self._series.transform
        self._whole_page = bool(
            (kf.jpegheader is not None and 273 in kf.tags and kf.is_tiled)
            or self._transform is not None
        )
        raw_dtype = kf.dtype.newbyteorder(self._byteorder) if kf.dtype is not None else None
        self._raw = (
            not self._tiled and not self._whole_page and kf.compression == 1
            and kf.predictor == 1 and kf.fillorder == 1 and not kf.is_subsampled
            and raw_dtype is not None and raw_dtype != np.bool_
            and kf.bitspersample == raw_dtype.itemsize * 8
        )
        self._raw_dtype = raw_dtype
        try:
            self._decode = kf.decode  # the closure tifffile caches per page layout
        except Exception as exc:
            raise UnreadableFileError(self.path, f"cannot decode this TIFF: {exc}") from exc
        n_outer = math.prod(self._map.outer_shape)
        self._contiguous_step = None
        if n_outer > len(self._series):
            offset = self._series.dataoffset
            if offset is None or kf.compression != 1 or not kf.is_contiguous:
                raise UnreadableFileError(
                    self.path, f"series describes {n_outer} planes but holds {len(self._series)}"
                    " and its data is not contiguous")
            self._contiguous_step = int(kf.nbytes)

    def _check_claims(self) -> None:
        """Refuse a header that promises pixels the file cannot hold, before any read.

        tifffile fills planes the OME-XML lists but the file lacks with zeros, and an
        uncompressed page can claim far more pixels than its strips hold: either way a
        conversion would write zeros (or try to) where the file has nothing.
        """
        pages = getattr(self._series, "_pages", None)  # None where the file lacks a page
        if pages is not None and len(pages) == len(self._series):
            missing = sum(1 for p in pages if p is None)
            if missing:
                raise CorruptFileError(
                    self.path, f"the metadata describes {len(pages)} planes but {missing} of "
                    "them are not in the file")
        kf = self._kf
        segments = self._sep * math.prod(self._grid)
        if not self._whole_page and len(kf.dataoffsets) < segments:
            what = "tiles" if self._tiled else "strips"
            raise CorruptFileError(
                self.path, f"page {kf.index} of {kf.imagewidth} x {kf.imagelength} pixels "
                f"lists {len(kf.dataoffsets)} of the {segments} {what} it needs")
        counts = [int(n) for n in kf.databytecounts]
        if (kf.compression == 1 and not self._whole_page and not kf.is_subsampled
                and kf.bitspersample % 8 == 0 and counts and min(counts) > 0):
            needed = math.prod(int(v) for v in kf.shaped) * (kf.bitspersample // 8)
            if sum(counts) < needed:
                raise CorruptFileError(
                    self.path, f"uncompressed page {kf.index} of {kf.imagewidth} x "
                    f"{kf.imagelength} pixels needs {needed} bytes but declares {sum(counts)}")

    def _fd(self, page) -> int:
        path = str(getattr(page.parent.filehandle, "path", None) or self.path)
        fd = self._fds.get(path)
        if fd is None:
            with self._lock:
                fd = self._fds.get(path)
                if fd is None:
                    try:
                        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                    except OSError as exc:
                        raise UnreadableFileError(path, f"cannot open: {exc.strerror}") from exc
                    self._fds[path] = fd
        return fd

    def _page(self, index: int):
        """Page ``index`` of the series (None where the file lacks it), loaded once, locked."""
        try:
            return self._pages[index]
        except KeyError:
            pass
        with self._lock:
            if index not in self._pages:
                if self._contiguous_step is not None:
                    page = _VirtualPage(self._kf, index * self._contiguous_step)
                else:
                    try:
                        page = self._series[index]
                    except Exception as exc:
                        raise UnreadableFileError(
                            self.path, f"page {index} of the series unreadable: {exc}") from exc
                    if page is not None and not all(
                            isinstance(v, (int, np.integer))
                            for v in (*page.dataoffsets, *page.databytecounts)):
                        raise UnreadableFileError(  # e.g. offsets stored as text
                            self.path, f"page {index} of the series has strip or tile offsets "
                            "that are not numbers")
                self._pages[index] = page
            return self._pages[index]

    def _segment_index(self, sample_plane: int, d: int, row: int, col: int) -> int:
        nd, ny, nx = self._grid
        return ((sample_plane * nd + d) * ny + row) * nx + col

    def _plan(self, region: Region, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> list:
        """Group the planes of a region by page and list the reads they need."""
        by_page: dict[int, list[_Target]] = defaultdict(list)
        for iz, ic, it, z, c, t in region.planes():
            page, depth, sample = self._map.locate(z, c, t)
            by_page[page].append(_Target(depth, sample, (iz, ic, it)))
        tasks: list[Callable[[], None]] = []
        segments: list[_Segment] = []
        for index, targets in by_page.items():
            page = self._page(index)
            if page is None:  # checked at open; a zero-filled plane would be a wrong output
                raise UnreadableFileError(self.path, f"page {index} of the series is not in "
                                          "the file")
            if self._whole_page:
                tasks.append(lambda p=page, tg=targets: self._from_whole(p, tg, y0, y1, x0, x1, out))
            elif self._raw:
                tasks.extend(self._raw_tasks(page, targets, y0, y1, x0, x1, out))
            else:
                segments.extend(self._segments(page, targets, y0, y1, x0, x1))
        if segments:
            segments.sort(key=lambda s: (s.fd, s.offset))
            per = max(1, math.ceil(len(segments) / (4 * self.max_workers)))
            for i in range(0, len(segments), per):
                chunk = segments[i:i + per]
                tasks.append(lambda ch=chunk: self._decode_chunk(ch, y0, y1, x0, x1, out))
        return tasks

    @staticmethod
    def _run(tasks: list, pool: ThreadPoolExecutor | None) -> None:
        if pool is None or len(tasks) <= 1:
            for task in tasks:
                task()
            return
        futures = [pool.submit(task) for task in tasks]
        error = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # wait for every task, then raise the first error
                error = error or exc
        if error is not None:
            raise error

    def _segments(self, page, targets: list[_Target], y0, y1, x0, x1) -> list[_Segment]:
        sd, sl, sw = self._seg_shape
        offsets, counts = page.dataoffsets, page.databytecounts
        fd = self._fd(page)
        groups: dict[tuple[int, int], list[_Target]] = defaultdict(list)
        for tg in targets:
            plane = tg.sample if self._sep > 1 else 0
            groups[(plane, tg.depth // sd)].append(tg)
        found = []
        for (plane, dseg), tgs in groups.items():
            for row in range(y0 // sl, (y1 - 1) // sl + 1):
                for col in range(x0 // sw, (x1 - 1) // sw + 1):
                    index = self._segment_index(plane, dseg, row, col)
                    if index >= min(len(offsets), len(counts)):  # a page's own tags disagree
                        raise UnreadableFileError(
                            self.path, f"page {page.index} lacks segment {index} "
                            f"(has {len(offsets)} offsets, {len(counts)} byte counts)")
                    found.append(_Segment(fd, int(offsets[index]), int(counts[index]), index,
                                          page, row * sl, col * sw, dseg * sd, tgs))
        return found

    def _decode_chunk(self, chunk: list[_Segment], y0, y1, x0, x1, out: np.ndarray) -> None:
        """Read a run of segments (adjacent ones in one pread), decode and place them."""
        i = 0
        while i < len(chunk):
            j, end = i + 1, chunk[i].offset + chunk[i].nbytes
            while (j < len(chunk) and chunk[j].fd == chunk[i].fd
                   and 0 <= chunk[j].offset - end <= _COALESCE_GAP and chunk[j].nbytes):
                end = max(end, chunk[j].offset + chunk[j].nbytes)
                j += 1
            start = chunk[i].offset
            buf = memoryview(_pread(self.path, chunk[i].fd, end - start, start, "segment data"))
            for seg in chunk[i:j]:
                if seg.nbytes == 0 or seg.offset == 0:
                    data = None  # sparse segment: tifffile's convention, filled with nodata
                else:
                    data = buf[seg.offset - start:seg.offset - start + seg.nbytes]
                self._place(seg, self._decode_segment(seg, data), y0, y1, x0, x1, out)
            i = j

    def _decode_segment(self, seg: _Segment, data) -> np.ndarray | None:
        """One segment as ``(depth, length, width, samples)``; errors name the file."""
        if data is None:
            return None
        kwargs = {}
        if self._jpeg:
            kwargs["jpegtables"] = getattr(seg.page, "jpegtables", None) or self._kf.jpegtables
            kwargs["jpegheader"] = self._kf.jpegheader
        try:
            array = self._decode(data, seg.index, **kwargs)[0]
        except Exception as exc:
            what = "tile" if self._tiled else "strip"
            if isinstance(exc, MemoryError):  # its message is empty: say what did not fit
                sd, sl, sw = self._seg_shape
                raise UnreadableFileError(
                    self.path, f"{what} {seg.index} of page {seg.page.index} ({sw} x {sl} "
                    "pixels) is too large to decode in the memory available") from exc
            raise UnreadableFileError(
                self.path, f"corrupt {what} {seg.index} of page {seg.page.index}: "
                f"{type(exc).__name__}: {exc}") from exc
        if array is None or array.ndim != 4:
            raise UnreadableFileError(self.path, f"segment {seg.index} decoded to nothing")
        return array

    def _place(self, seg: _Segment, array, y0, y1, x0, x1, out: np.ndarray) -> None:
        sd, sl, sw = self._seg_shape
        if array is not None:
            sl, sw = array.shape[1], array.shape[2]
        ya, yb = max(y0, seg.y), min(y1, seg.y + sl)
        xa, xb = max(x0, seg.x), min(x1, seg.x + sw)
        if ya >= yb or xa >= xb:
            return
        for tg in seg.targets:
            dst = out[ya - y0:yb - y0, xa - x0:xb - x0, tg.plane[0], tg.plane[1], tg.plane[2]]
            if array is None:
                dst[...] = self._kf.nodata
                continue
            s = tg.sample if self._contig > 1 else 0
            try:
                dst[...] = array[tg.depth - seg.d, ya - seg.y:yb - seg.y, xa - seg.x:xb - seg.x,
                                 s]
            except (IndexError, ValueError) as exc:  # the page's tags differ from its series'
                raise UnreadableFileError(
                    self.path, f"segment {seg.index} of page {seg.page.index} decoded to shape "
                    f"{array.shape}, not what the page's tags describe") from exc

    # -- uncompressed strips: read just the rows (and columns) asked for ------------------------

    def _raw_tasks(self, page, targets: list[_Target], y0, y1, x0, x1, out) -> list:
        width = self._kf.imagewidth
        item = self._raw_dtype.itemsize * self._contig
        rowbytes = width * item
        narrow = (x1 - x0) * 4 < width
        fd = self._fd(page)
        _, sl, _ = self._seg_shape
        offsets, counts = page.dataoffsets, page.databytecounts
        tasks = []
        rows_per_task = max(64, math.ceil((y1 - y0) / (2 * self.max_workers)))
        for tg in targets:
            plane = tg.sample if self._sep > 1 else 0
            for r0 in range(y0, y1, rows_per_task):
                r1 = min(y1, r0 + rows_per_task)
                tasks.append(lambda tg=tg, r0=r0, r1=r1, plane=plane: self._checked(
                    self._raw_rows, fd, offsets, counts, plane, tg, r0, r1, y0, x0, x1, sl,
                    rowbytes, item, narrow, out))
        return tasks

    def _checked(self, read: Callable, *args) -> None:
        """``read(*args)``, an OS refusal (an offset no file can have) naming the file."""
        try:
            read(*args)
        except (OSError, OverflowError) as exc:
            raise UnreadableFileError(self.path, f"cannot read pixel data: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from exc

    def _raw_runs(self, offsets, counts, plane, depth, r0, r1, sl, rowbytes) -> list:
        """``(first row, rows, file offset)`` of the byte runs that hold rows ``r0:r1``: one
        per strip, strips stored back to back merged into one."""
        runs: list[list[int]] = []
        for k in range(r0 // sl, (r1 - 1) // sl + 1):
            strip = self._segment_index(plane, depth, k, 0)
            if strip >= min(len(offsets), len(counts)):
                raise UnreadableFileError(self.path, f"page lacks strip {strip}")
            a, b = max(r0, k * sl), min(r1, (k + 1) * sl)
            within = (a - k * sl) * rowbytes
            if within + (b - a) * rowbytes > counts[strip]:
                raise UnreadableFileError(
                    self.path, f"strip {strip} holds {counts[strip]} bytes, row {b - 1} needs "
                    f"{within + (b - a) * rowbytes}")
            start = int(offsets[strip]) + within
            if runs and runs[-1][2] + runs[-1][1] * rowbytes == start:
                runs[-1][1] += b - a
            else:
                runs.append([a, b - a, start])
        return runs

    def _raw_rows(self, fd, offsets, counts, plane, tg, r0, r1, y0, x0, x1, sl, rowbytes, item,
                  narrow, out) -> None:
        runs = self._raw_runs(offsets, counts, plane, tg.depth, r0, r1, sl, rowbytes)
        n = r1 - r0
        dst = out[r0 - y0:r1 - y0, :, tg.plane[0], tg.plane[1], tg.plane[2]]
        if (not narrow and x0 == 0 and x1 * item == rowbytes and self._contig == 1
                and dst.flags.c_contiguous and dst.dtype == self._raw_dtype):
            view = memoryview(dst.reshape(-1).view(np.uint8))  # straight into the output
            for a, rows, start in runs:
                got = os.preadv(fd, [view[(a - r0) * rowbytes:(a - r0 + rows) * rowbytes]], start)
                if got != rows * rowbytes:
                    _short(self.path, start, rows * rowbytes, got)
            return
        starts = [start + i * rowbytes for _, rows, start in runs for i in range(rows)]
        if narrow:
            span = (x1 - x0) * item
            buf = bytearray(n * span)
            view = memoryview(buf)
            for i, start in enumerate(starts):
                got = os.preadv(fd, [view[i * span:(i + 1) * span]], start + x0 * item)
                if got != span:
                    _short(self.path, start + x0 * item, span, got)
            rows = np.frombuffer(buf, self._raw_dtype).reshape(n, x1 - x0, self._contig)
        else:
            buf = bytearray(n * rowbytes)
            view = memoryview(buf)
            i = 0
            while i < n:  # consecutive rows stored back to back: one read
                j = i + 1
                while j < n and starts[j] == starts[j - 1] + rowbytes:
                    j += 1
                got = os.preadv(fd, [view[i * rowbytes:j * rowbytes]], starts[i])
                if got != (j - i) * rowbytes:
                    _short(self.path, starts[i], (j - i) * rowbytes, got)
                i = j
            rows = np.frombuffer(buf, self._raw_dtype).reshape(n, -1, self._contig)[:, x0:x1]
        s = tg.sample if self._contig > 1 else 0
        out[r0 - y0:r1 - y0, :, tg.plane[0], tg.plane[1], tg.plane[2]] = rows[:, :, s]

    # -- fallback ---------------------------------------------------------------------------------

    def _from_whole(self, page, targets, y0, y1, x0, x1, out) -> None:
        """Decode the whole page (only for layouts that cannot be read piecewise; see above)."""
        with self._lock:
            if self._whole is not None and self._whole[0] is page:
                data = self._whole[1]
            else:
                try:
                    data = page.asarray(squeeze=False, maxworkers=1, lock=self._lock)
                except Exception as exc:
                    raise UnreadableFileError(
                        self.path, f"page {page.index} cannot be decoded: {exc}") from exc
                if self._transform is not None:
                    data = self._transform(data)
                data = data.reshape(self._kf.shaped)
                self._whole = (page, data)
        for tg in targets:
            sep = tg.sample if self._sep > 1 else 0
            s = tg.sample if self._contig > 1 else 0
            out[:, :, tg.plane[0], tg.plane[1], tg.plane[2]] = data[sep, tg.depth, y0:y1, x0:x1, s]


def ifd_chain_defect(path: Path) -> tuple[bool, str | None]:
    """Walk the chain of IFDs: ``(loops, what is wrong)``, ``(False, None)`` when it is sound.

    A chain that loops back on itself is walked by tifffile page by page for ever (its loop
    check runs only when it indexes the whole chain at once, and only at the 100th IFD),
    growing its page list until memory runs out. The walk costs two small reads per IFD.
    """
    with open(path, "rb") as fh:
        head = fh.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            return False, None
        version = struct.unpack(order + "H", head[2:4])[0]
        if version == 42:
            count, entry, pointer = "H", 12, "I"
            offset = struct.unpack(order + "I", head[4:8])[0]
        elif version == 43 and len(head) == 16:
            count, entry, pointer = "Q", 20, "Q"
            offset = struct.unpack(order + "Q", head[8:16])[0]
        else:
            return False, None
        size = os.fstat(fh.fileno()).st_size
        count_size, pointer_size = struct.calcsize(count), struct.calcsize(pointer)
        seen: set[int] = set()
        while offset:
            where = f"IFD {len(seen)} at offset {offset}"
            if offset in seen:
                return True, (f"the chain of IFDs loops back to offset {offset} after "
                              f"{len(seen)} IFD(s)")
            if offset < 8 or offset + count_size > size:
                return False, f"{where} is outside the file ({size} bytes)"
            seen.add(offset)
            fh.seek(offset)
            n = struct.unpack(order + count, fh.read(count_size))[0]
            end = offset + count_size + n * entry + pointer_size
            if end > size:
                return False, (f"{where} lists {n} entries, which run past the end of the "
                               f"file ({size} bytes)")
            fh.seek(end - pointer_size)
            offset = struct.unpack(order + pointer, fh.read(pointer_size))[0]
    return False, None


def _short(path: Path, offset: int, wanted: int, got: int) -> None:
    raise UnreadableFileError(
        path, f"truncated file: {wanted} bytes wanted at offset {offset}, only {got} there")


def _pread(path: Path, fd: int, size: int, offset: int, what: str) -> bytes:
    """``os.pread`` that treats a short read as the truncation it is.

    A size past the end of the file is refused before the read: ``os.pread`` allocates the
    whole size first, and a byte count in a hostile header can say 4 GiB.
    """
    try:
        available = os.fstat(fd).st_size - offset
        if size > available:
            _short(path, offset, size, max(0, available))
        data = os.pread(fd, size, offset)
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot read {what}: {exc.strerror or exc}") from exc
    if len(data) != size:
        _short(path, offset, size, len(data))
    return data
