"""PNG and JPEG decoded natively by imagecodecs (libpng, libjpeg-turbo): no JVM for them.

Bio-Formats stays the reference: this backend only takes the variants it decodes to the very
pixels Bio-Formats hands out, and declines the others (with an UnreadableFileError, so that the
registry moves on to Bio-Formats):

- PNG: 8 or 16-bit gray, gray+alpha, RGB and RGBA, interlaced or not. Declined: palette images
  (Bio-Formats gives the raw indices, libpng the colours), a ``tRNS`` chunk (libpng adds an
  alpha channel, Bio-Formats does not), bit depths below 8 and animated PNG (``acTL``).
- JPEG: 8-bit Huffman-coded (baseline, extended, progressive) gray or YCbCr. Declined: CMYK and
  Adobe-transformed files, components named R, G, B, 12-bit, lossless and arithmetic coding.

Neither format is tiled, so the first read decodes the whole image once and keeps it for the
reads that follow (the band-by-band reads of a conversion). If that decode fails, the pixels
come from Bio-Formats instead, when it agrees on the image's shape and type. The metadata is
what Bio-Formats reports for these files: sizes, pixel type and samples as channels, and no
physical size (Bio-Formats reads neither PNG ``pHYs`` nor JPEG density).
"""

from __future__ import annotations

import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagecodecs
import numpy as np

from ..errors import UnreadableFileError
from ..indexing import Region
from ..metadata import OmeMetadata
from .base import ReaderBackend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
#: PNG colour type -> samples per pixel (palette, type 3, is declined)
_PNG_SAMPLES = {0: 1, 2: 3, 4: 2, 6: 4}
#: JPEG frame markers taken: baseline, extended and progressive Huffman
_JPEG_SOF_OK = {0xC0, 0xC1, 0xC2}
_JPEG_SOF_ALL = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: most header bytes scanned for a JPEG frame header (EXIF and ICC segments come first)
_JPEG_SCAN = 1 << 22


class _Decline(Exception):
    """A file of the format that Bio-Formats, not this backend, must read."""


def _png_header(path: Path) -> tuple[int, int, int, np.dtype]:
    """``(width, height, samples, dtype)`` from the chunks before the image data."""
    with open(path, "rb") as fh:
        if fh.read(8) != PNG_MAGIC:
            raise _Decline("not a PNG")
        ihdr = None
        while True:
            head = fh.read(8)
            if len(head) < 8:
                raise _Decline("PNG ends before its image data")
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IHDR":
                data = fh.read(length)
                if length < 13 or len(data) < 13:
                    raise _Decline("PNG header chunk too short")
                ihdr = struct.unpack(">IIBBBBB", data[:13])
                fh.seek(4, 1)
                continue
            if kind in (b"IDAT", b"IEND"):
                break
            if kind == b"PLTE" and ihdr is not None and ihdr[3] == 3:
                raise _Decline("indexed-colour PNG (Bio-Formats reads the raw indices)")
            if kind == b"tRNS":
                raise _Decline("PNG with a transparency chunk (Bio-Formats ignores it)")
            if kind == b"acTL":
                raise _Decline("animated PNG")
            fh.seek(length + 4, 1)
    if ihdr is None:
        raise _Decline("PNG without a header chunk")
    width, height, depth, ctype, _, _, _ = ihdr
    if ctype not in _PNG_SAMPLES:
        raise _Decline(f"PNG colour type {ctype}")
    if depth not in (8, 16):
        raise _Decline(f"{depth}-bit PNG")
    if width < 1 or height < 1:
        raise _Decline("PNG of size 0")
    return width, height, _PNG_SAMPLES[ctype], np.dtype("uint8" if depth == 8 else "uint16")


def _jpeg_header(path: Path) -> tuple[int, int, int, np.dtype]:
    """``(width, height, samples, dtype)`` from the segments up to the frame header."""
    with open(path, "rb") as fh:
        data = fh.read(_JPEG_SCAN)
    if not data.startswith(JPEG_MAGIC):
        raise _Decline("not a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _Decline("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        body = data[pos + 4:pos + 2 + length]
        if marker == 0xEE and body.startswith(b"Adobe"):
            raise _Decline("Adobe JPEG (CMYK or untransformed RGB)")
        if marker in _JPEG_SOF_ALL:
            if marker not in _JPEG_SOF_OK:
                raise _Decline(f"JPEG coding SOF{marker - 0xC0} (lossless or arithmetic)")
            if len(body) < 6:
                raise _Decline("JPEG frame header too short")
            precision, height, width, count = struct.unpack(">BHHB", body[:6])
            ids = bytes(body[6 + 3 * k] for k in range(count) if 6 + 3 * k < len(body))
            if precision != 8:
                raise _Decline(f"{precision}-bit JPEG")
            if count not in (1, 3):
                raise _Decline(f"JPEG with {count} components")
            if count == 3 and ids == b"RGB":
                raise _Decline("JPEG of untransformed RGB components")
            if width < 1 or height < 1:
                raise _Decline("JPEG without its height in the frame header")
            return width, height, count, np.dtype("uint8")
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            break
        pos += 2 + length
    raise _Decline("no JPEG frame header found")


def _header(path: Path) -> tuple[str, tuple[int, int, int, np.dtype]]:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(PNG_MAGIC):
        return "png", _png_header(path)
    if head.startswith(JPEG_MAGIC):
        return "jpeg", _jpeg_header(path)
    raise _Decline("neither PNG nor JPEG")


class CodecReader(ReaderBackend):
    """One PNG or JPEG: one series, one level, ``Y, X, 1, samples, 1``."""

    name = "codecs"

    def __init__(self, path: Path, series: int = 0, level: int = 0,
                 max_workers: int | None = None):
        super().__init__(path, series, level, max_workers)
        try:
            self._format, (width, height, samples, dtype) = _header(self.path)
        except _Decline as exc:
            raise UnreadableFileError(self.path, f"{exc}: left to Bio-Formats") from None
        except OSError as exc:
            raise UnreadableFileError(self.path, f"cannot read: {exc.strerror or exc}") from exc
        if series != 0:
            raise IndexError(f"series {series} out of range: {self.path} has 1 series")
        if level != 0:
            raise IndexError(f"level {level} out of range: {self.path} has 1 resolution level")
        self.series_count = 1
        self.level_count = 1
        self.dtype = dtype
        self.shape = (height, width, 1, samples, 1)
        self.metadata = self._describe(width, height, samples, dtype)
        self._lock = threading.Lock()
        self._pixels: np.ndarray | None = None

    def _describe(self, width: int, height: int, samples: int, dtype: np.dtype) -> OmeMetadata:
        """One image named after the file, its samples as channels, as Bio-Formats has it."""
        meta = OmeMetadata.new(width, height, 1, 1, 1, dtype, name=self.path.name)
        pixels = meta.images[0].pixels
        pixels.element.set("SignificantBits", str(dtype.itemsize * 8))
        pixels.channels[0].samples_per_pixel = samples
        pixels.expand_samples()
        return meta

    @classmethod
    def can_read(cls, path: Path) -> bool:
        try:
            _header(Path(path))
        except (_Decline, OSError):
            return False
        return True

    @classmethod
    def image_size(cls, path: Path) -> tuple[int, int]:
        try:
            _, (width, height, _, _) = _header(Path(path))
        except (_Decline, OSError):
            return -1, -1
        return width, height

    def close(self) -> None:
        self._pixels = None

    # -- pixels ----------------------------------------------------------------------------

    def _decode(self) -> np.ndarray:
        """The whole image as ``(Y, X, samples)``, decoded once."""
        with self._lock:
            if self._pixels is not None:
                return self._pixels
            try:
                data = self.path.read_bytes()
                if self._format == "png":
                    image = imagecodecs.png_decode(data)
                else:
                    image = imagecodecs.jpeg8_decode(data)
                image = image.reshape(image.shape[0], image.shape[1], -1)
                if image.shape != (self.shape[0], self.shape[1], self.shape[3]) \
                        or image.dtype != self.dtype:
                    raise ValueError(f"decoded {image.shape} {image.dtype}, header says "
                                     f"{self.shape[:2] + self.shape[3:4]} {self.dtype}")
            except Exception as exc:
                image = self._from_bioformats(f"{type(exc).__name__}: {exc}")
            self._pixels = image
            return image

    def _from_bioformats(self, why: str) -> np.ndarray:
        """The pixels as Bio-Formats reads them, when imagecodecs could not decode the file."""
        from .bioformats_reader import BioformatsReader

        try:
            other = BioformatsReader(self.path, max_workers=1)
        except Exception as exc:
            raise UnreadableFileError(self.path, f"cannot decode: {why}") from exc
        try:
            if other.shape != self.shape or other.dtype != self.dtype:
                raise UnreadableFileError(self.path, f"cannot decode: {why}")
            y, x, _, c, _ = self.shape
            data = other.read_region(Region(range(y), range(x), (0,), tuple(range(c)), (0,)))
            return np.ascontiguousarray(data[:, :, 0, :, 0])
        finally:
            other.close()

    def read_plane(self, z: int, c: int, t: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self._decode()[y0:y1, x0:x1, c].copy()

    def read_region(self, region: Region, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        image = self._decode()
        y0, y1 = region.y_span
        x0, x1 = region.x_span
        out = np.empty((y1 - y0, x1 - x0, len(region.z), len(region.c), len(region.t)),
                       self.dtype)
        for iz, ic, it, _z, c, _t in region.planes():
            out[:, :, iz, ic, it] = image[y0:y1, x0:x1, c]
        if region.stepped:
            out = out[:: region.y.step, :: region.x.step]
        return out
