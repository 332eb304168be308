"""OME-Zarr writer: exact pixels read back by zarr itself, exact attributes, and both validators."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omeio.backends.zarr_writer import ZarrWriter
from omeio.indexing import Region
from omeio.metadata import OmeMetadata, rgba_to_int
from omeio.reader import BioReader
from omeio.writer import BioWriter

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
VERSIONS = ["0.5", "0.4"]


def _random(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        data = (rng.standard_normal(shape) * 1e3).astype(dtype)
        flat = data.reshape(-1)
        flat[:4] = [np.inf, -np.inf, -0.0, np.finfo(dtype).max]
        return data
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _zarr_5d(path: Path) -> np.ndarray:
    """Array ``0`` read by zarr alone, as ``Y, X, Z, C, T``."""
    return zarr.open_array(str(path / "0"), mode="r")[...].transpose(3, 4, 2, 1, 0)


def _attrs(path: Path, version: str) -> dict:
    """The image group's OME attributes straight from the JSON files."""
    if version == "0.5":
        doc = json.loads((path / "zarr.json").read_text())
        assert doc["zarr_format"] == 3 and doc["node_type"] == "group"
        return doc["attributes"]["ome"]
    assert json.loads((path / ".zgroup").read_text()) == {"zarr_format": 2}
    return json.loads((path / ".zattrs").read_text())


def _array_json(path: Path, version: str) -> dict:
    name = "zarr.json" if version == "0.5" else ".zarray"
    return json.loads((path / "0" / name).read_text())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_pixel_type(tmp_path, version, dtype):
    # 1025 x 1030: one-pixel and six-pixel edge tiles next to full 1024 tiles
    image = _random((1025, 1030, 1, 2, 2), dtype, seed=DTYPES.index(dtype))
    out = tmp_path / "img.ome.zarr"
    with BioWriter(out, ome_zarr_version=version, image=image) as bw:
        bw.write(image)
    stored = zarr.open_array(str(out / "0"), mode="r")
    assert stored.shape == (2, 2, 1, 1025, 1030)
    assert stored.chunks == (1, 1, 1, 1024, 1024)
    assert stored.dtype == np.dtype(dtype)
    assert stored.metadata.zarr_format == (3 if version == "0.5" else 2)
    np.testing.assert_array_equal(_zarr_5d(out), image)
    with BioReader(out) as br:
        assert br.backend_name == "zarr"
        assert br.dtype == np.dtype(dtype)
        assert (br.Y, br.X, br.Z, br.C, br.T) == (1025, 1030, 1, 2, 2)
        whole = Region(range(1025), range(1030), (0,), (0, 1), (0, 1))
        np.testing.assert_array_equal(br.read_region(whole), image)


@pytest.mark.parametrize("version", VERSIONS)
def test_attributes_exact(tmp_path, version):
    out = tmp_path / "attrs.ome.zarr"
    meta = OmeMetadata.new(size_x=70, size_y=50, size_z=3, size_c=3, size_t=2, dtype="uint16",
                           channel_names=["DAPI", None, "GFP"])
    meta.images[0].pixels.channels[0].color = rgba_to_int(255, 128, 0)
    image = _random((50, 70, 3, 3, 2), "uint16")
    with BioWriter(out, metadata=meta, ome_zarr_version=version, physical_size_x=(0.25, "µm"),
                   physical_size_y=(0.5, "µm"), physical_size_z=(2.0, "nm"), tile_size=32) as bw:
        bw.write(image)
    attrs = _attrs(out, version)
    (ms,) = attrs["multiscales"]
    assert ms["axes"] == [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "nanometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert ms["datasets"] == [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 1.0, 2.0, 0.5, 0.25]}]}]
    if version == "0.5":
        assert attrs["version"] == "0.5"
        assert "version" not in ms
    else:
        assert ms["version"] == "0.4"
    omero = attrs["omero"]
    assert [c["label"] for c in omero["channels"]] == ["DAPI", "Channel 1", "GFP"]
    assert [c["color"] for c in omero["channels"]] == ["FF8000", "00FF00", "0000FF"]
    for ch in omero["channels"]:
        assert ch["window"] == {"start": 0.0, "end": 65535.0, "min": 0.0, "max": 65535.0}
        assert ch["active"] is True
    assert omero["rdefs"] == {"defaultT": 0, "defaultZ": 1, "model": "color"}
    array = _array_json(out, version)
    assert array["shape"] == [2, 3, 3, 50, 70]
    if version == "0.5":
        assert array["dimension_names"] == ["t", "c", "z", "y", "x"]
        assert array["chunk_grid"]["configuration"]["chunk_shape"] == [1, 1, 1, 32, 32]
        assert array["fill_value"] == 0 and array["data_type"] == "uint16"
        assert array["codecs"][0]["name"] == "bytes"
        blosc = array["codecs"][1]
        assert blosc["name"] == "blosc"
        assert blosc["configuration"]["cname"] == "zstd"
        assert blosc["configuration"]["clevel"] == 1
        assert blosc["configuration"]["shuffle"] == "shuffle"
    else:
        assert array["chunks"] == [1, 1, 1, 32, 32]
        assert array["dimension_separator"] == "/"
        assert array["fill_value"] == 0 and array["dtype"] == "<u2"
        assert array["compressor"] == {"id": "blosc", "cname": "zstd", "clevel": 1,
                                       "shuffle": 1, "blocksize": 0}
    np.testing.assert_array_equal(_zarr_5d(out), image)


def test_units_converted_and_unknown_dropped(tmp_path):
    out = tmp_path / "units.ome.zarr"
    with BioWriter(out, X=8, Y=8, Z=2, dtype="uint8", physical_size_x=(2.0, "thou"),
                   physical_size_y=(3.0, "pixel"), physical_size_z=(1.5, "mm"),
                   tile_size=16) as bw:
        bw.write(np.ones((8, 8, 2), np.uint8))
    (ms,) = _attrs(out, "0.5")["multiscales"]
    assert ms["axes"][2:] == [{"name": "z", "type": "space", "unit": "millimeter"},
                              {"name": "y", "type": "space"},
                              {"name": "x", "type": "space", "unit": "micrometer"}]
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 1.0, 1.5, 3.0, pytest.approx(50.8)]


def test_single_channel_unknown_sizes(tmp_path):
    out = tmp_path / "plain.ome.zarr"
    with BioWriter(out, X=5, Y=4, dtype="float32", tile_size=16) as bw:
        bw.write(np.arange(20, dtype=np.float32).reshape(4, 5))
    attrs = _attrs(out, "0.5")
    (ms,) = attrs["multiscales"]
    assert ms["axes"][2:] == [{"name": a, "type": "space"} for a in "zyx"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0] * 5
    (ch,) = attrs["omero"]["channels"]
    assert ch["color"] == "FFFFFF" and ch["label"] == "Channel 0"
    assert ch["window"]["start"] == 0.0 and ch["window"]["end"] == 1.0
    assert ch["window"]["max"] == float(np.finfo(np.float32).max)
    assert attrs["omero"]["rdefs"]["model"] == "greyscale"


@pytest.mark.parametrize("version", VERSIONS)
def test_ome_xml_written(tmp_path, version, ome_schema):
    out = tmp_path / "xml.ome.zarr"
    with BioWriter(out, ome_zarr_version=version, X=40, Y=30, C=2, dtype="int16",
                   channel_names=["a", "b"], physical_size_x=(0.3, "µm"), tile_size=16) as bw:
        bw.write(np.zeros((30, 40, 1, 2), np.int16))
    xml = (out / "OME" / "METADATA.ome.xml").read_text(encoding="utf-8")
    ome_schema.validate(xml)
    meta = OmeMetadata.from_xml(xml)
    pixels = meta.images[0].pixels
    assert (pixels.size_x, pixels.size_y, pixels.size_z, pixels.size_c, pixels.size_t) == (
        40, 30, 1, 2, 1)
    assert pixels.type == "int16"
    assert [c.name for c in pixels.channels] == ["a", "b"]
    assert pixels.physical_size("X") == (0.3, "µm")
    assert len(pixels.element.findall("{*}MetadataOnly")) == 1
    assert pixels.element.findall("{*}TiffData") == []
    # the OME folder is a Zarr group of its own, so that zarr sees no foreign object
    marker = "zarr.json" if version == "0.5" else ".zgroup"
    assert (out / "OME" / marker).is_file()


def _valid_store(tmp_path: Path, version: str) -> Path:
    out = tmp_path / "valid.ome.zarr"
    image = _random((70, 90, 2, 3, 2), "uint16")
    with BioWriter(out, ome_zarr_version=version, image=image, physical_size_x=(0.5, "µm"),
                   physical_size_y=(0.5, "µm"), physical_size_z=(1.0, "µm"),
                   channel_names=["r", "g", "b"], tile_size=32) as bw:
        bw.write(image)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_validators_accept_metadata(tmp_path, version):
    """ome-zarr-models opens the store as an Image; yaozarrs accepts the group's JSON."""
    from ome_zarr_models import open_ome_zarr
    from ome_zarr_models.v04 import Image as ModelImage04
    from ome_zarr_models.v05 import Image as ModelImage05
    from yaozarrs import v04, v05, validate_ome_json

    out = _valid_store(tmp_path, version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a SHOULD-level warning
        if version == "0.5":
            doc = validate_ome_json((out / "zarr.json").read_bytes(), v05.OMEZarrGroupJSON)
            assert isinstance(doc.attributes.ome, v05.Image)
        else:
            doc = validate_ome_json((out / ".zattrs").read_bytes(), v04.OMEZarrGroupJSON)
            assert isinstance(doc, v04.Image)
        model = open_ome_zarr(str(out), version=version)
    assert isinstance(model, ModelImage05 if version == "0.5" else ModelImage04)
    assert model.ome_attributes.multiscales[0].datasets[0].path == "0"
    assert model.ome_zarr_version == version


@pytest.mark.parametrize("version", VERSIONS)
def test_yaozarrs_validates_store_structure(tmp_path, version):
    """yaozarrs' structural check (arrays, dimension_names, chunks) needs fsspec to open stores."""
    pytest.importorskip("fsspec", reason="yaozarrs.validate_zarr_store needs fsspec "
                                          "(yaozarrs[io]), not in the test extras")
    from yaozarrs import validate_zarr_store

    out = _valid_store(tmp_path, version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        group = validate_zarr_store(str(out))
    assert group.ome_version() == version


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("compression", ["none", "zstd", "gzip", "deflate", "blosc"])
def test_compressions(tmp_path, version, compression):
    out = tmp_path / f"{compression}.ome.zarr"
    image = _random((40, 33, 1, 2), "int32")
    with BioWriter(out, ome_zarr_version=version, image=image, compression=compression,
                   compression_level=2, tile_size=16) as bw:
        bw.write(image)
    np.testing.assert_array_equal(_zarr_5d(out)[..., 0], image)
    array = _array_json(out, version)
    expected = {"none": None, "zstd": "zstd", "gzip": "gzip", "deflate": "gzip",
                "blosc": "blosc"}[compression]
    if version == "0.5":
        names = [c["name"] for c in array["codecs"]]
        assert names == ["bytes"] + ([expected] if expected else [])
        if expected in ("zstd", "gzip"):
            assert array["codecs"][1]["configuration"]["level"] == 2
    else:
        if expected is None:
            assert array["compressor"] is None
        else:
            assert array["compressor"]["id"] == expected
            key = "clevel" if expected == "blosc" else "level"
            assert array["compressor"][key] == 2


def test_bad_options():
    meta = OmeMetadata.new(size_x=4, size_y=4)
    with pytest.raises(ValueError, match="none.*zstd|zstd.*none"):
        ZarrWriter(Path("/nonexistent/never"), meta, compression="lzw")
    with pytest.raises(ValueError, match="0.5, 0.4"):
        ZarrWriter(Path("/nonexistent/never"), meta, ome_zarr_version="0.3")
    with pytest.raises(ValueError, match="level"):
        ZarrWriter(Path("/nonexistent/never"), meta, compression="gzip", compression_level=12)
    with pytest.raises(TypeError, match="bogus"):
        ZarrWriter(Path("/nonexistent/never"), meta, bogus=1)


def test_every_chunk_stored_even_when_zero(tmp_path):
    out = tmp_path / "zeros.ome.zarr"
    with BioWriter(out, X=40, Y=20, Z=2, dtype="uint8", ome_zarr_version="0.4",
                   tile_size=16) as bw:
        bw.write(np.zeros((20, 40, 2), np.uint8))
    chunks = sorted(str(p.relative_to(out / "0")) for p in (out / "0").rglob("*")
                    if p.is_file() and not p.name.startswith("."))
    expected = sorted(f"0/0/{z}/{ty}/{tx}" for z in range(2) for ty in range(2)
                      for tx in range(3))
    assert chunks == expected


def test_edge_padding_is_zeroed(tmp_path):
    """A tile whose padding is not zero must still be stored as zero outside the image."""
    meta = OmeMetadata.new(size_x=10, size_y=5, dtype="uint16")
    w = ZarrWriter(tmp_path / "pad.zarr", meta, tile_size=8, max_workers=1,
                   compression="none")
    tile = np.full((8, 8), 7, np.uint16)
    w.write_tile(0, 0, 0, 0, 0, tile.copy())
    w.write_tile(0, 0, 0, 0, 1, tile)
    w.close()
    raw = np.frombuffer((tmp_path / "pad.zarr/0/c/0/0/0/0/1").read_bytes(), "<u2").reshape(8, 8)
    expected = np.zeros((8, 8), np.uint16)
    expected[:5, :2] = 7
    np.testing.assert_array_equal(raw, expected)
    assert (tile == 7).all()  # the caller's array is left alone


@pytest.mark.parametrize("version", VERSIONS)
def test_tiles_from_many_threads_any_order(tmp_path, version):
    meta = OmeMetadata.new(size_x=100, size_y=70, size_z=2, size_c=2, dtype="float32")
    image = _random((2, 2, 70, 100), "float32")  # z, c, y, x
    w = ZarrWriter(tmp_path / "mt.zarr", meta, tile_size=16, max_workers=3,
                   ome_zarr_version=version)
    jobs = [(z, c, ty, tx) for z in range(2) for c in range(2) for ty in range(5)
            for tx in range(7)]
    np.random.default_rng(3).shuffle(jobs)

    def worker(part):
        for z, c, ty, tx in part:
            tile = np.zeros((16, 16), np.float32)
            block = image[z, c, ty * 16:(ty + 1) * 16, tx * 16:(tx + 1) * 16]
            tile[:block.shape[0], :block.shape[1]] = block
            w.write_tile(z, c, 0, ty, tx, tile)

    threads = [threading.Thread(target=worker, args=(jobs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    stored = zarr.open_array(str(tmp_path / "mt.zarr" / "0"), mode="r")[...]
    np.testing.assert_array_equal(stored[0].transpose(1, 0, 2, 3), image)


def test_close_reports_missing_chunks_and_failures(tmp_path):
    meta = OmeMetadata.new(size_x=20, size_y=10, dtype="uint8")
    w = ZarrWriter(tmp_path / "miss.zarr", meta, tile_size=16, max_workers=2)
    w.write_tile(0, 0, 0, 0, 0, np.ones((16, 16), np.uint8))
    with pytest.raises(RuntimeError, match="only 1 of 2 chunks"):
        w.close()

    class Broken:
        def encode(self, buf):
            raise OSError("disk on fire")

    w = ZarrWriter(tmp_path / "fail.zarr", meta, tile_size=16, max_workers=2)
    w._encoder = Broken()
    with pytest.raises(OSError, match="disk on fire"):  # at the next call, at the latest
        w.write_tile(0, 0, 0, 0, 0, np.ones((16, 16), np.uint8))
        w.write_tile(0, 0, 0, 0, 1, np.ones((16, 16), np.uint8))
        w.close()
    w.abort()
    assert not (tmp_path / "fail.zarr").exists()
    with pytest.raises(IndexError):
        ZarrWriter(tmp_path / "x.zarr", meta, tile_size=16).write_tile(
            0, 0, 0, 0, 2, np.ones((16, 16), np.uint8))


def test_abort_leaves_nothing(tmp_path):
    out = tmp_path / "gone.ome.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with BioWriter(out, X=40, Y=40, dtype="uint8", tile_size=16) as bw:
            bw.write(np.ones((20, 40), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_write_order_and_alignment(tmp_path_factory, data):
    version = data.draw(st.sampled_from(VERSIONS))
    height = data.draw(st.integers(1, 70))
    width = data.draw(st.integers(1, 70))
    n_c = data.draw(st.integers(1, 2))
    image = _random((height, width, 1, n_c), "uint16", seed=height * 100 + width)
    # cut the image into random blocks, written in a random order
    ys = sorted({0, height, *data.draw(st.lists(st.integers(1, max(1, height - 1)), max_size=3))})
    xs = sorted({0, width, *data.draw(st.lists(st.integers(1, max(1, width - 1)), max_size=3))})
    blocks = [(y0, y1, x0, x1, c) for y0, y1 in zip(ys, ys[1:], strict=False)
              for x0, x1 in zip(xs, xs[1:], strict=False)
              for c in range(n_c) if y1 > y0 and x1 > x0]
    order = data.draw(st.permutations(blocks))
    out = tmp_path_factory.mktemp("hyp") / "rand.ome.zarr"
    with BioWriter(out, ome_zarr_version=version, X=width, Y=height, C=n_c, dtype="uint16",
                   tile_size=16, max_workers=2) as bw:
        for y0, y1, x0, x1, c in order:
            bw.write(image[y0:y1, x0:x1, :, c:c + 1], X=x0, Y=y0, C=[c])
    np.testing.assert_array_equal(_zarr_5d(out)[..., 0], image)


def test_v2_chunk_is_plain_blosc(tmp_path):
    """A chunk file decodes with numcodecs alone, at the nested key the 0.4 layout asks for."""
    out = tmp_path / "enc.ome.zarr"
    image = _random((16, 16), "uint16")
    with BioWriter(out, image=image, ome_zarr_version="0.4", tile_size=16) as bw:
        bw.write(image)
    ours = (out / "0/0/0/0/0/0").read_bytes()
    decoded = np.frombuffer(numcodecs.Blosc().decode(ours), "<u2").reshape(16, 16)
    np.testing.assert_array_equal(decoded, image)


def test_time_increment_becomes_t_scale(tmp_path):
    meta = OmeMetadata.new(size_x=8, size_y=8, size_t=3, dtype="uint8")
    meta.images[0].pixels.element.set("TimeIncrement", "2.5")
    meta.images[0].pixels.element.set("TimeIncrementUnit", "ms")
    out = tmp_path / "t.ome.zarr"
    with BioWriter(out, metadata=meta, tile_size=16) as bw:
        bw.write(np.ones((8, 8, 1, 1, 3), np.uint8))
    (ms,) = _attrs(out, "0.5")["multiscales"]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "millisecond"}
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.5, 1.0, 1.0, 1.0,
                                                                          1.0]
