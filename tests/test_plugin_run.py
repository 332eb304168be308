"""End-to-end runs of ``python -m ome_converter`` on a generated mixed collection.

Inputs are read with tifffile, Pillow, zarr or omeio; outputs with tifffile and zarr directly,
so a mistake in omeio's own readers cannot hide a wrong conversion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from plugin_process import run_plugin

from omeio import BioReader, BioWriter

FAKE = "multi&sizeX=300&sizeY=200&sizeC=2&series=2.fake"
FAKE_STEM = FAKE[: -len(".fake")]
NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


def read_output(path: Path) -> tuple[np.ndarray, ET.Element]:
    """Pixels as ``(T, C, Z, Y, X)`` and the OME-XML root, read without omeio."""
    if path.name.endswith(".ome.zarr"):
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        ms = (attrs.get("ome") or attrs)["multiscales"][0]
        data = np.asarray(group[ms["datasets"][0]["path"]][...])
        xml = (path / "OME" / "METADATA.ome.xml").read_text(encoding="utf-8")
    else:
        with tifffile.TiffFile(path) as tf:
            assert tf.is_ome
            page = tf.pages[0]
            assert page.is_tiled and (page.tilelength, page.tilewidth) == (1024, 1024)
            xml = tf.ome_metadata
            root = ET.fromstring(xml)
            px = root.find("ome:Image/ome:Pixels", NS)
            sizes = [int(px.get(f"Size{a}")) for a in "TCZYX"]
            data = tf.asarray().reshape(sizes)
    return data, ET.fromstring(xml)


def pixels_of(root: ET.Element) -> ET.Element:
    images = root.findall("ome:Image", NS)
    assert len(images) == 1
    return images[0].find("ome:Pixels", NS)


# -- the mixed collection ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Six inputs of six kinds, and every output they must give: name -> (pixels, channel
    name, physical sizes)."""
    from PIL import Image

    inp = tmp_path_factory.mktemp("mixed") / "in"
    inp.mkdir()
    rng = np.random.default_rng(42)
    expected: dict[str, tuple[np.ndarray, str | None, dict]] = {}

    strip = rng.integers(0, 65535, (1100, 1300), dtype=np.uint16)
    tifffile.imwrite(inp / "strip.tif", strip, rowsperstrip=64)
    expected["strip"] = (strip, None, {})

    tiled = rng.standard_normal((900, 1500)).astype(np.float32)
    tifffile.imwrite(inp / "tiled.tif", tiled, tile=(256, 256), compression="zlib")
    expected["tiled"] = (tiled, None, {})

    stack = rng.integers(0, 255, (2, 3, 300, 400), dtype=np.uint8)  # C, Z, Y, X
    tifffile.imwrite(inp / "stack.ome.tif", stack, metadata={
        "axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5,
        "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "µm"})
    for c, cname in enumerate(["DAPI", "GFP"]):
        for z in range(3):
            expected[f"stack_c{c}_z{z}"] = (stack[c, z], cname, {"X": 0.5, "Y": 0.5, "Z": 2.0})

    photo = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
    Image.fromarray(photo, "RGB").save(inp / "photo.png")
    for c in range(3):
        expected[f"photo_c{c}"] = (photo[:, :, c], None, {})

    (inp / FAKE).touch()
    for s in range(2):
        with BioReader(inp / FAKE, series=s) as br:
            assert (br.Y, br.X, br.Z, br.C, br.T) == (200, 300, 1, 2, 1)
            for c in range(2):
                plane = br[:, :, 0, c, 0]
                assert plane.shape == (200, 300) and plane.any()
                expected[f"{FAKE_STEM}_c{c}_s{s}"] = (plane, None, {})

    store = rng.integers(0, 65535, (500, 600, 1, 1, 2), dtype=np.uint16)  # Y X Z C T
    with BioWriter(inp / "store.ome.zarr", image=store, channel_names=["ZC"],
                   physical_size_x=(0.25, "µm"), physical_size_y=(0.25, "µm")) as bw:
        bw.write(store)
    direct, _ = read_output(inp / "store.ome.zarr")  # the input, checked independently
    np.testing.assert_array_equal(direct[:, 0, 0], np.moveaxis(store[:, :, 0, 0, :], -1, 0))
    for t in range(2):
        expected[f"store_t{t}"] = (store[:, :, 0, 0, t], "ZC", {"X": 0.25, "Y": 0.25})
    return inp, expected


@pytest.mark.parametrize("ext", [".ome.tif", ".ome.zarr"])
def test_mixed_collection(collection, tmp_path, ext):
    inp, expected = collection
    out = tmp_path / "out"

    preview = run_plugin(inp, out, "--preview", env={"POLUS_IMG_EXT": ext, "NUM_WORKERS": "1"})
    assert preview.returncode == 0, preview.stderr
    assert sorted(os.listdir(out)) == ["preview.json"]  # converted nothing
    listed = json.loads((out / "preview.json").read_text())
    assert set(listed["outDir"]) == {stem + ext for stem in expected}
    assert len(listed["outDir"]) == len(expected) == 17

    real = run_plugin(inp, out, "--fileExtension", ext, env={"POLUS_LOG": "DEBUG"})
    assert real.returncode == 0, real.stderr
    written = set(os.listdir(out)) - {"preview.json"}
    assert written == set(listed["outDir"])

    for stem, (pixels, cname, physical) in expected.items():
        data, root = read_output(out / (stem + ext))
        assert data.dtype == pixels.dtype, stem
        assert data.shape == (1, 1, 1) + pixels.shape, stem
        np.testing.assert_array_equal(data[0, 0, 0], pixels, err_msg=stem)
        px = pixels_of(root)
        assert [px.get(f"Size{a}") for a in "XYZCT"] == [
            str(pixels.shape[1]), str(pixels.shape[0]), "1", "1", "1"]
        channels = px.findall("ome:Channel", NS)
        assert len(channels) == 1
        if cname is not None:
            assert channels[0].get("Name") == cname, stem
        for axis, value in physical.items():
            assert float(px.get(f"PhysicalSize{axis}")) == pytest.approx(value), (stem, axis)
            assert px.get(f"PhysicalSize{axis}Unit", "µm") == "µm"
    # the parent never had a JVM; workers were spawned, and reused from planning to conversion
    log = real.stderr
    assert re.search(r"parent process \d+ has a JVM: False", log), log
    assert "worker start method(s): spawn;" in log
    assert log.count("started a pool of") == 1
    assert "summary: 6 converted (17 outputs written), 0 failed, 0 skipped" in log
    assert not [n for n in os.listdir(out) if n.startswith(".")]

    if ext == ".ome.zarr":
        return
    again = run_plugin(inp, out, "--fileExtension", ext, "--numWorkers", "1")
    assert again.returncode == 0, again.stderr
    assert "skipped 17 complete outputs" in again.stderr
    assert "summary: 0 converted (0 outputs written), 0 failed, 6 skipped" in again.stderr


def test_series_layout(collection, tmp_path):
    inp, expected = collection
    out = tmp_path / "out"
    proc = run_plugin(inp, out, "--layout", "series", "--fileExtension", ".ome.zarr",
                      "--filePattern", "(stack|multi).*")
    assert proc.returncode == 0, proc.stderr
    names = {"stack.ome.zarr", f"{FAKE_STEM}_s0.ome.zarr", f"{FAKE_STEM}_s1.ome.zarr"}
    assert set(os.listdir(out)) == names
    data, root = read_output(out / "stack.ome.zarr")
    assert data.shape == (1, 2, 3, 300, 400)
    for c in range(2):
        for z in range(3):
            np.testing.assert_array_equal(data[0, c, z], expected[f"stack_c{c}_z{z}"][0])
    px = pixels_of(root)
    assert [ch.get("Name") for ch in px.findall("ome:Channel", NS)] == ["DAPI", "GFP"]
    assert float(px.get("PhysicalSizeZ")) == 2.0
    for s in range(2):
        data, _ = read_output(out / f"{FAKE_STEM}_s{s}.ome.zarr")
        assert data.shape == (1, 2, 1, 200, 300) and data.dtype == np.uint8
        for c in range(2):
            np.testing.assert_array_equal(data[0, c, 0], expected[f"{FAKE_STEM}_c{c}_s{s}"][0])


def test_name_collision_fails_before_converting(tmp_path):
    from PIL import Image

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    tifffile.imwrite(inp / "a.1.tif", np.zeros((10, 10), np.uint8))
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(inp / "a.1.png")
    tifffile.imwrite(inp / "b.tif", np.ones((10, 10), np.uint8))
    proc = run_plugin(inp, out)
    assert proc.returncode == 1
    line = [ln for ln in proc.stderr.splitlines() if "name collision" in ln]
    assert len(line) == 1 and "a.1.png" in line[0] and "a.1.tif" in line[0], proc.stderr
    assert "a.1.ome.tif" in line[0]
    assert not out.exists() or os.listdir(out) == []


def test_corrupt_files_fail_alone(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    rng = np.random.default_rng(7)
    good = rng.integers(0, 65535, (2100, 1500), dtype=np.uint16)
    tifffile.imwrite(inp / "good.tif", good, tile=(512, 512))
    (inp / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (inp / "empty.png").write_bytes(b"")
    # a valid header whose pixel data is cut: fails while converting, not while planning
    tifffile.imwrite(inp / "cut.tif", rng.integers(0, 255, (3000, 2000), dtype=np.uint8),
                     tile=(512, 512))
    size = (inp / "cut.tif").stat().st_size
    with open(inp / "cut.tif", "r+b") as fh:
        fh.truncate(size // 2)
    proc = run_plugin(inp, out)
    assert proc.returncode == 1
    failed = [ln for ln in proc.stderr.splitlines() if " - FAILED " in ln]
    assert sorted(re.search(r"FAILED (\S+):", ln).group(1) for ln in failed) == [
        "cut.tif", "empty.png", "garbage.tif"], proc.stderr
    assert "Traceback" not in proc.stderr  # tracebacks only at DEBUG
    assert os.listdir(out) == ["good.ome.tif"]  # no partial output, no debris
    data, _ = read_output(out / "good.ome.tif")
    np.testing.assert_array_equal(data[0, 0, 0], good)
    assert "summary: 1 converted (1 outputs written), 3 failed, 0 skipped" in proc.stderr

    debug = run_plugin(inp, out, env={"POLUS_LOG": "DEBUG"})
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "skipped 1 complete outputs" in debug.stderr


def _value(y0: int, y1: int, width: int) -> np.ndarray:
    """A pattern unique enough to catch misplaced rows, columns or tiles."""
    y = np.arange(y0, y1, dtype=np.uint32)[:, None]
    x = np.arange(width, dtype=np.uint32)[None, :]
    return ((y * 7919 + x * 104729 + (y // 1024) * 13) % 65521).astype(np.uint16)


def test_memory_stays_bounded_for_a_wide_tall_image(tmp_path):
    """20000 x 10240 uint16 (390 MiB a plane): the whole process tree stays under 400 MiB."""
    import time

    import psutil

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    height, width = 10240, 20000

    def tiles():
        for y in range(0, height, 1024):
            band = np.zeros((1024, 20480), np.uint16)
            band[:, :width] = _value(y, y + 1024, width)
            for x in range(0, width, 1024):
                yield band[:, x:x + 1024]

    tifffile.imwrite(inp / "wide.tif", tiles(), shape=(height, width), dtype=np.uint16,
                     tile=(1024, 1024))
    env = {k: v for k, v in os.environ.items() if k not in ("NUM_WORKERS", "NUM_THREADS")}
    proc = subprocess.Popen([sys.executable, "-m", "ome_converter", "--inpDir", str(inp),
                             "--outDir", str(out)], env=env, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    with tifffile.TiffFile(out / "wide.ome.tif") as tf:
        assert tf.pages[0].shape == (height, width) and tf.pages[0].dtype == np.uint16
        stored = zarr.open(tf.aszarr(), mode="r")
        for y in (0, 4 * 1024 + 512, height - 1024):  # whole bands, one across a tile edge
            np.testing.assert_array_equal(stored[y:y + 1024], _value(y, y + 1024, width))


def test_ancillary_series_are_skipped_and_logged(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    tissue = np.arange(300 * 400, dtype=np.uint16).reshape(300, 400)
    second = np.full((30, 40), 9, np.uint8)
    with tifffile.TiffWriter(inp / "slide.ome.tif", ome=True) as tw:
        tw.write(tissue, metadata={"Name": "tissue"})
        tw.write(np.ones((50, 60, 3), np.uint8), photometric="rgb", metadata={"Name": "label"})
        tw.write(np.full((40, 80), 2, np.uint8), metadata={"Name": "macro image"})
        tw.write(second, metadata={"Name": "second"})
    proc = run_plugin(inp, out)
    assert proc.returncode == 0, proc.stderr
    assert "skipping series 1 of slide.ome.tif: a label image" in proc.stderr
    assert "skipping series 2 of slide.ome.tif: a macro image" in proc.stderr
    assert sorted(os.listdir(out)) == ["slide_s0.ome.tif", "slide_s3.ome.tif"]
    for name, pixels in (("slide_s0.ome.tif", tissue), ("slide_s3.ome.tif", second)):
        data, _ = read_output(out / name)
        assert data.dtype == pixels.dtype
        np.testing.assert_array_equal(data[0, 0, 0], pixels)
