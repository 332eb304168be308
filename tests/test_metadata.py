"""The OME metadata model: exact values in, exact values out, valid XML, no entity tricks."""

import numpy as np
import pytest

from omeio.errors import UnsupportedPixelTypeError
from omeio.metadata import MetadataError, OmeMetadata, int_to_rgba, rgba_to_int
from omeio.pixeltypes import OME_TYPES, check_dtype

OLD = """<?xml version="1.0"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2015-01">
 <Instrument ID="Instrument:0"/>
 <Image ID="Image:0" Name="a"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16"
   SizeX="7" SizeY="5" SizeZ="2" SizeC="1" SizeT="1" PhysicalSizeX="0.25" PhysicalSizeY="0.5">
   <Channel ID="Channel:0:0" Name="rgb" SamplesPerPixel="3"/>
   <TiffData/>
   <Plane TheZ="0" TheC="0" TheT="0" PositionX="1.5"/><Plane TheZ="1" TheC="0" TheT="0"/>
 </Pixels></Image>
 <Image ID="Image:1"><Pixels ID="Pixels:1" DimensionOrder="XYZCT" Type="float" SizeX="3"
   SizeY="3" SizeZ="1" SizeC="1" SizeT="1"><Channel ID="Channel:1:0"/><TiffData/></Pixels></Image>
</OME>"""


def test_parse_upgrades_namespace_and_reads_fields():
    m = OmeMetadata.from_xml(OLD)
    assert len(m.images) == 2
    p = m.images[0].pixels
    assert (p.size_x, p.size_y, p.size_z, p.size_c, p.size_t) == (7, 5, 2, 1, 1)
    assert p.dtype == np.uint16 and m.images[1].pixels.dtype == np.float32
    assert p.physical_size_x == (0.25, "µm") and p.physical_size_z == (None, None)
    assert p.dimension_order == "XYCZT"
    assert 'xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"' in m.to_xml()


def test_expand_samples_makes_one_channel_per_sample():
    p = OmeMetadata.from_xml(OLD).images[0].pixels
    p.expand_samples()
    assert p.size_c == 3
    assert [c.samples_per_pixel for c in p.channels] == [1, 1, 1]
    assert [c.name for c in p.channels] == ["rgb"] * 3
    assert [int_to_rgba(c.color)[:3] for c in p.channels] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert len({c.id for c in p.channels}) == 3


def test_select_renumbers_planes_and_channels():
    m = OmeMetadata.from_xml(OLD).only_image(0)
    assert len(m.images) == 1 and m.images[0].id == "Image:0"
    assert m.root.find("{http://www.openmicroscopy.org/Schemas/OME/2016-06}Instrument") is not None
    p = m.images[0].pixels
    p.expand_samples()
    p.select(z=[1], c=[2], t=[0])
    assert (p.size_z, p.size_c, p.size_t) == (1, 1, 1)
    assert [c.id for c in p.channels] == ["Channel:0:0:2"]
    assert [(pl.get("TheZ"), pl.get("TheC")) for pl in p.planes] == []  # plane z=1 had c=0 only
    q = OmeMetadata.from_xml(OLD).images[0].pixels
    q.select(z=[0])
    assert [(pl.get("TheZ"), pl.get("PositionX")) for pl in q.planes] == [("0", "1.5")]


def test_new_document_is_schema_valid(ome_schema):
    m = OmeMetadata.new(10, 20, 3, 2, 4, "int16", channel_names=["DAPI", "GFP"], name="x")
    p = m.images[0].pixels
    p.set_physical_size("X", 0.325)
    p.set_physical_size("Z", 2, "mm")
    p.set_tiff_data((i, 0, 0, 0) for i in range(1))
    p.channels[1].color = rgba_to_int(0, 255, 0)
    ome_schema.validate(m.to_xml())
    again = OmeMetadata.from_xml(m.to_xml()).images[0].pixels
    assert again.physical_size_z == (2.0, "mm")
    assert [c.name for c in again.channels] == ["DAPI", "GFP"]
    assert again.channels[1].color == rgba_to_int(0, 255, 0)


def test_metadata_only_is_schema_valid(ome_schema):
    m = OmeMetadata.new(4, 4, dtype="float64")
    m.images[0].pixels.set_metadata_only()
    ome_schema.validate(m.to_xml())


@pytest.mark.parametrize(
    "payload",
    [
        '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><OME>&b;</OME>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><OME>&e;</OME>',
    ],
)
def test_entities_are_refused(payload):
    with pytest.raises(MetadataError, match="DOCTYPE or ENTITY"):
        OmeMetadata.from_xml(payload)


def test_garbage_and_wrong_root():
    with pytest.raises(MetadataError, match="does not parse"):
        OmeMetadata.from_xml("<OME")
    with pytest.raises(MetadataError, match="not OME"):
        OmeMetadata.from_xml("<foo/>")


def test_colors_round_trip():
    for rgba in [(255, 0, 0, 255), (0, 0, 0, 0), (255, 255, 255, 255), (1, 2, 3, 4)]:
        assert int_to_rgba(rgba_to_int(*rgba)) == rgba
    assert rgba_to_int(255, 255, 255, 255) == -1


def test_pixel_types():
    assert len(OME_TYPES) == 8
    assert check_dtype(">u2") == np.dtype("uint16")
    for bad in ["int64", "uint64", "float16", "complex64", object, "bool"]:
        with pytest.raises(TypeError, match="supported: uint8, int8, uint16"):
            check_dtype(bad)
    with pytest.raises(UnsupportedPixelTypeError):
        check_dtype("int64")
