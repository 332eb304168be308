"""The Bio-Formats backend against independent decodes: the fake reader's documented pattern,
Bio-Formats' raw API driven here by plane number, Pillow, tifffile and the TIFF backend.

A real JVM runs in this process; checks that need a JVM-less or forked process use subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from omeio import BioReader, UnreadableFileError, java
from omeio.backends import bioformats_reader
from omeio.backends.bioformats_reader import BioformatsReader
from omeio.indexing import Region
from omeio.jar import find_jar

OME_NAMES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4",
             "uint32": "u4", "float": "f4", "double": "f8", "bit": "u1"}


def fake(folder: Path, name: str, **keys) -> Path:
    """An empty ``.fake`` file: Bio-Formats makes the image from the keys in its name."""
    path = folder / (name + "".join(f"&{k}={v}" for k, v in keys.items()) + ".fake")
    path.touch()
    return path


def whole(reader) -> np.ndarray:
    y, x, z, c, t = reader.shape
    return reader.read_region(Region(range(y), range(x), tuple(range(z)), tuple(range(c)),
                                     tuple(range(t))))


def raw_api(path: Path, series: int = 0, level: int = 0) -> np.ndarray:
    """The whole series/level as YXZCT, decoded here plane number by plane number."""
    from jpype import JClass

    r = JClass("loci.formats.ImageReader")()
    r.setFlattenedResolutions(False)
    r.setId(str(path))
    try:
        r.setSeries(series)
        r.setResolution(level)
        name = str(JClass("loci.formats.FormatTools").getPixelTypeString(r.getPixelType()))
        dt = np.dtype(OME_NAMES[name]).newbyteorder("<" if r.isLittleEndian() else ">")
        rgb, h, w = r.getRGBChannelCount(), r.getSizeY(), r.getSizeX()
        out = np.zeros((h, w, r.getSizeZ(), r.getSizeC(), r.getSizeT()), dt.newbyteorder("="))
        for no in range(r.getImageCount()):
            z, ce, t = (int(v) for v in r.getZCTCoords(no))
            data = np.frombuffer(bytes(r.openBytes(no)), dt)
            samples = (data.reshape(h, w, rgb).transpose(2, 0, 1) if r.isInterleaved()
                       else data.reshape(rgb, h, w))
            for k in range(rgb):
                out[:, :, z, ce * rgb + k, t] = samples[k]
        return out
    finally:
        r.close()


def fake_expected(shape, dtype, series: int = 0) -> np.ndarray:
    """The fake reader's pattern: rows from 10 down are a gradient in X (from the type's minimum,
    wrapping); the first 10 rows hold 10-pixel blocks with series, plane number, Z, C and T
    (dimension order XYZCT), then the gradient again."""
    h, w, nz, nc, nt = shape
    dt = np.dtype(dtype)
    x = np.arange(w, dtype=np.int64)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        row = (x % (int(info.max) - int(info.min) + 1) + int(info.min)).astype(dt)
    else:
        row = x.astype(dt)
    out = np.empty(shape, dt)
    out[...] = row[None, :, None, None, None]
    for z in range(nz):
        for c in range(nc):
            for t in range(nt):
                no = z + nz * (c + nc * t)
                for block, value in enumerate((series, no, z, c, t)):
                    out[:10, block * 10:block * 10 + 10, z, c, t] = value
    return out


# -- fake images: shapes, series, levels, types --------------------------------------------------

def test_series_and_levels(tmp_path):
    path = fake(tmp_path, "img", sizeX=300, sizeY=200, sizeZ=3, sizeC=2, sizeT=2,
                pixelType="uint16", series=2, resolutions=3)
    sizes = [(200, 300), (100, 150), (50, 75)]
    for series in range(2):
        for level, (h, w) in enumerate(sizes):
            with BioReader(path, backend="bioformats", series=series, level=level) as br:
                assert br.backend_name == "bioformats"
                assert (br.series_count, br.level_count) == (2, 3)
                assert (br.Y, br.X, br.Z, br.C, br.T) == (h, w, 3, 2, 2)
                assert br.dtype == np.uint16
                assert br.series_kind() == "image"
                data = br[:]
                assert data.shape == (h, w, 3, 2, 2) and data.dtype == np.uint16
                np.testing.assert_array_equal(data, fake_expected((h, w, 3, 2, 2), np.uint16, series))
                np.testing.assert_array_equal(data, raw_api(path, series, level))
                meta = br.metadata.images[0].pixels
                assert (meta.size_y, meta.size_x, meta.size_z, meta.size_c, meta.size_t) == \
                    (h, w, 3, 2, 2)
    with BioReader(path, backend="bioformats") as br:
        assert len(br.file_metadata.images) == 2


def test_out_of_range_series_and_level(tmp_path):
    path = fake(tmp_path, "img", sizeX=64, sizeY=32, series=2, resolutions=2)
    with pytest.raises(IndexError, match="series 2"):
        BioReader(path, backend="bioformats", series=2)
    with pytest.raises(IndexError, match="level 2"):
        BioReader(path, backend="bioformats", level=2)


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("ptype", list(OME_NAMES))
def test_pixel_types(tmp_path, ptype, little):
    path = fake(tmp_path, "t", sizeX=300, sizeY=24, sizeZ=2, pixelType=ptype,
                little=str(little).lower())
    expected_dtype = np.dtype(OME_NAMES[ptype])
    with BioReader(path, backend="bioformats") as br:
        assert br.dtype == expected_dtype
        assert br.metadata.images[0].pixels.type == ptype
        data = br.read()
        assert data.shape == (24, 300, 2) and data.dtype == expected_dtype
        assert data.dtype.isnative
        np.testing.assert_array_equal(data, fake_expected((24, 300, 2, 1, 1), expected_dtype)[..., 0, 0])
        np.testing.assert_array_equal(data, raw_api(path)[..., 0, 0])


@pytest.mark.parametrize("interleaved", [False, True])
def test_rgb_samples_become_channels(tmp_path, interleaved):
    path = fake(tmp_path, "rgb", sizeX=70, sizeY=30, sizeC=6, rgb=3, pixelType="int16",
                little="false", interleaved=str(interleaved).lower())
    with BioReader(path, backend="bioformats") as br:
        assert br.shape == (30, 70, 1, 6) and br.dtype == np.int16
        pixels = br.metadata.images[0].pixels
        assert pixels.size_c == 6
        assert [ch.samples_per_pixel for ch in pixels.channels] == [1] * 6
        data = whole(br._backend)
        np.testing.assert_array_equal(data, raw_api(path))
        # rows 10+: the gradient from int16's minimum; block 3 of the first rows: the channel
        np.testing.assert_array_equal(data[10:, :, 0, 0, 0],
                                      np.broadcast_to(np.arange(70) - 32768, (20, 70)))
        assert [int(data[0, 35, 0, c, 0]) for c in range(6)] == [0, 1, 2, 3, 4, 5]
        # one sample alone, a subset of channels in any order, and read_plane directly
        np.testing.assert_array_equal(br[:, :, 0, [4, 1]], data[:, :, 0:1, [4, 1], 0])
        np.testing.assert_array_equal(br._backend.read_plane(0, 5, 0, 3, 17, 9, 61),
                                      data[3:17, 9:61, 0, 5, 0])


def test_indexed_color_reads_raw_indices(tmp_path):
    path = fake(tmp_path, "idx", sizeX=64, sizeY=16, indexed="true", pixelType="uint8")
    with BioReader(path, backend="bioformats") as br:
        assert br.shape == (16, 64) and br.C == 1
        np.testing.assert_array_equal(br[:][..., None, None, None], raw_api(path))


def test_thumbnail_series_kind(tmp_path):
    path = fake(tmp_path, "th", sizeX=32, sizeY=32, thumbnail="true")
    with BioReader(path, backend="bioformats") as br:
        assert br.series_kind(0) == "thumbnail"
        with pytest.raises(IndexError):
            br.series_kind(1)


def test_metadata_carried(tmp_path, ome_schema):
    ini = tmp_path / "meta.fake.ini"
    ini.write_text("sizeX=40\nsizeY=20\nsizeC=2\nphysicalSizeX=0.5\nphysicalSizeY=0.25\n"
                   "physicalSizeZ=2 nm\ncolor_1=16711935\n\n[series_0]\n"
                   "ChannelName_0=DAPI\nChannelName_1=GFP\n")
    with BioReader(ini, backend="bioformats") as br:
        assert br.channel_names == ["DAPI", "GFP"]
        assert br.physical_size_x == (0.5, "µm")
        assert br.physical_size_y == (0.25, "µm")
        assert br.physical_size_z == (2.0, "nm")
        assert br.metadata.images[0].pixels.channels[1].color == 16711935
        meta = br.metadata.copy()
    meta.images[0].pixels.set_metadata_only()
    ome_schema.validate(meta.to_xml())


# -- regions, threads, splitting -----------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 3])
def test_regions_match_whole_read(tmp_path, workers):
    path = fake(tmp_path, "reg", sizeX=130, sizeY=90, sizeZ=3, sizeC=6, rgb=3, sizeT=2)
    reference = raw_api(path)
    with BioReader(path, backend="bioformats", max_workers=workers) as br:
        np.testing.assert_array_equal(br[:], reference)
        np.testing.assert_array_equal(br[5:77:3, 11:120:7, [2, 0], [5, 0, 3], 1],
                                      reference[5:77:3, 11:120:7][:, :, [2, 0]][:, :, :, [5, 0, 3], 1])
        np.testing.assert_array_equal(br.read(X=(40, 41), Y=(0, 90), Z=(1, 3), C=[2], T=[0]),
                                      reference[:, 40:41, 1:3, 2:3, 0:1][..., 0, 0])
        empty = br._backend.read_region(Region(range(4, 4), range(0, 5), (0,), (0,), (0,)))
        assert empty.shape == (0, 5, 1, 1, 1)
        assert br._backend._created <= workers


def test_concurrent_threads_share_a_bounded_pool(tmp_path):
    path = fake(tmp_path, "conc", sizeX=256, sizeY=128, sizeZ=4, sizeC=2, pixelType="uint16")
    reference = raw_api(path)
    reader = BioformatsReader(path, max_workers=2)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(8):
                z, c = (k + i) % 4, i % 2
                y0 = (k * 13) % 100
                got = reader.read_plane(z, c, 0, y0, y0 + 28, 7, 250)
                np.testing.assert_array_equal(got, reference[y0:y0 + 28, 7:250, z, c, 0])
        except BaseException as exc:  # noqa: B036 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert 1 <= reader._created <= 2
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_plane(0, 0, 0, 0, 1, 0, 1)


@pytest.mark.parametrize("limit", [5000, 100])
def test_large_requests_are_split(tmp_path, monkeypatch, limit):
    """Requests over the Java array limit go in pieces (the limit is lowered here to see it)."""
    path = fake(tmp_path, "split", sizeX=90, sizeY=70, sizeC=3, rgb=3, pixelType="uint16",
                interleaved="true")
    reference = raw_api(path)
    calls = []
    original = BioformatsReader._decode

    def counting(self, jbytes, h, w):
        assert len(jbytes) <= limit
        calls.append((h, w))
        return original(self, jbytes, h, w)

    monkeypatch.setattr(bioformats_reader, "MAX_CALL_BYTES", limit)
    monkeypatch.setattr(BioformatsReader, "_decode", counting)
    with BioReader(path, backend="bioformats", max_workers=1) as br:
        np.testing.assert_array_equal(br[3:69, 1:88], reference[3:69, 1:88, :, :, 0])
    assert len(calls) > 1
    if limit < 88 * 6:
        assert max(w for _, w in calls) < 88  # rows too long: split in X as well


def test_memo_makes_reopening_cheap(tmp_path, monkeypatch):
    """A slow setId (the fake reader sleeps 300 ms) leaves a memo; the next open loads it."""
    monkeypatch.setenv("BIOFORMATS_JAR", str(find_jar()))
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "cache"))
    path = fake(tmp_path, "slow", sizeX=40, sizeY=30, sizeZ=2, sleepInitFile=300)
    first = BioformatsReader(path, max_workers=2)
    assert first._idle[0].isSavedToMemo()
    memos = list((tmp_path / "cache" / "bfmemo").rglob("*.bfmemo"))
    assert [m.name for m in memos] == [f".{path.name}.bfmemo"]
    again = BioformatsReader(path, max_workers=2)
    assert again._idle[0].isLoadedFromMemo()
    region = Region(range(30), range(40), (0, 1), (0,), (0,))
    with ThreadPoolExecutor(2) as pool:
        np.testing.assert_array_equal(again.read_region(region, pool), raw_api(path))
        np.testing.assert_array_equal(first.read_region(region, pool), raw_api(path))
    assert again.metadata.to_xml().replace(again.metadata.root.get("UUID"), "") == \
        first.metadata.to_xml().replace(first.metadata.root.get("UUID"), "")
    first.close()
    again.close()


# -- files written by other libraries ------------------------------------------------------------

def _gradient(h, w, dtype=np.uint8, scale=3):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx * scale + yy * 7) % (np.iinfo(dtype).max + 1)).astype(dtype)


def test_png_gray_rgb_16bit_and_palette(tmp_path):
    gray = _gradient(61, 83)
    rgb = np.stack([gray, 255 - gray, _gradient(61, 83, scale=11)], axis=-1)
    deep = _gradient(45, 67, np.uint16, scale=997)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(deep).save(tmp_path / "deep.png")
    palette = Image.fromarray((_gradient(20, 30) % 7).astype(np.uint8), mode="P")
    palette.putpalette([v for i in range(256) for v in (i * 30 % 256, 255 - i, i * 7 % 256)])
    palette.save(tmp_path / "palette.png")
    cases = {"gray.png": (gray, (61, 83)), "rgb.png": (rgb, (61, 83, 1, 3)),
             "deep.png": (deep, (45, 67)), "palette.png": (None, (20, 30))}
    for name, (array, shape) in cases.items():
        decoded = np.asarray(Image.open(tmp_path / name))  # palette: Pillow's raw indices
        if array is not None:
            np.testing.assert_array_equal(decoded, array)
        with BioReader(tmp_path / name, backend="bioformats") as br:  # PNG: codecs by default
            assert br.backend_name == "bioformats"
            assert br.shape == shape and br.dtype == decoded.dtype
            data = br[:]
            np.testing.assert_array_equal(data.reshape(decoded.shape), decoded)
    with BioReader(tmp_path / "rgb.png", backend="bioformats") as br:
        assert br.metadata.images[0].pixels.size_c == 3
        assert [ch.color for ch in br.metadata.images[0].pixels.channels] == \
            [-16776961, 16711935, 65535]


@pytest.mark.parametrize("subsampling", [0, 2])
def test_jpeg_matches_pillow(tmp_path, subsampling):
    """Java's and Pillow's JPEG decoders agree exactly here (both IJG integer IDCT, fancy
    upsampling); if a decoder update ever breaks that, this test says so."""
    gray = _gradient(61, 83)
    rgb = np.stack([gray, 255 - gray, _gradient(61, 83, scale=11)], axis=-1)
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=90)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=90, subsampling=subsampling)
    for name, shape in (("gray.jpg", (61, 83)), ("rgb.jpg", (61, 83, 1, 3))):
        decoded = np.asarray(Image.open(tmp_path / name))
        with BioReader(tmp_path / name, backend="bioformats") as br:
            assert br.shape == shape and br.dtype == np.uint8
            np.testing.assert_array_equal(br[:].reshape(decoded.shape), decoded)


def test_strip_tiff_both_backends(tmp_path):
    gray = _gradient(301, 257, np.uint16, scale=331)
    rgb = np.stack([_gradient(50, 70), _gradient(50, 70, scale=5), _gradient(50, 70, scale=9)], -1)
    tifffile.imwrite(tmp_path / "gray.tif", gray, rowsperstrip=7)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, rowsperstrip=3, photometric="rgb")
    for name, array, shape in (("gray.tif", gray, (301, 257)), ("rgb.tif", rgb, (50, 70, 1, 3))):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / name), array)
        with BioReader(tmp_path / name, backend="bioformats") as bf, \
                BioReader(tmp_path / name, backend="tiff") as tf:
            assert bf.shape == tf.shape == shape and bf.dtype == tf.dtype == array.dtype
            np.testing.assert_array_equal(bf[:].reshape(array.shape), array)
            np.testing.assert_array_equal(bf[:], tf[:])
            np.testing.assert_array_equal(bf[10:40, 5:60], tf[10:40, 5:60])


def test_ome_tiff_series_names_give_kinds(tmp_path):
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(_gradient(40, 50), metadata={"Name": "main", "axes": "YX"})
        tw.write(_gradient(20, 30), metadata={"Name": "label image", "axes": "YX"})
        tw.write(_gradient(10, 15), metadata={"Name": "Macro", "axes": "YX"})
    with BioReader(path, backend="bioformats", series=1) as br:
        assert br.series_count == 3
        assert [br.series_kind(s) for s in range(3)] == ["image", "label", "macro"]
        assert br.shape == (20, 30)
        np.testing.assert_array_equal(br[:], _gradient(20, 30))


# -- errors --------------------------------------------------------------------------------------

def test_garbage_file_is_unreadable(tmp_path):
    path = tmp_path / "noise.xyz"
    path.write_bytes(b"this is not an image at all\n" * 20)
    with pytest.raises(UnreadableFileError) as info:
        BioReader(path)
    assert info.value.path == path
    assert "noise.xyz" in str(info.value)
    assert "UnknownFormatException" in info.value.reason
    assert str(tmp_path) not in info.value.reason  # short: the name, not the whole path twice


def test_broken_png_is_unreadable(tmp_path):
    path = tmp_path / "broken.png"
    Image.fromarray(_gradient(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(UnreadableFileError) as info:
        BioReader(path, backend="bioformats").read()
    assert info.value.path == path and info.value.reason.startswith("Bio-Formats: ")


def test_can_read_is_any_regular_file(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"x")
    assert BioformatsReader.can_read(tmp_path / "f.bin")
    assert not BioformatsReader.can_read(tmp_path)
    assert not BioformatsReader.can_read(tmp_path / "missing")
    assert BioformatsReader.image_size(tmp_path / "f.bin") == (-1, -1)


def _run(code: str, env_changes: dict[str, str | None], timeout: float = 120):
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


_EXPECT_JAVA_ERROR = """
import omeio
try:
    omeio.start()
except omeio.JavaUnavailableError as exc:
    print("ERROR:", exc)
else:
    print("STARTED")
"""


def test_missing_jar_says_what_to_run(tmp_path):
    missing = tmp_path / "nowhere" / "bioformats_package.jar"
    done = _run(_EXPECT_JAVA_ERROR, {"BIOFORMATS_JAR": str(missing)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ERROR:")
    assert str(missing) in done.stdout and "omeio-fetch-jar" in done.stdout
    done = _run(_EXPECT_JAVA_ERROR, {"BIOFORMATS_JAR": None, "OMEIO_CACHE_DIR": str(tmp_path)})
    assert done.stdout.startswith("ERROR:") and "omeio-fetch-jar" in done.stdout
    assert str(tmp_path / "bioformats_package.jar") in done.stdout


def test_missing_java_says_what_to_install(tmp_path):
    done = _run(_EXPECT_JAVA_ERROR, {"JAVA_HOME": str(tmp_path)})
    assert done.stdout.startswith("ERROR:"), done.stdout + done.stderr
    assert f"JAVA_HOME={tmp_path}" in done.stdout
    assert "apt-get install openjdk-17-jre-headless" in done.stdout
    # no JAVA_HOME, no java on PATH and nothing in the usual places (JPype's search fails)
    code = textwrap.dedent("""
        import jpype
        def nothing():
            raise jpype.JVMNotFoundException("none", "none", "none")
        jpype.getDefaultJVMPath = nothing
    """) + _EXPECT_JAVA_ERROR
    done = _run(code, {"JAVA_HOME": None, "PATH": str(tmp_path)})
    assert done.stdout.startswith("ERROR: no Java runtime found"), done.stdout + done.stderr
    assert "apt-get install openjdk-17-jre-headless" in done.stdout and "JAVA_HOME" in done.stdout


def test_fork_after_start_fails_clearly_spawn_works(tmp_path):
    path = fake(tmp_path, "fork", sizeX=64, sizeY=48, sizeZ=2, pixelType="uint16")
    code = f"""
        import json, multiprocessing as mp, os, sys
        import numpy as np
        from omeio import BioReader, JavaUnavailableError, java

        PATH = {str(path)!r}

        def total(path):
            with BioReader(path, backend="bioformats") as br:
                return int(br[:].astype(np.int64).sum())

        def forked(queue, reader):
            out = []
            for attempt in (lambda: total(PATH), lambda: reader[:]):
                try:
                    attempt()
                    out.append("read")
                except JavaUnavailableError as exc:
                    out.append(str(exc))
            out.append(java.jvm_started())
            queue.put(out)

        if __name__ == "__main__":
            parent = BioReader(PATH, backend="bioformats", max_workers=2)
            expected = int(parent[:].astype(np.int64).sum())
            queue = mp.get_context("fork").Queue()
            child = mp.get_context("fork").Process(target=forked, args=(queue, parent))
            child.start()
            print("FORK", json.dumps(queue.get(timeout=60)))
            child.join(60)
            pid = os.fork()
            if pid == 0:  # a plain fork that exits through sys.exit: no JVM shutdown hang
                sys.exit(7)
            print("EXIT", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            with mp.get_context("spawn").Pool(1) as pool:
                print("SPAWN", pool.apply(total, (PATH,)) == expected)
    """
    script = tmp_path / "forktest.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                 if line.startswith(("FORK ", "EXIT ", "SPAWN ")))
    fork_result = json.loads(lines["FORK"])
    assert len(fork_result) == 3
    for message in fork_result[:2]:
        assert "does not survive fork()" in message and "'spawn'" in message
    assert fork_result[2] is False
    assert lines["EXIT"] == "7"
    assert lines["SPAWN"] == "True"


def test_jvm_state_in_this_process(tmp_path):
    with BioReader(fake(tmp_path, "s", sizeX=8, sizeY=8), backend="bioformats") as br:
        br.read()
    assert java.jvm_started()
    java.start()  # idempotent
    java.check_process()
    assert find_jar().is_file()
