"""TiffReader against tifffile's own decode, over the layouts TIFF files come in."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tifffile

from omeio import BioReader, UnreadableFileError
from omeio.backends import tiff_reader
from omeio.backends.tiff_reader import TiffReader, axis_map
from omeio.indexing import Region

RNG = np.random.default_rng(1234)


def rand(shape, dtype=np.uint16):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is None:
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def whole(reader: TiffReader) -> np.ndarray:
    y, x, z, c, t = reader.shape
    return reader.read_region(Region(range(y), range(x), tuple(range(z)), tuple(range(c)),
                                     tuple(range(t))))


def window(reader: TiffReader, y0, y1, x0, x1, z=None, c=None, t=None, step=1):
    _, _, nz, nc, nt = reader.shape
    return reader.read_region(Region(
        range(y0, y1, step), range(x0, x1, step),
        tuple(range(nz)) if z is None else tuple(z),
        tuple(range(nc)) if c is None else tuple(c),
        tuple(range(nt)) if t is None else tuple(t)))


def tifffile_series(path, series=0, level=0) -> np.ndarray:
    with tifffile.TiffFile(path) as tf:
        return tf.series[series].levels[level].asarray()


# -- layouts: (writer, expected axes of tifffile's series, transpose to YXZCT) ------------------

def _yx(a):  # YX -> YXZCT
    return a[:, :, None, None, None]


LAYOUTS = {
    # name: (data shape, dtype, imwrite kwargs, function mapping tifffile's array to YXZCT)
    "strips_raw": ((301, 257), np.uint16, dict(rowsperstrip=7), _yx),
    "one_strip_raw": ((64, 90), np.int16, dict(rowsperstrip=64), _yx),
    "strips_deflate_predictor": ((130, 77), np.uint16,
                                 dict(rowsperstrip=9, compression="zlib", predictor=True), _yx),
    "tiles_240x368": ((1000, 1500), np.uint16, dict(tile=(240, 368), compression="zlib"), _yx),
    "tiles_lzw": ((200, 300), np.int32, dict(tile=(64, 128), compression="lzw"), _yx),
    "tiles_zstd_float": ((200, 300), np.float32, dict(tile=(48, 32), compression="zstd"), _yx),
    "tiles_float64_bigendian": ((100, 120), np.float64, dict(tile=(32, 32), byteorder=">"), _yx),
    "strips_bigendian": ((100, 120), np.uint32, dict(rowsperstrip=13, byteorder=">"), _yx),
    "bigtiff_multipage": ((5, 70, 90), np.uint8, dict(bigtiff=True, metadata=None, photometric="minisblack"),
                          lambda a: a.transpose(1, 2, 0)[:, :, :, None, None]),
    "multipage_tiled_int8": ((3, 70, 90), np.int8, dict(tile=(16, 32), metadata=None, photometric="minisblack"),
                             lambda a: a.transpose(1, 2, 0)[:, :, :, None, None]),
    "imagej_TZCYX": ((2, 3, 4, 40, 50), np.uint16, dict(imagej=True, metadata={"axes": "TZCYX"}),
                     lambda a: a.transpose(3, 4, 1, 2, 0)),
    "rgb_interleaved_tiles": ((100, 130, 3), np.uint8, dict(photometric="rgb", tile=(32, 64)),
                              lambda a: a[:, :, None, :, None]),
    "rgb_interleaved_strips": ((100, 130, 3), np.uint16,
                               dict(photometric="rgb", rowsperstrip=11, compression="zlib"),
                               lambda a: a[:, :, None, :, None]),
    "rgb_planar_strips": ((3, 100, 130), np.uint8,
                          dict(photometric="rgb", planarconfig="separate", rowsperstrip=10),
                          lambda a: a.transpose(1, 2, 0)[:, :, None, :, None]),
    "rgb_planar_tiles": ((3, 100, 130), np.uint16,
                         dict(photometric="rgb", planarconfig="separate", tile=(32, 48),
                              compression="zlib"),
                         lambda a: a.transpose(1, 2, 0)[:, :, None, :, None]),
    "rgba_planar_zstack": ((4, 4, 50, 60), np.uint8,
                           dict(photometric="rgb", planarconfig="separate", extrasamples=[2],
                                metadata=None),
                           lambda a: a.transpose(2, 3, 0, 1)[:, :, :, :, None]),
    "jpeg_tiles_uint8": ((64, 80, 3), np.uint8,
                         dict(photometric="rgb", compression="jpeg", tile=(32, 32)),
                         lambda a: a[:, :, None, :, None]),
    "jpeg_strips_gray": ((70, 90), np.uint8, dict(compression="jpeg", rowsperstrip=16), _yx),
    "ome_XYZCT": ((2, 3, 4, 40, 50), np.uint16,
                  dict(metadata={"axes": "TCZYX"}, tile=(16, 32), compression="zlib"),
                  lambda a: a.transpose(3, 4, 2, 1, 0)),
    "ome_XYCZT": ((2, 4, 3, 40, 50), np.uint16, dict(metadata={"axes": "TZCYX"}),
                  lambda a: a.transpose(3, 4, 1, 2, 0)),
    "ome_XYTZC": ((3, 4, 2, 40, 50), np.uint8, dict(metadata={"axes": "CZTYX"}, rowsperstrip=3),
                  lambda a: a.transpose(3, 4, 1, 0, 2)),
    "ome_rgb_interleaved": ((2, 40, 50, 3), np.uint8,
                            dict(photometric="rgb", metadata={"axes": "ZYXS"}),
                            lambda a: a.transpose(1, 2, 0, 3)[:, :, :, :, None]),
}


@pytest.fixture(scope="module")
def layout_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    out = {}
    for name, (shape, dtype, kwargs, to5d) in LAYOUTS.items():
        suffix = ".ome.tif" if name.startswith("ome") else ".tif"
        path = root / f"{name}{suffix}"
        data = rand(shape, dtype)
        tifffile.imwrite(path, data, **kwargs)
        out[name] = (path, to5d)
    return out


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_matches_tifffile(layout_files, name):
    path, to5d = layout_files[name]
    expected = to5d(tifffile_series(path))
    reader = TiffReader(path, max_workers=2)
    try:
        assert reader.shape == expected.shape
        assert reader.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(whole(reader), expected)
        y, x = reader.shape[:2]
        # a window at odd offsets, one plane at a time and all planes at once, with a pool
        for y0, y1, x0, x1 in ((3, y - 5, 1, x - 2), (y // 3, y // 3 + 17, x // 2 - 9, x // 2),
                               (y - 1, y, x - 1, x), (0, 1, 0, x)):
            np.testing.assert_array_equal(window(reader, y0, y1, x0, x1),
                                          expected[y0:y1, x0:x1])
        with BioReader(path, max_workers=2) as br:
            assert br.backend_name == "tiff"
            np.testing.assert_array_equal(br.read_region(Region(
                range(2, y - 1, 3), range(1, x, 2), tuple(range(br.Z))[::-1],
                tuple(range(br.C)), tuple(range(br.T)))),
                expected[2:y - 1:3, 1:x:2, ::-1])
        # the synthesised or parsed metadata describes the same 5-D image
        pixels = reader.metadata.images[0].pixels
        assert (pixels.size_y, pixels.size_x, pixels.size_z, pixels.size_c, pixels.size_t) == \
            reader.shape
        assert pixels.dtype == reader.dtype
        assert len(pixels.channels) == reader.shape[3]
    finally:
        reader.close()


def test_unusual_axes_fold_into_z_then_t(tmp_path):
    data = rand((3, 4, 5, 2, 20, 30), np.uint8)
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, data, metadata={"axes": "QRTCYX"})
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "QRTCYX"
    reader = TiffReader(path)
    # Q -> Z (Z absent); R -> T is taken by the file's T, so R and T flatten into T (R outer)
    assert reader.shape == (20, 30, 3, 2, 20)
    expected = data.transpose(4, 5, 0, 3, 1, 2).reshape(20, 30, 3, 2, 20)
    np.testing.assert_array_equal(whole(reader), expected)
    reader.close()


def test_axis_map_rules():
    # no Z, no T: first unknown axis -> Z, second -> T
    m = axis_map("IQYX", (3, 4, 8, 8), (1, 1, 8, 8, 1))
    assert m.sizes == (3, 1, 4)
    assert m.locate(2, 0, 1) == (2 * 4 + 1, 0, 0)
    # Z present: unknown -> T
    m = axis_map("ZAYX", (3, 4, 8, 8), (1, 1, 8, 8, 1))
    assert m.sizes == (3, 1, 4)
    # chunky samples after channels: C = channel * samples + sample
    m = axis_map("CYXS", (2, 8, 8, 3), (1, 1, 8, 8, 3))
    assert m.sizes == (1, 6, 1)
    assert m.locate(0, 4, 0) == (1, 0, 1)
    # size-1 axes do not claim a target
    m = axis_map("QZYX", (1, 5, 8, 8), (1, 1, 8, 8, 1))
    assert m.sizes == (5, 1, 1)


def test_truncated_imagej_series(tmp_path):
    data = rand((6, 40, 50), np.uint16)
    path = tmp_path / "truncated_ij.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"}, truncate=True)
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].is_truncated and len(tf.pages) == 1
    reader = TiffReader(path)
    assert reader.shape == (40, 50, 6, 1, 1)
    np.testing.assert_array_equal(whole(reader), data.transpose(1, 2, 0)[:, :, :, None, None])
    np.testing.assert_array_equal(window(reader, 5, 9, 7, 40, z=[4]),
                                  data[4, 5:9, 7:40][:, :, None, None, None])
    reader.close()


def test_subifd_pyramid_levels(tmp_path):
    base = rand((256, 320), np.uint16)
    levels = [base, base[::2, ::2].copy(), base[::4, ::4].copy()]
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(levels[0], tile=(64, 64), subifds=2, compression="zlib")
        for lv in levels[1:]:
            tw.write(lv, tile=(64, 64), subfiletype=1, compression="zlib")
    for i, lv in enumerate(levels):
        reader = TiffReader(path, level=i)
        assert reader.level_count == 3 and reader.series_count == 1
        assert reader.shape == (*lv.shape, 1, 1, 1)
        np.testing.assert_array_equal(whole(reader)[:, :, 0, 0, 0], lv)
        reader.close()
    with pytest.raises(IndexError):
        TiffReader(path, level=3)
    with pytest.raises(IndexError):
        TiffReader(path, series=1)


def test_ome_pyramid_and_metadata(tmp_path):
    data = rand((2, 200, 260), np.uint16)
    path = tmp_path / "pyr.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        meta = {"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5,
                "Channel": {"Name": ["DAPI", "GFP"]}}
        tw.write(data, tile=(64, 64), subifds=1, metadata=meta)
        tw.write(data[:, ::2, ::2], tile=(64, 64), subfiletype=1)
    with BioReader(path, level=1) as br:
        assert br.level_count == 2 and br.shape == (100, 130, 1, 2)
        np.testing.assert_array_equal(br[:], data[:, ::2, ::2].transpose(1, 2, 0)[:, :, None])
        assert br.channel_names == ["DAPI", "GFP"]
        # metadata of a level is scaled to the level
        assert br.physical_size_x == (0.5, "µm")
    reader = TiffReader(path)
    pixels = reader.metadata.images[0].pixels
    assert pixels.physical_size("X") == (0.25, "µm")
    assert pixels.physical_size("Y") == (0.5, "µm")
    assert [ch.name for ch in pixels.channels] == ["DAPI", "GFP"]
    reader.close()


def test_ome_rgb_samples_become_channels(tmp_path):
    data = rand((30, 40, 3), np.uint8)
    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    reader = TiffReader(path)
    pixels = reader.metadata.images[0].pixels
    assert pixels.size_c == 3 and [ch.samples_per_pixel for ch in pixels.channels] == [1, 1, 1]
    np.testing.assert_array_equal(whole(reader)[:, :, 0, :, 0], data)
    reader.close()


def test_multiple_ome_series(tmp_path):
    a, b = rand((20, 30), np.uint8), rand((3, 10, 12), np.uint8)
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(a, metadata={"axes": "YX", "Name": "first"})
        tw.write(b, metadata={"axes": "ZYX", "Name": "second"})
    with BioReader(path, series=1) as br:
        assert br.series_count == 2 and br.shape == (10, 12, 3)
        np.testing.assert_array_equal(br[:], b.transpose(1, 2, 0))
        assert len(br.file_metadata.images) == 2
        assert br.metadata.images[0].name == "second"


def test_physical_sizes_from_resolution_tags(tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, rand((20, 30)), resolution=(1 / 0.0002, 1 / 0.0004),
                     resolutionunit="CENTIMETER")
    reader = TiffReader(path)
    pixels = reader.metadata.images[0].pixels
    x, ux = pixels.physical_size("X")
    y, uy = pixels.physical_size("Y")
    assert (ux, uy) == ("µm", "µm")
    assert x == pytest.approx(2.0, rel=1e-9) and y == pytest.approx(4.0, rel=1e-9)
    reader.close()
    path = tmp_path / "nores.tif"
    tifffile.imwrite(path, rand((20, 30)), resolution=(1, 1), resolutionunit="NONE")
    reader = TiffReader(path)
    assert reader.metadata.images[0].pixels.physical_size("X") == (None, None)
    reader.close()


def test_physical_sizes_from_imagej(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, rand((4, 20, 30)), imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                     metadata={"axes": "ZYX", "spacing": 2.5, "unit": "um"})
    reader = TiffReader(path)
    pixels = reader.metadata.images[0].pixels
    assert pixels.physical_size("X") == (pytest.approx(0.5), "µm")
    assert pixels.physical_size("Y") == (pytest.approx(0.25), "µm")
    assert pixels.physical_size("Z") == (2.5, "µm")
    reader.close()


@pytest.mark.parametrize("dtype", ["float16", "int64", "complex64"])
def test_unsupported_pixel_type(tmp_path, dtype):
    path = tmp_path / f"{dtype}.tif"
    tifffile.imwrite(path, np.zeros((8, 8), dtype))
    with pytest.raises(UnreadableFileError) as info:
        TiffReader(path)
    assert dtype in str(info.value) and str(path) in str(info.value)


def test_window_decodes_only_touched_tiles(tmp_path, monkeypatch):
    size, tile = 8192, 256
    yy, xx = np.ogrid[:size, :size]
    data = ((yy * 7 + xx) % 251).astype(np.uint8)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, tile=(tile, tile), compression="zlib", compressionargs={"level": 1})
    decoded, read = [], []
    original_decode = TiffReader._decode_segment
    original_pread = tiff_reader._pread

    def counting_decode(self, seg, buf):
        decoded.append(seg.index)
        return original_decode(self, seg, buf)

    def counting_pread(path_, fd, size_, offset, what):
        read.append(size_)
        return original_pread(path_, fd, size_, offset, what)

    monkeypatch.setattr(TiffReader, "_decode_segment", counting_decode)
    monkeypatch.setattr(tiff_reader, "_pread", counting_pread)
    with BioReader(path, max_workers=2) as br:
        got = br[1000:2000, 3000:4000]
    np.testing.assert_array_equal(got, data[1000:2000, 3000:4000])
    rows, cols = range(1000 // tile, 1999 // tile + 1), range(3000 // tile, 3999 // tile + 1)
    expected = sorted(r * (size // tile) + c for r in rows for c in cols)
    assert sorted(decoded) == expected  # 25 tiles of 1024
    with tifffile.TiffFile(path) as tf:
        counts = tf.pages.first.databytecounts
    # bytes read: the touched tiles, plus at most the small gaps between coalesced ones
    assert sum(read) <= sum(counts[i] for i in expected) + len(expected) * (1 << 14)
    assert sum(read) < sum(counts) / 20


def test_window_of_raw_strips_reads_only_its_rows(tmp_path, monkeypatch):
    data = rand((2000, 3000), np.uint16)
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, data, rowsperstrip=1)
    calls = []
    original = tiff_reader.os.preadv

    def counting(fd, buffers, offset):
        calls.append(sum(len(b) for b in buffers))
        return original(fd, buffers, offset)

    monkeypatch.setattr(tiff_reader.os, "preadv", counting)
    reader = TiffReader(path)
    got = window(reader, 500, 600, 10, 110)
    np.testing.assert_array_equal(got[:, :, 0, 0, 0], data[500:600, 10:110])
    assert sum(calls) == 100 * 100 * 2  # narrow window: just its columns of its rows
    calls.clear()
    got = window(reader, 17, 1500, 5, 2995)
    np.testing.assert_array_equal(got[:, :, 0, 0, 0], data[17:1500, 5:2995])
    assert sum(calls) == (1500 - 17) * 3000 * 2  # wide window: whole rows, no more
    reader.close()


def test_truncated_file_raises(tmp_path):
    data = rand((512, 512), np.uint16)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, data, tile=(128, 128), compression="zlib")
    raw = path.read_bytes()
    with tifffile.TiffFile(path) as tf:
        offsets = tf.pages.first.dataoffsets
    # keep the header and IFD (written first by tifffile) but cut the last tiles off
    cut = max(offsets[-3], tf.pages.first.offset + 1000)
    path.write_bytes(raw[:cut])
    reader = TiffReader(path)
    np.testing.assert_array_equal(window(reader, 0, 128, 0, 128)[:, :, 0, 0, 0],
                                  data[:128, :128])
    with pytest.raises(UnreadableFileError) as info:
        whole(reader)
    assert "truncated" in info.value.reason and str(path) in str(info.value)
    reader.close()


def test_corrupt_tile_raises(tmp_path):
    data = rand((256, 256), np.uint16)
    path = tmp_path / "corrupt.tif"
    tifffile.imwrite(path, data, tile=(128, 128), compression="zlib")
    with tifffile.TiffFile(path) as tf:
        offset, count = tf.pages.first.dataoffsets[1], tf.pages.first.databytecounts[1]
    raw = bytearray(path.read_bytes())
    raw[offset:offset + count] = b"\xff" * count
    path.write_bytes(bytes(raw))
    reader = TiffReader(path)
    np.testing.assert_array_equal(window(reader, 0, 100, 0, 100)[:, :, 0, 0, 0],
                                  data[:100, :100])
    with pytest.raises(UnreadableFileError) as info:
        window(reader, 0, 100, 100, 200)
    assert "corrupt tile 1" in info.value.reason
    reader.close()


def test_sparse_tile_reads_as_nodata(tmp_path):
    data = rand((128, 128), np.uint8)
    path = tmp_path / "sparse.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib")
    with tifffile.TiffFile(path) as tf:
        tag = tf.pages.first.tags["TileByteCounts"]
        where, size = tag.valueoffset, {3: 2, 4: 4, 16: 8}[int(tag.dtype)]
    raw = bytearray(path.read_bytes())
    raw[where + size * 2:where + size * 3] = b"\0" * size  # tile 2 has no bytes
    path.write_bytes(bytes(raw))
    # tifffile 2026.3.3's own decode misplaces the tile after a sparse one, so the
    # reference is the written data with that tile at nodata (0)
    expected = data.copy()
    expected[64:, :64] = 0
    reader = TiffReader(path)
    np.testing.assert_array_equal(whole(reader)[:, :, 0, 0, 0], expected)
    reader.close()


def test_not_a_tiff_and_header_helpers(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\xff" * 20)
    with pytest.raises(UnreadableFileError):
        TiffReader(bad)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((3, 17, 29), np.uint8), photometric="minisblack")
    assert TiffReader.can_read(good) and TiffReader.can_read(bad)
    text = tmp_path / "x.txt"
    text.write_text("hello")
    assert not TiffReader.can_read(text)
    assert TiffReader.image_size(good) == (29, 17)
    assert TiffReader.image_size(text) == (-1, -1)
    assert BioReader.image_size(good) == (29, 17)


def test_svs_series_kinds(tmp_path):
    path = tmp_path / "slide.svs"
    base = rand((256, 320, 3), np.uint8)
    with tifffile.TiffWriter(path) as tw:
        desc = "Aperio Image Library v10.0.0\n320x256 [0,0 320x256] (256x256) JPEG/RGB Q=70"
        tw.write(base, tile=(64, 64), photometric="rgb", description=desc, metadata=None)
        tw.write(base[::8, ::8].copy(), photometric="rgb", description="Aperio thumbnail",
                 metadata=None)
        tw.write(base[::2, ::2].copy(), tile=(64, 64), photometric="rgb", description="Aperio",
                 metadata=None)
        tw.write(base[:32, :48].copy(), photometric="rgb", subfiletype=1, description="label",
                 metadata=None)
        tw.write(base[:40, :40].copy(), photometric="rgb", subfiletype=9, description="macro",
                 metadata=None)
    reader = TiffReader(path, level=1)
    assert reader.series_count == 4
    assert [reader.series_kind(i) for i in range(4)] == ["image", "thumbnail", "label", "macro"]
    assert reader.shape == (128, 160, 1, 3, 1)
    np.testing.assert_array_equal(whole(reader)[:, :, 0, :, 0], base[::2, ::2])
    reader.close()


def test_concurrent_readers_share_one_backend(tmp_path):
    data = rand((4, 600, 700), np.uint16)
    path = tmp_path / "conc.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib", metadata=None,
                     photometric="minisblack")
    reader = TiffReader(path, max_workers=4)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(20):
                y0, x0 = rng.integers(0, 590), rng.integers(0, 690)
                y1, x1 = rng.integers(y0 + 1, 601), rng.integers(x0 + 1, 701)
                z = int(rng.integers(0, 4))
                got = window(reader, y0, y1, x0, x1, z=[z])[:, :, 0, 0, 0]
                np.testing.assert_array_equal(got, data[z, y0:y1, x0:x1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    reader.close()
    assert not errors, errors[0]


@pytest.mark.parametrize("name", ["rgb_planar_tiles", "rgb_interleaved_strips", "ome_XYZCT"])
def test_whole_page_fallback(layout_files, name):
    path, to5d = layout_files[name]
    expected = to5d(tifffile_series(path))
    reader = TiffReader(path)
    reader._whole_page = True  # the path NDPI-like and transformed pages take
    np.testing.assert_array_equal(whole(reader), expected)
    np.testing.assert_array_equal(window(reader, 3, 20, 5, 41), expected[3:20, 5:41])
    reader.close()


def test_unknown_compression_is_refused(tmp_path):
    path = tmp_path / "codec.tif"
    tifffile.imwrite(path, rand((16, 16), np.uint8))
    with tifffile.TiffFile(path) as tf:
        tag = tf.pages.first.tags["Compression"]
        where = tag.valueoffset
    raw = bytearray(path.read_bytes())
    raw[where:where + 2] = (65111).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(UnreadableFileError) as info:
        TiffReader(path)
    assert "65111" in info.value.reason
