"""TiffWriter: files that tifffile, the OME XSD and omeio's own reader agree on, pixel for pixel."""

from __future__ import annotations

import random
import threading
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import pytest
import tifffile
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omeio import BioReader, BioWriter, OmeMetadata
from omeio.backends.tiff_writer import TiffWriter, compression_code, resolution

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def rand(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def write(path, data, **kwargs):
    """Write a 5-D (Y, X, Z, C, T) array through the facade."""
    with BioWriter(path, image=data, **kwargs) as bw:
        bw[:] = data


def planes_of(path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tf:
        return [page.asarray() for page in tf.pages]


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_pixel_type(tmp_path, dtype):
    data = rand((1030, 1100, 2, 1, 1), dtype)
    path = tmp_path / f"{dtype}.ome.tif"
    write(path, data)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome and not tf.is_bigtiff
        assert len(tf.pages) == 2
        for z, page in enumerate(tf.pages):
            assert page.dtype == np.dtype(dtype)
            assert (page.tilelength, page.tilewidth) == (1024, 1024)
            assert page.compression == 8 and page.predictor == 1
            assert page.tags["SampleFormat"].value == {"u": 1, "i": 2, "f": 3}[np.dtype(dtype).kind]
            assert page.tags["BitsPerSample"].value == np.dtype(dtype).itemsize * 8
            np.testing.assert_array_equal(page.asarray(), data[:, :, z, 0, 0])
    with BioReader(path) as br:
        assert br.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(br[:], data[:, :, :, 0, 0])


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (1025, 3, 1, 1, 1), (2049, 1030, 2, 3, 2)])
def test_odd_sizes_planes_in_xyzct_order(tmp_path, shape):
    data = rand(shape, "uint16", seed=sum(shape))
    path = tmp_path / "odd.ome.tiff"
    write(path, data)
    y, x, nz, nc, nt = shape
    pages = planes_of(path)
    assert len(pages) == nz * nc * nt
    for t in range(nt):
        for c in range(nc):
            for z in range(nz):
                np.testing.assert_array_equal(pages[z + nz * (c + nc * t)], data[:, :, z, c, t])
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            assert (page.tilelength, page.tilewidth) == (1024, 1024)
            assert page.imagelength == y and page.imagewidth == x
        # the XML lives in the first IFD only; every IFD has the tags a reader needs
        assert tf.pages[0].description.startswith("<?xml")
        for page in tf.pages[1:]:
            assert 270 not in page.tags
        for page in tf.pages:
            codes = [tag.code for tag in page.tags.values()]
            assert codes == sorted(codes)
            assert page.tags["Software"].value == "omeio"
            assert page.tags["NewSubfileType"].value == 0
            assert page.photometric == 1 and page.samplesperpixel == 1
            assert page.planarconfig == 1
    with tifffile.TiffFile(path) as tf:
        # tifffile's reading of the OME-XML (TiffData) puts every plane where it belongs
        series = tf.series[0]
        assert series.get_axes(False) in ("TCZYX", "TCZYXS")
        full = series.asarray().reshape(nt, nc, nz, y, x)
        np.testing.assert_array_equal(full, data.transpose(4, 3, 2, 0, 1))
    with BioReader(path) as br:
        assert (br.Y, br.X, br.Z, br.C, br.T) == shape
        np.testing.assert_array_equal(br.read_region(_all(shape)), data)


def _all(shape):
    from omeio.indexing import Region

    y, x, z, c, t = shape
    return Region(range(y), range(x), tuple(range(z)), tuple(range(c)), tuple(range(t)))


@pytest.mark.parametrize("name,code", [(None, 8), ("deflate", 8), ("none", 1), ("lzw", 5),
                                       ("zstd", 50000), ("ZLIB", 8)])
def test_compression(tmp_path, name, code):
    data = rand((1100, 1030, 1, 2, 1), "int16")
    path = tmp_path / "c.ome.tif"
    kwargs = {} if name is None else {"compression": name}
    write(path, data, **kwargs)
    with tifffile.TiffFile(path) as tf:
        assert all(page.compression == code for page in tf.pages)
        for c, page in enumerate(tf.pages):
            np.testing.assert_array_equal(page.asarray(), data[:, :, 0, c, 0])


def test_compression_choices(tmp_path):
    assert compression_code(None) == (8, 1)
    with pytest.raises(ValueError) as info:
        compression_code("jpeg2000")
    for choice in ("deflate", "zstd", "lzw", "none"):
        assert choice in str(info.value)
    with pytest.raises(ValueError):
        BioWriter(tmp_path / "x.ome.tif", image=np.zeros((4, 4), np.uint8),
                  compression="nope").write(
            np.zeros((4, 4), np.uint8))
    assert not list(tmp_path.iterdir())


def test_compression_level_changes_output(tmp_path):
    yy, xx = np.mgrid[:1024, :1024]
    data = ((yy * 3 + xx) // 7 % 200).astype(np.uint8)[:, :, None, None, None]
    sizes = []
    for level in (1, 9):
        path = tmp_path / f"l{level}.ome.tif"
        write(path, data, compression_level=level)
        np.testing.assert_array_equal(tifffile.imread(path), data[:, :, 0, 0, 0])
        with tifffile.TiffFile(path) as tf:
            sizes.append(tf.pages[0].databytecounts[0])
    assert sizes[1] < sizes[0]


def test_bigtiff_forced_and_auto(tmp_path):
    data = rand((300, 200, 1, 1, 2), "uint16")
    forced = tmp_path / "big.ome.tif"
    write(forced, data, bigtiff=True)
    assert forced.read_bytes()[:4] == b"II+\x00"
    with tifffile.TiffFile(forced) as tf:
        assert tf.is_bigtiff and tf.is_ome
        np.testing.assert_array_equal(tf.series[0].asarray(), data[:, :, 0, 0, :].transpose(2, 0, 1))
    auto = tmp_path / "small.ome.tif"
    write(auto, data)
    assert auto.read_bytes()[:4] == b"II*\x00"
    with tifffile.TiffFile(auto) as tf:
        assert not tf.is_bigtiff


def test_bigtiff_chosen_when_data_could_pass_4gb(tmp_path):
    # uint16, deflate: 3.1 GiB of tiles stays classic, 4.0 GiB cannot
    for side, expect in ((40960, False), (46080, True)):
        meta = OmeMetadata.new(size_x=side, size_y=side, dtype="uint16")
        path = tmp_path / f"auto{side}.ome.tif"
        writer = TiffWriter(path, meta)
        try:
            assert writer.bigtiff is expect
            assert path.read_bytes()[:4] == (b"II+\x00" if expect else b"II*\x00")
        finally:
            writer.abort()
        assert not path.exists()
    # LZW can grow incompressible data: 3.1 GiB of raw tiles already needs BigTIFF
    meta = OmeMetadata.new(size_x=40960, size_y=40960, dtype="uint16")
    writer = TiffWriter(tmp_path / "lzw.ome.tif", meta, compression="lzw")
    assert writer.bigtiff is True
    writer.abort()
    meta = OmeMetadata.new(size_x=70000, size_y=70000, dtype="uint8")
    writer = TiffWriter(tmp_path / "forced_off.ome.tif", meta, bigtiff=False)
    assert writer.bigtiff is False
    writer.abort()


@pytest.mark.parametrize("size,unit,per_cm", [
    (0.325, "µm", 1 / 0.325e-4), (650.0, "nm", 1 / 650e-7), (0.002, "mm", 1 / 0.0002),
    (0.0005, "cm", 2000.0),
])
def test_resolution_tags_follow_physical_size(tmp_path, size, unit, per_cm):
    data = rand((40, 50, 1, 1, 1), "uint8")
    path = tmp_path / "res.ome.tif"
    write(path, data, physical_size_x=(size, unit), physical_size_y=(size * 2, unit))
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            assert page.tags["ResolutionUnit"].value == 3
            xn, xd = page.tags["XResolution"].value
            yn, yd = page.tags["YResolution"].value
            assert xn / xd == pytest.approx(per_cm, rel=1e-9)
            assert yn / yd == pytest.approx(per_cm / 2, rel=1e-9)
    with BioReader(path) as br:
        assert br.physical_size_x == (size, unit)
        assert br.physical_size_y == (size * 2, unit)


def test_resolution_absent_is_unitless(tmp_path):
    path = tmp_path / "nores.ome.tif"
    write(path, rand((20, 30, 1, 1, 1), "uint8"))
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        assert page.tags["ResolutionUnit"].value == 1
        assert page.tags["XResolution"].value == (1, 1)
        assert page.tags["YResolution"].value == (1, 1)
    meta = OmeMetadata.new(4, 4)
    meta.images[0].pixels.set_physical_size("X", 1.5, "µm")  # Y missing: no unit
    assert resolution(meta) == ((1, 1), (1, 1), 1)
    meta.images[0].pixels.set_physical_size("Y", 1e-3, "µm")
    (xn, xd), (yn, yd), unit = resolution(meta)
    assert unit == 3 and max(xn, xd, yn, yd) < 2**32
    assert Fraction(yn, yd) == pytest.approx(1e7, rel=1e-9)


def test_ome_xml_validates_and_describes_every_ifd(tmp_path, ome_schema):
    data = rand((1100, 50, 3, 2, 2), "float32")
    path = tmp_path / "valid.ome.tif"
    with BioWriter(path, image=data) as bw:
        bw.channel_names = ["DAPI", "GFP"]
        bw.physical_size_z = (2.0, "µm")
        bw[:] = data
    with tifffile.TiffFile(path) as tf:
        xml = tf.pages[0].description
    ome_schema.validate(xml)
    root = ET.fromstring(xml)
    pixels = root.find(f"{OME}Image/{OME}Pixels")
    assert pixels.get("DimensionOrder") == "XYZCT" and pixels.get("Type") == "float"
    assert (pixels.get("SizeX"), pixels.get("SizeY"), pixels.get("SizeZ"), pixels.get("SizeC"),
            pixels.get("SizeT")) == ("50", "1100", "3", "2", "2")
    entries = pixels.findall(f"{OME}TiffData")
    assert [(int(e.get("IFD")), int(e.get("FirstZ")), int(e.get("FirstC")), int(e.get("FirstT")),
             int(e.get("PlaneCount"))) for e in entries] == \
        [(z + 3 * (c + 2 * t), z, c, t, 1) for t in range(2) for c in range(2) for z in range(3)]
    assert [ch.get("Name") for ch in pixels.findall(f"{OME}Channel")] == ["DAPI", "GFP"]
    # an invalid document fails, so the validation above means something
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        ome_schema.validate(xml.replace('DimensionOrder="XYZCT"', 'DimensionOrder="XYQCT"'))


def test_metadata_from_a_reader_carries_over(tmp_path, ome_schema):
    src = tmp_path / "src.ome.tif"
    data = rand((3, 60, 70), "uint16")
    tifffile.imwrite(src, data, metadata={"axes": "CYX", "PhysicalSizeX": 0.5,
                                          "Channel": {"Name": ["a", "b", "c"]}})
    out = tmp_path / "out.ome.tif"
    with BioReader(src) as br, BioWriter(out, metadata=br.metadata) as bw:
        bw[:] = br[:]
    with tifffile.TiffFile(out) as tf:
        ome_schema.validate(tf.pages[0].description)
        np.testing.assert_array_equal(tf.series[0].asarray(), data)
    with BioReader(out) as br:
        assert br.channel_names == ["a", "b", "c"]
        assert br.physical_size_x == (0.5, "µm")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 2300), width=st.integers(1, 1500), planes=st.integers(1, 3),
    blocks=st.integers(1, 6), seed=st.integers(0, 2**16), workers=st.sampled_from([1, 3]),
)
def test_random_order_misaligned_writes(tmp_path, height, width, planes, blocks, seed, workers):
    rng = random.Random(seed)
    data = rand((height, width, planes, 1, 1), "uint16", seed=seed)
    ys = sorted({0, height, *(rng.randrange(height) for _ in range(blocks))})
    xs = sorted({0, width, *(rng.randrange(width) for _ in range(blocks))})
    pieces = [(y0, y1, x0, x1, z) for y0, y1 in zip(ys, ys[1:], strict=False)
              for x0, x1 in zip(xs, xs[1:], strict=False) for z in range(planes)]
    rng.shuffle(pieces)
    path = tmp_path / f"r{seed}.ome.tif"
    with BioWriter(path, image=data, max_workers=workers) as bw:
        for y0, y1, x0, x1, z in pieces:
            bw.write(data[y0:y1, x0:x1, z:z + 1], Y=y0, X=x0, Z=z)
    pages = planes_of(path)
    assert len(pages) == planes
    for z in range(planes):
        np.testing.assert_array_equal(pages[z], data[:, :, z, 0, 0])
    with BioReader(path) as br:
        y0, x0 = rng.randrange(height), rng.randrange(width)
        np.testing.assert_array_equal(br[y0:, x0:, :], data[y0:, x0:, :, 0, 0]
                                      if planes > 1 else data[y0:, x0:, 0, 0, 0])


def test_tiles_from_many_threads_in_any_order(tmp_path):
    shape = (2500, 2100, 2, 2, 1)
    data = rand(shape, "uint16", seed=7)
    meta = OmeMetadata.new(size_x=2100, size_y=2500, size_z=2, size_c=2, dtype="uint16")
    path = tmp_path / "threads.ome.tif"
    writer = TiffWriter(path, meta, max_workers=3)
    jobs = []
    for c in range(2):
        for z in range(2):
            for ty in range(3):
                for tx in range(3):
                    tile = np.zeros((1024, 1024), np.uint16)
                    part = data[ty * 1024:(ty + 1) * 1024, tx * 1024:(tx + 1) * 1024, z, c, 0]
                    tile[:part.shape[0], :part.shape[1]] = part
                    jobs.append((z, c, 0, ty, tx, tile))
    random.Random(3).shuffle(jobs)

    def run(chunk):
        for job in chunk:
            writer.write_tile(*job)

    threads = [threading.Thread(target=run, args=(jobs[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    writer.close()
    pages = planes_of(path)
    for c in range(2):
        for z in range(2):
            np.testing.assert_array_equal(pages[z + 2 * c], data[:, :, z, c, 0])


def test_caller_may_reuse_its_buffer(tmp_path):
    meta = OmeMetadata.new(size_x=1024, size_y=1024, size_z=3, dtype="uint8")
    path = tmp_path / "reuse.ome.tif"
    writer = TiffWriter(path, meta, max_workers=2)
    buf = np.empty((1024, 1024), np.uint8)
    for z in range(3):
        buf[...] = z + 1
        writer.write_tile(z, 0, 0, 0, 0, buf)
    buf[...] = 99
    writer.close()
    assert [int(p.max()) for p in planes_of(path)] == [1, 2, 3]
    assert [int(p.min()) for p in planes_of(path)] == [1, 2, 3]


def test_abort_deletes_and_close_requires_every_tile(tmp_path):
    meta = OmeMetadata.new(size_x=2000, size_y=100, dtype="uint8")
    path = tmp_path / "aborted.ome.tif"
    writer = TiffWriter(path, meta)
    writer.write_tile(0, 0, 0, 0, 0, np.ones((1024, 1024), np.uint8))
    with pytest.raises(ValueError, match="never written"):
        writer.close()
    writer.abort()
    assert not path.exists()
    out = tmp_path / "facade.ome.tif"
    with pytest.raises(RuntimeError):
        with BioWriter(out, X=10, Y=10, dtype="uint8") as bw:
            bw[:5] = np.ones((5, 10), np.uint8)
            raise RuntimeError("interrupted")
    assert not out.exists() and not any(tmp_path.glob(".facade*"))


def test_unwritten_pixels_are_zero_and_file_valid(tmp_path):
    path = tmp_path / "partial.ome.tif"
    with BioWriter(path, X=1500, Y=1200, Z=2, dtype="int16") as bw:
        bw.write(np.full((10, 20), -5, np.int16), X=1480, Y=1100, Z=1)
    expected = np.zeros((2, 1200, 1500), np.int16)
    expected[1, 1100:1110, 1480:1500] = -5
    np.testing.assert_array_equal(tifffile.imread(path), expected)


def test_bad_tiles_are_refused(tmp_path):
    meta = OmeMetadata.new(size_x=100, size_y=100, dtype="uint8")
    with pytest.raises(ValueError, match="multiple of 16"):
        TiffWriter(tmp_path / "t.ome.tif", meta, tile_size=1000)
    writer = TiffWriter(tmp_path / "t.ome.tif", meta)
    with pytest.raises(ValueError, match="shape"):
        writer.write_tile(0, 0, 0, 0, 0, np.zeros((512, 512), np.uint8))
    writer.abort()
