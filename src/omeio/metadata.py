"""The OME metadata model shared by every backend.

An :class:`OmeMetadata` wraps the OME-XML element tree itself, so that everything a source
file carries (instruments, annotations, acquisition settings, plane positions) survives a
conversion untouched, while the handful of fields omeio needs are typed properties with the
names bfio users know from ``ome_types`` (``images[0].pixels.size_x``, ``physical_size_x``...).

Parsing refuses DOCTYPE and entity declarations: OME-XML never needs them, and refusing them
closes entity expansion ("billion laughs") and external-entity reads for good.
"""

from __future__ import annotations

import copy
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import OmeioError
from .pixeltypes import numpy_type, ome_type

OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{OME_NS} {OME_NS}/ome.xsd"
_OLD_NS = re.compile(r"^http://www\.openmicroscopy\.org/Schemas/OME/\d{4}-\d{2}$")
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)

ET.register_namespace("", OME_NS)
ET.register_namespace("xsi", XSI_NS)

#: OME's default physical size unit
DEFAULT_UNIT = "µm"
#: colors given to expanded RGB(A) samples, as OME signed RGBA int32
_SAMPLE_COLORS = [-16776961, 16711935, 65535, -1]  # red, green, blue, white


#: samples per pixel of one channel: TIFF's own limit (a SHORT), far above any real image's
MAX_SAMPLES = 65535


class MetadataError(OmeioError, ValueError):
    """OME-XML that cannot be used: unparsable, forbidden constructs, or missing Pixels."""


def _q(tag: str) -> str:
    return f"{{{OME_NS}}}{tag}"


def rgba_to_int(r: int, g: int, b: int, a: int = 255) -> int:
    """Pack RGBA bytes into OME's signed int32 Color."""
    value = (r << 24) | (g << 16) | (b << 8) | a
    return value - (1 << 32) if value >= 1 << 31 else value


def int_to_rgba(value: int) -> tuple[int, int, int, int]:
    """Unpack OME's signed int32 Color into RGBA bytes."""
    value &= 0xFFFFFFFF
    return (value >> 24) & 255, (value >> 16) & 255, (value >> 8) & 255, value & 255


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _fmt(value: float) -> str:
    return repr(float(value))


class _Wrapper:
    """A typed view on one element; attribute access reads and writes the element itself."""

    def __init__(self, element: ET.Element):
        self.element = element

    def _get(self, name: str) -> str | None:
        return self.element.get(name)

    def _set(self, name: str, value) -> None:
        if value is None:
            self.element.attrib.pop(name, None)
        else:
            self.element.set(name, str(value))


class ChannelMeta(_Wrapper):
    """``Channel``: name, color and samples per pixel, plus any other attributes it carries."""

    @property
    def id(self) -> str | None:
        return self._get("ID")

    @property
    def name(self) -> str | None:
        return self._get("Name")

    @name.setter
    def name(self, value: str | None) -> None:
        self._set("Name", value)

    @property
    def color(self) -> int | None:
        value = self._get("Color")
        return None if value is None else int(value)

    @color.setter
    def color(self, value: int | None) -> None:
        self._set("Color", value)

    @property
    def samples_per_pixel(self) -> int:
        return int(self._get("SamplesPerPixel") or 1)

    @samples_per_pixel.setter
    def samples_per_pixel(self, value: int) -> None:
        self._set("SamplesPerPixel", int(value))


@dataclass(frozen=True)
class PlaneIndex:
    z: int
    c: int
    t: int


class PixelsMeta(_Wrapper):
    """``Pixels``: sizes, type, dimension order, physical sizes, channels and planes."""

    def _size(self, axis: str) -> int:
        return int(self._get(f"Size{axis}") or 1)

    size_x = property(lambda self: self._size("X"), lambda self, v: self._set("SizeX", int(v)))
    size_y = property(lambda self: self._size("Y"), lambda self, v: self._set("SizeY", int(v)))
    size_z = property(lambda self: self._size("Z"), lambda self, v: self._set("SizeZ", int(v)))
    size_c = property(lambda self: self._size("C"), lambda self, v: self._set("SizeC", int(v)))
    size_t = property(lambda self: self._size("T"), lambda self, v: self._set("SizeT", int(v)))

    @property
    def id(self) -> str | None:
        return self._get("ID")

    @property
    def type(self) -> str:
        return self._get("Type") or "uint8"

    @property
    def dtype(self) -> np.dtype:
        return numpy_type(self.type)

    @dtype.setter
    def dtype(self, value) -> None:
        self._set("Type", ome_type(value))
        self._set("SignificantBits", np.dtype(value).itemsize * 8)

    @property
    def dimension_order(self) -> str:
        return self._get("DimensionOrder") or "XYZCT"

    @dimension_order.setter
    def dimension_order(self, value: str) -> None:
        self._set("DimensionOrder", value)

    def physical_size(self, axis: str) -> tuple[float | None, str | None]:
        """``(value, unit)`` of axis X, Y or Z; ``(None, None)`` where the file says nothing."""
        value = _float(self._get(f"PhysicalSize{axis}"))
        if value is None:
            return None, None
        return value, self._get(f"PhysicalSize{axis}Unit") or DEFAULT_UNIT

    def set_physical_size(self, axis: str, value: float | None, unit: str | None = None) -> None:
        if value is None:
            self._set(f"PhysicalSize{axis}", None)
            self._set(f"PhysicalSize{axis}Unit", None)
            return
        if not value > 0:
            raise ValueError(f"PhysicalSize{axis} must be positive, got {value}")
        self._set(f"PhysicalSize{axis}", _fmt(value))
        self._set(f"PhysicalSize{axis}Unit", unit or DEFAULT_UNIT)

    physical_size_x = property(lambda self: self.physical_size("X"))
    physical_size_y = property(lambda self: self.physical_size("Y"))
    physical_size_z = property(lambda self: self.physical_size("Z"))

    @property
    def channels(self) -> list[ChannelMeta]:
        return [ChannelMeta(e) for e in self.element.findall(_q("Channel"))]

    @property
    def planes(self) -> list[ET.Element]:
        return self.element.findall(_q("Plane"))

    def plane_of(self, z: int, c: int, t: int) -> ET.Element | None:
        for plane in self.planes:
            if (
                int(plane.get("TheZ", 0)) == z
                and int(plane.get("TheC", 0)) == c
                and int(plane.get("TheT", 0)) == t
            ):
                return plane
        return None

    # -- edits -------------------------------------------------------------------------------

    def _insert_after_channels(self, element: ET.Element) -> None:
        index = len(self.element.findall(_q("Channel")))
        self.element.insert(index, element)

    def clear_storage(self) -> None:
        """Drop TiffData, BinData and MetadataOnly: they describe the source file's storage."""
        for tag in ("TiffData", "BinData", "MetadataOnly"):
            for e in self.element.findall(_q(tag)):
                self.element.remove(e)

    def set_metadata_only(self) -> None:
        """Storage element for formats that keep pixels outside the XML (OME-Zarr)."""
        self.clear_storage()
        self._insert_after_channels(ET.Element(_q("MetadataOnly")))

    def set_tiff_data(self, planes: Iterable[tuple[int, int, int, int]]) -> None:
        """One ``TiffData`` per plane: ``(ifd, z, c, t)``."""
        self.clear_storage()
        index = len(self.element.findall(_q("Channel")))
        for ifd, z, c, t in planes:
            e = ET.Element(
                _q("TiffData"),
                {"IFD": str(ifd), "FirstZ": str(z), "FirstC": str(c), "FirstT": str(t),
                 "PlaneCount": "1"},
            )
            self.element.insert(index, e)
            index += 1

    def set_channel_count(self, count: int) -> None:
        """Keep the first ``count`` channels, adding plain ones as needed."""
        channels = self.element.findall(_q("Channel"))
        for e in channels[count:]:
            self.element.remove(e)
        image_id = self.id.split(":", 1)[1] if self.id and ":" in self.id else "0"
        for i in range(len(channels), count):
            e = ET.Element(_q("Channel"), {"ID": f"Channel:{image_id}:{i}", "SamplesPerPixel": "1"})
            self.element.insert(i, e)
        self.size_c = count

    def expand_samples(self) -> None:
        """Expose every sample of an RGB(A) channel as a channel of its own (bfio's convention)."""
        channels = self.element.findall(_q("Channel"))
        if all(int(e.get("SamplesPerPixel", 1)) == 1 for e in channels):
            return
        for e in channels:  # a hostile document would have us copy a channel 10^14 times
            if not 1 <= int(e.get("SamplesPerPixel", 1)) <= MAX_SAMPLES:
                raise MetadataError(f"Channel {e.get('ID')} has SamplesPerPixel "
                                    f"{e.get('SamplesPerPixel')} (at most {MAX_SAMPLES})")
        for e in channels:
            self.element.remove(e)
        new: list[ET.Element] = []
        for e in channels:
            spp = int(e.get("SamplesPerPixel", 1))
            for k in range(spp):
                n = copy.deepcopy(e)
                n.set("SamplesPerPixel", "1")
                if spp > 1:
                    n.set("ID", f"{e.get('ID', 'Channel:0:0')}:{k}")
                    if e.get("Color") is None and spp <= 4:
                        n.set("Color", str(_SAMPLE_COLORS[k]))
                new.append(n)
        for i, n in enumerate(new):
            self.element.insert(i, n)
        self.element.set("Interleaved", "false")
        self.size_c = len(new)

    def select(
        self,
        z: Sequence[int] | None = None,
        c: Sequence[int] | None = None,
        t: Sequence[int] | None = None,
    ) -> None:
        """Keep only the given planes: sizes, channels and ``Plane`` entries follow, renumbered."""
        zs = list(range(self.size_z)) if z is None else list(z)
        cs = list(range(self.size_c)) if c is None else list(c)
        ts = list(range(self.size_t)) if t is None else list(t)
        channels = self.element.findall(_q("Channel"))
        if len(channels) == self.size_c:
            keep = [channels[i] for i in cs]
            for e in channels:
                self.element.remove(e)
            for i, e in enumerate(keep):
                self.element.insert(i, copy.deepcopy(e))
        else:
            self.set_channel_count(self.size_c)
            self.select(zs, cs, ts)
            return
        zmap = {v: i for i, v in enumerate(zs)}
        cmap = {v: i for i, v in enumerate(cs)}
        tmap = {v: i for i, v in enumerate(ts)}
        for plane in self.planes:
            pz, pc, pt = (int(plane.get(k, 0)) for k in ("TheZ", "TheC", "TheT"))
            if pz in zmap and pc in cmap and pt in tmap:
                plane.set("TheZ", str(zmap[pz]))
                plane.set("TheC", str(cmap[pc]))
                plane.set("TheT", str(tmap[pt]))
            else:
                self.element.remove(plane)
        self.size_z, self.size_c, self.size_t = len(zs), len(cs), len(ts)

    def reset_planes(self) -> None:
        """Drop ``Plane`` entries that no longer fit the sizes."""
        for plane in self.planes:
            if (
                int(plane.get("TheZ", 0)) >= self.size_z
                or int(plane.get("TheC", 0)) >= self.size_c
                or int(plane.get("TheT", 0)) >= self.size_t
            ):
                self.element.remove(plane)


class ImageMeta(_Wrapper):
    """``Image``: a series of the file."""

    @property
    def id(self) -> str | None:
        return self._get("ID")

    @property
    def name(self) -> str | None:
        return self._get("Name")

    @name.setter
    def name(self, value: str | None) -> None:
        self._set("Name", value)

    @property
    def pixels(self) -> PixelsMeta:
        e = self.element.find(_q("Pixels"))
        if e is None:
            raise MetadataError(f"Image {self.id} has no Pixels element")
        return PixelsMeta(e)


class OmeMetadata:
    """A whole OME document: ``images[i]`` is series ``i``."""

    def __init__(self, root: ET.Element):
        if root.tag != _q("OME"):
            raise MetadataError(f"root element is {root.tag!r}, not OME")
        self.root = root

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_xml(cls, text: str | bytes) -> OmeMetadata:
        """Parse OME-XML of any OME schema year; the result is in the 2016-06 namespace."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if _FORBIDDEN.search(data):
            raise MetadataError("OME-XML with a DOCTYPE or ENTITY declaration is refused")
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise MetadataError(f"OME-XML does not parse: {exc}") from exc
        ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
        if ns != OME_NS and _OLD_NS.match(ns):
            for e in root.iter():
                if e.tag.startswith(f"{{{ns}}}"):
                    e.tag = _q(e.tag.split("}", 1)[1])
        return cls(root)

    @classmethod
    def new(
        cls,
        size_x: int = 1,
        size_y: int = 1,
        size_z: int = 1,
        size_c: int = 1,
        size_t: int = 1,
        dtype="uint8",
        channel_names: Sequence[str | None] | None = None,
        name: str | None = None,
    ) -> OmeMetadata:
        """A minimal valid document with one image."""
        root = ET.Element(_q("OME"))
        root.set("UUID", f"urn:uuid:{uuid.uuid4()}")
        image = ET.SubElement(root, _q("Image"), {"ID": "Image:0"})
        if name:
            image.set("Name", name)
        ET.SubElement(
            image,
            _q("Pixels"),
            {"ID": "Pixels:0", "DimensionOrder": "XYZCT", "BigEndian": "false",
             "Interleaved": "false"},
        )
        meta = cls(root)
        p = meta.images[0].pixels
        p.size_x, p.size_y, p.size_z, p.size_t = size_x, size_y, size_z, size_t
        p.dtype = dtype
        p.set_channel_count(size_c)
        if channel_names is not None:
            for ch, cname in zip(p.channels, channel_names):
                ch.name = cname
        return meta

    def copy(self) -> OmeMetadata:
        return OmeMetadata(copy.deepcopy(self.root))

    # -- access ------------------------------------------------------------------------------

    @property
    def images(self) -> list[ImageMeta]:
        return [ImageMeta(e) for e in self.root.findall(_q("Image"))]

    def image(self, series: int = 0) -> ImageMeta:
        images = self.images
        if not 0 <= series < len(images):
            raise IndexError(f"series {series} out of range: the file has {len(images)} image(s)")
        return images[series]

    def only_image(self, series: int) -> OmeMetadata:
        """A copy holding just image ``series`` (as its only Image) and the document-level rest.

        Plates and screens are dropped: they point at images that are no longer there.
        """
        out = self.copy()
        images = out.root.findall(_q("Image"))
        keep = images[series]
        for e in images:
            if e is not keep:
                out.root.remove(e)
        for tag in ("Plate", "Screen"):
            for e in out.root.findall(_q(tag)):
                out.root.remove(e)
        return out

    def to_xml(self) -> str:
        """Serialise as OME-XML 2016-06 with its schema location."""
        self.root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
        if "UUID" not in self.root.attrib:
            self.root.set("UUID", f"urn:uuid:{uuid.uuid4()}")
        body = ET.tostring(self.root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body

    def __repr__(self) -> str:
        return f"<OmeMetadata {len(self.images)} image(s)>"
