"""OME-Zarr reader on stores built by hand with zarr: axes subsets, levels, series, damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from omeio.backends.zarr_reader import ZarrReader
from omeio.errors import UnreadableFileError
from omeio.indexing import Region
from omeio.metadata import OmeMetadata, rgba_to_int
from omeio.reader import BioReader
from omeio.writer import BioWriter

FULL = {"write_empty_chunks": True}


def _axes(names: str, unit: str | None = "micrometer") -> list[dict]:
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    out = []
    for n in names:
        axis = {"name": n, "type": kinds[n]}
        if unit and kinds[n] == "space":
            axis["unit"] = unit
        out.append(axis)
    return out


def _image_group(path: Path, version: str, names: str, levels: list[np.ndarray],
                 scales: list[list[float]], paths: list[str] | None = None,
                 omero: dict | None = None, chunks: tuple[int, ...] | None = None,
                 unit: str | None = "micrometer", shards: tuple[int, ...] | None = None):
    """An OME-Zarr image group at ``path`` holding ``levels`` (numpy arrays in axis order)."""
    paths = paths or [str(i) for i in range(len(levels))]
    ms = {"name": "hand", "axes": _axes(names, unit), "datasets": [
        {"path": p, "coordinateTransformations": [{"type": "scale", "scale": s}]}
        for p, s in zip(paths, scales, strict=True)]}
    attrs: dict = {"multiscales": [ms]}
    if omero is not None:
        attrs["omero"] = omero
    if version == "0.5":
        group = zarr.create_group(str(path), zarr_format=3, overwrite=True,
                                  attributes={"ome": {"version": "0.5", **attrs}})
    else:
        ms["version"] = "0.4"
        group = zarr.create_group(str(path), zarr_format=2, overwrite=True, attributes=attrs)
    for p, data in zip(paths, levels, strict=True):
        extra = {"dimension_names": list(names)} if version == "0.5" else {
            "chunk_key_encoding": {"name": "v2", "separator": "/"}}
        if shards is not None:
            extra["shards"] = shards
        arr = group.create_array(p, shape=data.shape, dtype=data.dtype,
                                 chunks=chunks or tuple(min(s, 16) for s in data.shape),
                                 config=FULL, **extra)
        arr[...] = data
    return group


def _data(shape, dtype="uint16", seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(dtype)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_yx_only(tmp_path, version):
    data = _data((37, 29))
    _image_group(tmp_path / "yx.zarr", version, "yx", [data], [[0.5, 0.25]])
    with BioReader(tmp_path / "yx.zarr") as br:
        assert br.backend_name == "zarr"
        assert (br.Y, br.X, br.Z, br.C, br.T) == (37, 29, 1, 1, 1)
        assert br.dtype == np.uint16
        np.testing.assert_array_equal(br[:], data)
        np.testing.assert_array_equal(br[3:30:4, 1:28:3], data[3:30:4, 1:28:3])
        assert br.physical_size_y == (0.5, "µm")
        assert br.physical_size_x == (0.25, "µm")
        assert br.physical_size_z == (None, None)
    assert BioReader.image_size(tmp_path / "yx.zarr") == (29, 37)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_cyx_with_omero(tmp_path, version):
    data = _data((3, 40, 50), "float32", seed=1)
    omero = {"channels": [
        {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 1, "min": 0, "max": 1}},
        {"label": "GFP", "color": "00FF00", "window": {"start": 0, "end": 1, "min": 0, "max": 1}},
        {"label": "RFP", "color": "FF0000", "window": {"start": 0, "end": 1, "min": 0, "max": 1}},
    ]}
    _image_group(tmp_path / "cyx.zarr", version, "cyx", [data], [[1, 0.3, 0.3]], omero=omero)
    with BioReader(tmp_path / "cyx.zarr") as br:
        assert (br.Y, br.X, br.Z, br.C, br.T) == (40, 50, 1, 3, 1)
        assert br.channel_names == ["DAPI", "GFP", "RFP"]
        colors = [c.color for c in br.metadata.images[0].pixels.channels]
        assert colors == [rgba_to_int(0, 0, 255), rgba_to_int(0, 255, 0), rgba_to_int(255, 0, 0)]
        np.testing.assert_array_equal(br[:, :, 0, :], data.transpose(1, 2, 0)[:, :, None])
        np.testing.assert_array_equal(br[:, :, 0, [2, 0]],
                                      data[[2, 0]].transpose(1, 2, 0)[:, :, None])


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_tzyx(tmp_path, version):
    """Four axes without a channel axis: C is 1, lists in Z and T pick planes in any order."""
    data = _data((4, 3, 20, 33), seed=2)
    _image_group(tmp_path / "tzyx.zarr", version, "tzyx", [data], [[2.0, 1.5, 0.5, 0.5]])
    with BioReader(tmp_path / "tzyx.zarr", max_workers=2) as br:
        assert (br.Y, br.X, br.Z, br.C, br.T) == (20, 33, 3, 1, 4)
        np.testing.assert_array_equal(br.read(), data.transpose(2, 3, 1, 0)[:, :, :, None, :])
        region = Region(range(20), range(33), (2, 0), (0,), (3, 1))
        np.testing.assert_array_equal(br.read_region(region),
                                      data[[3, 1]][:, [2, 0]].transpose(2, 3, 1, 0)[:, :, :, None])
        assert br.physical_size_z == (1.5, "µm")


def test_swapped_yx_axes_are_mapped_by_name(tmp_path):
    data = _data((33, 20), seed=3)  # stored x, y
    group = zarr.create_group(str(tmp_path / "xy.zarr"), zarr_format=3, attributes={"ome": {
        "version": "0.5", "multiscales": [{"axes": _axes("xy"), "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale",
                                                         "scale": [0.1, 0.2]}]}]}]}})
    group.create_array("0", data=data, chunks=(16, 16), dimension_names=["x", "y"], config=FULL)
    with BioReader(tmp_path / "xy.zarr") as br:
        assert (br.Y, br.X) == (20, 33)
        np.testing.assert_array_equal(br[:], data.T)
        assert br.physical_size_x == (0.1, "µm") and br.physical_size_y == (0.2, "µm")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_levels_and_dataset_paths(tmp_path, version):
    full = _data((2, 64, 48), seed=4)
    levels = [full, full[:, ::2, ::2].copy(), full[:, ::4, ::4].copy()]
    _image_group(tmp_path / "pyr.zarr", version, "cyx", levels,
                 [[1, 0.5, 0.5], [1, 1.0, 1.0], [1, 2.0, 2.0]], paths=["s0", "s1", "s2"])
    for level, expected in enumerate(levels):
        with BioReader(tmp_path / "pyr.zarr", level=level) as br:
            assert br.level_count == 3
            assert (br.Y, br.X, br.C) == expected.shape[1:] + (2,)
            np.testing.assert_array_equal(br[:, :, 0, :], expected.transpose(1, 2, 0)[:, :, None])
            assert br.physical_size_x == (0.5 * 2 ** level, "µm")
    with pytest.raises(IndexError):
        BioReader(tmp_path / "pyr.zarr", level=3)


def _bf2raw(tmp_path: Path, version: str, listed: bool) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path / "b2r.zarr"
    fmt = 3 if version == "0.5" else 2
    attrs = {"bioformats2raw.layout": 3}
    zarr.create_group(str(root), zarr_format=fmt,
                      attributes={"ome": {"version": "0.5", **attrs}} if fmt == 3 else attrs)
    series = [_data((1, 2, 1, 30, 40), seed=5), _data((1, 1, 3, 17, 19), "uint8", seed=6)]
    for i, data in enumerate(series):
        _image_group(root / str(i), version, "tczyx", [data], [[1, 1, 1, 0.5, 0.5]])
    ome_attrs = {"series": ["0", "1"]} if listed else {}
    zarr.create_group(str(root / "OME"), zarr_format=fmt,
                      attributes={"ome": {"version": "0.5", **ome_attrs}} if fmt == 3
                      else ome_attrs)
    meta = OmeMetadata.new(size_x=40, size_y=30, size_c=2, dtype="uint16",
                           channel_names=["a", "b"], name="first")
    second = OmeMetadata.new(size_x=19, size_y=17, size_z=3, dtype="uint8", name="label image")
    element = second.images[0].element
    element.set("ID", "Image:1")
    meta.root.append(element)
    (root / "OME" / "METADATA.ome.xml").write_text(meta.to_xml(), encoding="utf-8")
    return root, series


@pytest.mark.parametrize("version,listed", [("0.5", True), ("0.4", True), ("0.4", False)])
def test_bioformats2raw_series(tmp_path, version, listed):
    root, series = _bf2raw(tmp_path, version, listed)
    for s, data in enumerate(series):
        with BioReader(root, series=s) as br:
            assert br.series_count == 2
            assert br.dtype == data.dtype
            assert (br.T, br.C, br.Z, br.Y, br.X) == data.shape
            region = Region(range(br.Y), range(br.X), tuple(range(br.Z)), tuple(range(br.C)),
                            (0,))
            np.testing.assert_array_equal(br.read_region(region), data.transpose(3, 4, 2, 1, 0))
            assert br.metadata.images[0].name == ("first", "label image")[s]
            assert br.series_kind() == ("image", "label")[s]
    with BioReader(root) as br:
        assert br.channel_names == ["a", "b"]
    with pytest.raises(IndexError):
        BioReader(root, series=2)


def test_xml_sizes_follow_the_array(tmp_path, caplog):
    root, _ = _bf2raw(tmp_path, "0.5", True)
    meta = OmeMetadata.from_xml((root / "OME/METADATA.ome.xml").read_text())
    meta.images[0].pixels.size_x = 999  # wrong on purpose
    (root / "OME/METADATA.ome.xml").write_text(meta.to_xml())
    with BioReader(root) as br:
        pixels = br.metadata.images[0].pixels
        assert (pixels.size_x, pixels.size_y, pixels.size_c) == (40, 30, 2)
        assert br.channel_names == ["a", "b"]
    assert "using the array's" in caplog.text


def test_plain_array_store(tmp_path):
    data = _data((3, 21, 35), seed=7)
    zarr.create_array(str(tmp_path / "plain.zarr"), data=data, chunks=(1, 8, 8), config=FULL)
    with BioReader(tmp_path / "plain.zarr") as br:
        assert (br.Y, br.X, br.Z, br.C, br.T) == (21, 35, 3, 1, 1)
        np.testing.assert_array_equal(br[:], data.transpose(1, 2, 0))
    assert ZarrReader.image_size(tmp_path / "plain.zarr") == (35, 21)


def test_sharded_array(tmp_path):
    data = _data((1, 50, 70), seed=8)
    _image_group(tmp_path / "sh.zarr", "0.5", "cyx", [data], [[1, 1, 1]], chunks=(1, 8, 8),
                 shards=(1, 32, 32))
    with BioReader(tmp_path / "sh.zarr", max_workers=2) as br:
        np.testing.assert_array_equal(br[:], data[0])
    shutil.rmtree(tmp_path / "sh.zarr" / "0" / "c" / "0" / "1")  # shard row 1
    with BioReader(tmp_path / "sh.zarr") as br:
        np.testing.assert_array_equal(br[:32, :], data[0, :32])
        with pytest.raises(UnreadableFileError, match="missing chunk 0/c/0/1/0"):
            br[30:40, :10]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_missing_chunk_raises(tmp_path, version):
    out = tmp_path / "m.ome.zarr"
    image = _data((40, 40), seed=9)
    with BioWriter(out, image=image, ome_zarr_version=version, tile_size=16) as bw:
        bw.write(image)
    (out / "0" / ("c/0/0/0/1/2" if version == "0.5" else "0/0/0/1/2")).unlink()
    with BioReader(out) as br:
        np.testing.assert_array_equal(br[:16, :], image[:16])
        np.testing.assert_array_equal(br[16:32, :32], image[16:32, :32])
        with pytest.raises(UnreadableFileError, match=r"missing chunk .*1/2") as err:
            br[20:21, 35:36]
        assert err.value.path == out
        with pytest.raises(UnreadableFileError, match="missing chunk"):
            br.read()
    with BioReader(out, max_workers=2) as br:
        with pytest.raises(UnreadableFileError, match="missing chunk"):
            br.read()


def test_broken_metadata_json(tmp_path):
    out = tmp_path / "b.ome.zarr"
    with BioWriter(out, X=8, Y=8, dtype="uint8", tile_size=16) as bw:
        bw.write(np.ones((8, 8), np.uint8))
    (out / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    with pytest.raises(UnreadableFileError, match="broken Zarr metadata zarr.json"):
        BioReader(out)
    assert BioReader.image_size(out) == (-1, -1)


def test_broken_v2_array_metadata(tmp_path):
    out = tmp_path / "b2.ome.zarr"
    with BioWriter(out, X=8, Y=8, dtype="uint8", ome_zarr_version="0.4", tile_size=16) as bw:
        bw.write(np.ones((8, 8), np.uint8))
    (out / "0" / ".zarray").write_text("[not json")
    with pytest.raises(UnreadableFileError, match=r"broken Zarr metadata 0/\.zarray"):
        BioReader(out)


def test_not_ome_and_unknown_axes(tmp_path):
    zarr.create_group(str(tmp_path / "g.zarr"), zarr_format=3, attributes={"foo": 1})
    with pytest.raises(UnreadableFileError, match="without OME-Zarr multiscales"):
        BioReader(tmp_path / "g.zarr")
    data = _data((2, 10, 10))
    group = zarr.create_group(str(tmp_path / "q.zarr"), zarr_format=3, attributes={"ome": {
        "version": "0.5", "multiscales": [{"axes": [{"name": "q"}, *_axes("yx")], "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale",
                                                         "scale": [1, 1, 1]}]}]}]}})
    group.create_array("0", data=data, config=FULL)
    with pytest.raises(UnreadableFileError, match="axis 'q' of size 2"):
        BioReader(tmp_path / "q.zarr")


def test_unknown_unit_axis_of_size_one_and_units(tmp_path):
    """An extra axis of size 1 is dropped; unknown units give no physical size."""
    data = _data((1, 12, 14))
    group = zarr.create_group(str(tmp_path / "u.zarr"), zarr_format=3, attributes={"ome": {
        "version": "0.5", "multiscales": [{"axes": [
            {"name": "q"}, {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "furlong"}], "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale",
                                                         "scale": [1, 3, 4]}]}]}]}})
    group.create_array("0", data=data, config=FULL)
    with BioReader(tmp_path / "u.zarr") as br:
        assert (br.Y, br.X, br.Z, br.C, br.T) == (12, 14, 1, 1, 1)
        np.testing.assert_array_equal(br[:], data[0])
        assert br.physical_size_y == (3.0, "nm")
        assert br.physical_size_x == (None, None)


def test_can_read(tmp_path):
    assert not ZarrReader.can_read(tmp_path)
    (tmp_path / "zarr.json").write_text("{}")
    assert ZarrReader.can_read(tmp_path)
    assert not ZarrReader.can_read(tmp_path / "zarr.json")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_own_output_metadata_round_trip(tmp_path, version):
    """What the writer puts in OME/METADATA.ome.xml comes back, with MetadataOnly storage."""
    out = tmp_path / "rt.ome.zarr"
    image = _data((30, 1100, 2, 2), seed=10)
    with BioWriter(out, image=image, ome_zarr_version=version, channel_names=["x", "y"],
                   physical_size_x=(0.7, "µm"), physical_size_z=(3.0, "µm")) as bw:
        bw.write(image)
    with BioReader(out, max_workers=2) as br:
        assert br.channel_names == ["x", "y"]
        assert br.physical_size_x == (0.7, "µm") and br.physical_size_z == (3.0, "µm")
        assert br.metadata.images[0].name == "rt.ome.zarr"
        np.testing.assert_array_equal(br[:], image)
        np.testing.assert_array_equal(br[5:25:2, 1000:1090:3, 1, [1, 0]],
                                      image[5:25:2, 1000:1090:3, 1:2, [1, 0]])


def test_time_unit_and_scale_synthesised(tmp_path):
    data = _data((2, 9, 11))
    group = zarr.create_group(str(tmp_path / "t.zarr"), zarr_format=2, attributes={
        "multiscales": [{"version": "0.4", "axes": [
            {"name": "t", "type": "time", "unit": "millisecond"}, *_axes("yx", "micron")],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [2.5, 0.5, 0.5]}]}],
            "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 3.0]}]}]})
    group.create_array("0", data=data, config=FULL)
    with BioReader(tmp_path / "t.zarr") as br:
        pixels = br.metadata.images[0].pixels
        assert pixels.element.get("TimeIncrement") == "5.0"
        assert pixels.element.get("TimeIncrementUnit") == "ms"
        assert br.physical_size_y == (0.5, "µm")  # "micron" is read as µm
        assert br.physical_size_x == (1.5, "µm")  # the multiscale-wide scale applies too
        assert (br.Y, br.X, br.T) == (9, 11, 2)
