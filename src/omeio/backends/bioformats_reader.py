"""Bio-Formats as a reader backend, through JPype: every format Bio-Formats reads.

It is the fallback backend (it takes any regular file), so PNG, JPEG, CZI, ND2, LIF, ICS,
``.fake`` synthetic images and the rest all come through here.

- ``series`` is a Bio-Formats series with resolutions *not* flattened, and ``level`` a
  resolution of that series (0 is full size).
- RGB(A) samples are exposed as channels: ``C = effectiveSizeC * RGBChannelCount``
  (= Bio-Formats' ``getSizeC()``), and the OME metadata's channels are expanded to match.
- Indexed-color (palette) images are read as their raw indices, as Bio-Formats stores them and
  as its OME metadata describes them (one channel); the lookup table is not applied.
- ``bit`` pixels come as uint8, one byte per pixel, as Bio-Formats hands them out.
- Java readers are not thread-safe, so each open file keeps a pool of up to ``max_workers``
  Java readers; every thread borrows one for each call. Readers are wrapped in a
  ``loci.formats.Memoizer`` (memo files under omeio's cache dir) so that the pool's later
  readers, and later opens of slow-to-parse files, skip the parsing.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import java
from ..errors import UnreadableFileError, UnsupportedPixelTypeError
from ..indexing import Region
from ..jar import cache_dir
from ..metadata import OmeMetadata
from ..pixeltypes import numpy_type
from .base import ReaderBackend

#: most bytes asked of one openBytes call: Java arrays are indexed by int
MAX_CALL_BYTES = 2**31 - 64
#: characters XML 1.0 forbids, raw or as character references (``&#0;`` ...)
_XML_FORBIDDEN = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
    r"|&#(?:0*(?:[0-8]|1[124-9]|2[0-9]|3[01])|[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]));"
)
_ANCILLARY_NAME = re.compile(r"^\s*(label|macro|thumbnail)(\s+image)?\s*$", re.IGNORECASE)


def _memo_dir() -> Path | None:
    """Where Memoizer keeps its memo files, or None when the cache dir cannot be written."""
    folder = cache_dir() / "bfmemo"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


class _StoreBridge:
    """A reader's OME-XML metadata store, created and read inside Java through method handles.

    JPype builds a Python class for every Java class one of whose objects reaches Python, and
    for ``OMEXMLMetadataImpl`` (thousands of methods) that took 0.25 s in each process, a
    tenth of converting a small collection; through handles the store never leaves Java.
    One per process (:func:`_bridge`).
    """

    def __init__(self):
        from jpype import JClass

        handles = JClass("java.lang.invoke.MethodHandles")
        kind = JClass("java.lang.invoke.MethodType").methodType
        look = handles.publicLookup()
        reader = JClass("loci.formats.IFormatReader").class_
        store = JClass("loci.formats.meta.MetadataStore").class_
        retrieve = JClass("loci.formats.meta.MetadataRetrieve").class_
        omexml = JClass("loci.formats.ome.OMEXMLMetadata").class_
        text = JClass("java.lang.String").class_
        service_type = JClass("loci.formats.services.OMEXMLService")
        service = JClass("loci.common.services.ServiceFactory")().getInstance(service_type)
        create = look.findVirtual(service_type.class_, "createOMEXMLMetadata",
                                  kind(omexml)).bindTo(service).asType(kind(store))
        set_store = look.findVirtual(reader, "setMetadataStore",
                                     kind(JClass("java.lang.Void").TYPE, store))
        get_store = look.findVirtual(reader, "getMetadataStore", kind(store))
        get_xml = look.findVirtual(service_type.class_, "getOMEXML",
                                   kind(text, retrieve)).bindTo(service)
        dump = look.findVirtual(omexml, "dumpXML", kind(text))
        #: reader -> void: a fresh store set on the reader (before setId)
        self._attach = handles.collectArguments(set_store, 1, create)
        #: reader -> String: the service's OME-XML of the reader's store (null if unparsable)
        self._xml = handles.filterArguments(get_xml, 0, get_store.asType(kind(retrieve, reader)))
        #: reader -> String: the store's raw dump
        self._dump = handles.filterArguments(dump, 0, get_store.asType(kind(omexml, reader)))

    def attach(self, reader) -> None:
        self._attach.invokeWithArguments(reader)

    def omexml(self, reader) -> str:
        """The store's OME-XML, even when a header string holds control characters.

        ``getOMEXML`` returns null when its own re-parse fails, as it does for the NUL padding
        of NIfTI/ECAT header strings; the raw dump is used then, without the characters (raw
        or as references) that XML 1.0 forbids, as bfconvert's OME-TIFF writer drops them too.
        """
        xml = self._xml.invokeWithArguments(reader)
        if xml is not None:
            return str(xml)
        return _XML_FORBIDDEN.sub("", str(self._dump.invokeWithArguments(reader)))


_bridges: dict[int, _StoreBridge] = {}
_bridge_lock = threading.Lock()


def _bridge() -> _StoreBridge:
    """This process's :class:`_StoreBridge` (a fork has no JVM, hence the PID key)."""
    with _bridge_lock:
        bridge = _bridges.get(os.getpid())
        if bridge is None:
            bridge = _bridges[os.getpid()] = _StoreBridge()
        return bridge


def _reason(exc: BaseException, path: Path) -> str:
    """A one-line reason from a Java exception (its class and message) or any other."""
    get_class = getattr(exc, "getClass", None)
    if get_class is not None:
        kind = str(get_class().getSimpleName())
        message = exc.getMessage()
        message = "" if message is None else str(message)
    else:
        kind, message = type(exc).__name__, str(exc)
    message = (message.strip().splitlines() or [""])[0]
    message = message.replace(os.path.abspath(path), path.name)[:300]
    reason = f"Bio-Formats: {kind}: {message}" if message else f"Bio-Formats: {kind}"
    if kind == "OutOfMemoryError":
        reason += " (give Java more memory with OMEIO_JAVA_HEAP, e.g. OMEIO_JAVA_HEAP=8g)"
    return reason


class BioformatsReader(ReaderBackend):
    """One file opened with Bio-Formats, at one series and resolution level."""

    name = "bioformats"

    def __init__(self, path: Path, series: int = 0, level: int = 0, max_workers: int | None = None):
        super().__init__(path, series, level, max_workers)
        java.start()
        import jpype

        self._jexception = jpype.JException
        self._cond = threading.Condition()
        self._idle: list = []
        self._created = 0
        self._closed = False
        self._kinds: list[str] = []
        with self._java_errors():
            bridge = _bridge()
            first = self._new_reader(bridge.attach)
            try:
                self._describe(first)
                xml = bridge.omexml(first)
            except BaseException:
                first.close()
                raise
        self._created = 1
        self._idle.append(first)
        try:
            self.metadata = self._metadata(xml)
        except Exception as exc:
            self.close()
            raise UnreadableFileError(self.path, f"Bio-Formats gave unusable OME-XML: {exc}") from exc

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def can_read(cls, path: Path) -> bool:
        """Any regular file: Bio-Formats is the backend of last resort."""
        return Path(path).is_file()

    @contextmanager
    def _java_errors(self) -> Iterator[None]:
        """Turn any Java exception into UnreadableFileError naming the file."""
        try:
            yield
        except self._jexception as exc:
            raise UnreadableFileError(self.path, _reason(exc, self.path)) from exc

    def _new_reader(self, attach=None):
        """A Java reader with setId done; positioned at our series and level unless describing
        (``attach(reader)`` then gives it a metadata store first)."""
        from jpype import JClass

        reader = JClass("loci.formats.ImageReader")()
        memo = _memo_dir()
        if memo is not None:
            memoizer = JClass("loci.formats.Memoizer")
            reader = memoizer(reader, memoizer.DEFAULT_MINIMUM_ELAPSED, JClass("java.io.File")(str(memo)))
        reader.setFlattenedResolutions(False)
        if attach is not None:
            attach(reader)
        try:
            reader.setId(os.path.abspath(self.path))
            if attach is None:
                reader.setSeries(self.series)
                reader.setResolution(self.level)
        except BaseException:
            try:
                reader.close()
            except Exception:
                pass
            raise
        return reader

    def _describe(self, reader) -> None:
        """Series, levels, shape and pixel type from the first reader; leaves it positioned."""
        from jpype import JClass

        count = int(reader.getSeriesCount())
        if not 0 <= self.series < count:
            raise IndexError(f"series {self.series} out of range: {self.path} has {count} series")
        self.series_count = count
        type_name = JClass("loci.formats.FormatTools").getPixelTypeString
        self._cores = []
        for s in range(count):
            reader.setSeries(s)
            self._kinds.append("thumbnail" if reader.isThumbnailSeries() else "image")
            self._cores.append((int(reader.getSizeX()), int(reader.getSizeY()), int(reader.getSizeZ()),
                                int(reader.getSizeC()), int(reader.getSizeT()),
                                str(type_name(reader.getPixelType()))))
        reader.setSeries(self.series)
        self.level_count = int(reader.getResolutionCount())
        if not 0 <= self.level < self.level_count:
            raise IndexError(
                f"level {self.level} out of range: series {self.series} of {self.path} has "
                f"{self.level_count} resolution level(s)"
            )
        reader.setResolution(self.level)
        pixel_type = self._cores[self.series][5]
        try:
            self.dtype = numpy_type(pixel_type)
        except UnsupportedPixelTypeError as exc:
            raise UnreadableFileError(self.path, f"unsupported pixel type {pixel_type}") from exc
        self._rgb = int(reader.getRGBChannelCount())
        self._interleaved = bool(reader.isInterleaved())
        self._file_dtype = self.dtype.newbyteorder("<" if reader.isLittleEndian() else ">")
        self.shape = (int(reader.getSizeY()), int(reader.getSizeX()), int(reader.getSizeZ()),
                      int(reader.getSizeC()), int(reader.getSizeT()))

    def _metadata(self, xml: str) -> OmeMetadata:
        """The file's OME document, RGB samples as channels, sizes agreeing with the pixels."""
        meta = OmeMetadata.from_xml(xml)
        for s, image in enumerate(meta.images[: self.series_count]):
            pixels = image.pixels
            pixels.expand_samples()
            size_x, size_y, size_z, size_c, size_t, pixel_type = self._cores[s]
            pixels.size_x, pixels.size_y, pixels.size_z, pixels.size_t = size_x, size_y, size_z, size_t
            if len(pixels.channels) != size_c or pixels.size_c != size_c:
                pixels.set_channel_count(size_c)
            pixels.element.set("Type", pixel_type)
            if _ANCILLARY_NAME.match(image.name or "") and self._kinds[s] == "image":
                self._kinds[s] = _ANCILLARY_NAME.match(image.name).group(1).lower()
        return meta

    def series_kind(self, series: int) -> str:
        if not 0 <= series < self.series_count:
            raise IndexError(f"series {series} out of range: {self.path} has {self.series_count} series")
        return self._kinds[series]

    # -- the reader pool -------------------------------------------------------------------------

    @contextmanager
    def _borrow(self) -> Iterator:
        """A Java reader for this thread alone; a new one while the pool has room, else wait."""
        java.check_process()
        with self._cond:
            while True:
                if self._closed:
                    raise ValueError(f"{self.path}: the reader is closed")
                if self._idle:
                    reader = self._idle.pop()
                    break
                if self._created < self.max_workers:
                    self._created += 1
                    reader = None
                    break
                self._cond.wait()
        if reader is None:
            try:
                with self._java_errors():
                    reader = self._new_reader()
            except BaseException:
                with self._cond:
                    self._created -= 1
                    self._cond.notify()
                raise
        try:
            yield reader
        finally:
            with self._cond:
                if self._closed:
                    reader.close()
                else:
                    self._idle.append(reader)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        if java.jvm_started():
            for reader in idle:
                try:
                    reader.close()
                except Exception:
                    pass

    # -- pixels ----------------------------------------------------------------------------------

    def _open_bytes(self, reader, no: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """All samples of plane ``no`` in the box, as ``(samples, rows, cols)`` in file byte order.

        Boxes over ``MAX_CALL_BYTES`` are read in pieces: Java cannot hand out more in one array.
        """
        h, w, rgb = y1 - y0, x1 - x0, self._rgb
        pixel = self._file_dtype.itemsize * rgb
        if h * w * pixel <= MAX_CALL_BYTES:
            return self._decode(reader.openBytes(no, x0, y0, w, h), h, w)
        cols = max(1, min(w, MAX_CALL_BYTES // pixel))
        rows = max(1, min(h, MAX_CALL_BYTES // (cols * pixel)))
        out = np.empty((rgb, h, w), self._file_dtype)
        for ys in range(y0, y1, rows):
            ye = min(y1, ys + rows)
            for xs in range(x0, x1, cols):
                xe = min(x1, xs + cols)
                out[:, ys - y0:ye - y0, xs - x0:xe - x0] = self._decode(
                    reader.openBytes(no, xs, ys, xe - xs, ye - ys), ye - ys, xe - xs
                )
        return out

    def _decode(self, jbytes, h: int, w: int) -> np.ndarray:
        """Java byte[] -> ``(samples, h, w)`` without touching pixels one by one in Python."""
        flat = np.frombuffer(memoryview(jbytes), self._file_dtype)
        if self._interleaved:
            return flat.reshape(h, w, self._rgb).transpose(2, 0, 1)
        return flat.reshape(self._rgb, h, w)

    def read_plane(self, z: int, c: int, t: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        out = np.empty((y1 - y0, x1 - x0), self.dtype)
        if out.size:
            channel, sample = divmod(c, self._rgb)
            with self._borrow() as reader, self._java_errors():
                no = int(reader.getIndex(z, channel, t))
                out[...] = self._open_bytes(reader, no, y0, y1, x0, x1)[sample]
        return out

    def read_region(self, region: Region, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """Read each Bio-Formats plane once, even when several of its RGB samples are asked for."""
        java.check_process()  # before handing work to a pool, whose threads a fork leaves behind
        y0, y1 = region.y_span
        x0, x1 = region.x_span
        out = np.empty((y1 - y0, x1 - x0, len(region.z), len(region.c), len(region.t)), self.dtype)
        groups: dict[tuple[int, int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
        for iz, ic, it, z, c, t in region.planes():
            channel, sample = divmod(c, self._rgb)
            groups[(z, channel, t)].append((iz, ic, it, sample))

        def one(key: tuple[int, int, int]) -> None:
            z, channel, t = key
            with self._borrow() as reader, self._java_errors():
                data = self._open_bytes(reader, int(reader.getIndex(z, channel, t)), y0, y1, x0, x1)
            for iz, ic, it, sample in groups[key]:
                out[:, :, iz, ic, it] = data[sample]

        if out.size:
            keys = list(groups)
            if pool is None or len(keys) == 1:
                for key in keys:
                    one(key)
            else:
                for future in [pool.submit(one, key) for key in keys]:
                    future.result()
        if region.stepped:
            out = out[:: region.y.step, :: region.x.step]
        return out
