"""Bad inputs: each fails alone with one line naming it and saying why; the rest convert.

The corpus is generated here: empty, truncated and corrupt TIFFs, text and random bytes under
image names, a directory, a FIFO, a broken link and an unreadable file named like images,
headers claiming absurd sizes or planes the file lacks, an IFD chain that loops, broken
OME-Zarr stores, and valid files under names with spaces, unicode and shell metacharacters.
Outputs are read back with tifffile, never with omeio.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from plugin_process import run_plugin

from omeio import BioReader, BioWriter, UnreadableFileError
from omeio.errors import CorruptFileError

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
FAILED = re.compile(r" - ERROR   - FAILED (.+?): (.*)$")


def craft_tiff(path: Path, width: int, length: int, pages: int = 1, compression: int = 1,
               rowsperstrip: int | None = None, data: bytes = b"\0" * 64,
               description: str | None = None, loop_to: int | None = None) -> None:
    """A hand-made little-endian classic TIFF: every page one strip pointing at ``data``.

    ``loop_to``: the last IFD's next-IFD pointer goes back to IFD ``loop_to``.
    """
    out = bytearray(b"II*\0\0\0\0\0")
    data_at = len(out)
    out += data
    desc_at = len(out)
    desc = (description or "").encode() + b"\0"
    if description is not None:
        out += desc
    out += b"\0" * (len(out) % 2)
    struct.pack_into("<I", out, 4, len(out))
    starts = []
    for p in range(pages):
        tags = [(256, 4, 1, width), (257, 4, 1, length), (258, 3, 1, 8), (259, 3, 1, compression),
                (262, 3, 1, 1), (273, 4, 1, data_at), (277, 3, 1, 1),
                (278, 4, 1, rowsperstrip or length), (279, 4, 1, len(data))]
        if description is not None and p == 0:
            tags.append((270, 2, len(desc), desc_at))
        starts.append(len(out))
        out += struct.pack("<H", len(tags))
        for tag, kind, count, value in sorted(tags):
            out += struct.pack("<HHI", tag, kind, count)
            out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        last = p == pages - 1
        nxt = (starts[loop_to] if loop_to is not None else 0) if last else len(out) + 4
        out += struct.pack("<I", nxt)
    path.write_bytes(bytes(out))


def ome_xml(size_z: int, size_x: int = 64, size_y: int = 64, name: str = "img") -> str:
    return (f'<?xml version="1.0"?><OME xmlns="{NS}"><Image ID="Image:0" Name="{name}">'
            f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="{size_x}" '
            f'SizeY="{size_y}" SizeZ="{size_z}" SizeC="1" SizeT="1">'
            '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>')


def failures(stderr: str) -> dict[str, str]:
    """``name -> reason`` of every FAILED line; each must be exactly one line."""
    found: dict[str, str] = {}
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = FAILED.search(line)
        if m:
            assert m.group(1) not in found, f"{m.group(1)} reported twice"
            found[m.group(1)] = m.group(2)
            # the next line is a new log record (or the end), not a continuation
            assert i + 1 == len(lines) or re.match(r"\d\d-\w{3}-\d\d ", lines[i + 1]), line
    return found


def read_plane(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome and len(tf.pages) == 1
        return tf.pages[0].asarray()


# -- the corpus ----------------------------------------------------------------------------------


def make_corpus(inp: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Good inputs (output name -> pixels) and bad ones (input name -> expected reason: an
    exact string, or a predicate on the reason)."""
    rng = np.random.default_rng(8)
    good: dict[str, np.ndarray] = {}
    bad: dict[str, object] = {}

    for i, name in enumerate(["a b", "é€", "$(x);&|'", "`id` \"q\" -rf", "{c}[1]*?", "back\\slash"]):
        pixels = rng.integers(0, 65535, (37 + i, 53), dtype=np.uint16)
        tifffile.imwrite(inp / f"{name}.tif", pixels)
        good[f"{name}.ome.tif"] = pixels

    (inp / "zero.tif").write_bytes(b"")
    bad["zero.tif"] = "empty file (0 bytes)"

    cut = rng.integers(0, 255, (600, 500), dtype=np.uint8)
    tifffile.imwrite(inp / "cut.tif", cut, rowsperstrip=64)
    size = (inp / "cut.tif").stat().st_size // 2
    with open(inp / "cut.tif", "r+b") as fh:
        fh.truncate(size)

    def truncated(reason: str) -> bool:
        m = re.fullmatch(r"truncated file: (\d+) bytes wanted at offset (\d+), only (\d+) there"
                         r" \(0 of 1 outputs written\)", reason)
        return bool(m) and int(m.group(2)) + int(m.group(3)) == size

    bad["cut.tif"] = truncated

    tifffile.imwrite(inp / "badtile.tif", rng.integers(0, 255, (512, 512), dtype=np.uint8),
                     tile=(256, 256), compression="zlib")
    with tifffile.TiffFile(inp / "badtile.tif") as tf:
        offset = tf.pages[0].dataoffsets[1]
    with open(inp / "badtile.tif", "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 32)
    bad["badtile.tif"] = lambda r: r.startswith("corrupt tile 1 of page 0: ") and \
        r.endswith("(0 of 1 outputs written)")

    (inp / "text.tif").write_text("not an image, only text\n")
    bad["text.tif"] = "Bio-Formats: FormatException: Invalid TIFF file: text.tif"
    (inp / "noise.xyz").write_bytes(rng.bytes(5000))
    bad["noise.xyz"] = "Bio-Formats: UnknownFormatException: Unknown file format: noise.xyz"
    (inp / "dir.tif").mkdir()
    (inp / "dir.tif" / "inner.tif").write_bytes(b"x")
    bad["dir.tif"] = "a directory that is not a Zarr store"
    (inp / "plain_subfolder").mkdir()  # a directory not named like an image: not an input
    os.mkfifo(inp / "fifo.tif")
    bad["fifo.tif"] = "not a regular file (a FIFO, socket or device)"
    os.symlink("nowhere.tif", inp / "dangling.tif")
    bad["dangling.tif"] = "broken symbolic link to nowhere.tif"

    # 10^6 x 10^6 pixels x 10^4 pages, in 64 bytes of data
    craft_tiff(inp / "absurd.tif", 10**6, 10**6, pages=10**4)
    bad["absurd.tif"] = ("uncompressed page 0 of 1000000 x 1000000 pixels needs 1000000000000 "
                         "bytes but declares 64")
    craft_tiff(inp / "absurd_deflate.tif", 10**6, 10**6, pages=3, compression=8,
               rowsperstrip=16, data=zlib.compress(b"\0" * 1000))
    bad["absurd_deflate.tif"] = ("page 0 of 1000000 x 1000000 pixels lists 1 of the 62500 "
                                 "strips it needs")
    craft_tiff(inp / "claims.ome.tif", 64, 64, data=bytes(range(64)) * 64,
               description=ome_xml(size_z=10**4))
    bad["claims.ome.tif"] = ("the metadata describes 10000 planes but 9999 of them are not "
                             "in the file")
    craft_tiff(inp / "loop.tif", 8, 8, pages=3, loop_to=1)
    bad["loop.tif"] = lambda r: re.fullmatch(
        r"the chain of IFDs loops back to offset \d+ after 3 IFD\(s\)", r) is not None

    stack = rng.integers(0, 255, (100, 120, 1, 1, 2), dtype=np.uint8)
    for name in ("holes.ome.zarr", "badmeta.ome.zarr"):
        with BioWriter(inp / name, image=stack) as bw:
            bw.write(stack)
    chunk = inp / "holes.ome.zarr" / "0" / "c" / "1" / "0" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.unlink()
    good["holes_t0.ome.tif"] = stack[:, :, 0, 0, 0]
    bad["holes.ome.zarr"] = lambda r: r.startswith("missing chunk 0/c/1/0/0/0/0 ") and \
        r.endswith("(1 of 2 outputs written)")
    (inp / "badmeta.ome.zarr" / "zarr.json").write_text("{not json")
    bad["badmeta.ome.zarr"] = lambda r: r.startswith("broken Zarr metadata zarr.json: ")
    return good, bad


def test_bad_inputs_fail_alone_and_the_rest_convert(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    good, bad = make_corpus(inp)
    before = sorted(os.listdir(inp))

    proc = run_plugin(inp, out)
    assert proc.returncode == 1, proc.stderr
    found = failures(proc.stderr)
    assert set(found) == set(bad), proc.stderr
    for name, expected in bad.items():
        if callable(expected):
            assert expected(found[name]), (name, found[name])
        else:
            assert found[name] == expected, (name, found[name])
    assert "Traceback" not in proc.stderr
    # every good input converted exactly; nothing else, no temporary debris
    assert sorted(os.listdir(out)) == sorted(good)
    for name, pixels in good.items():
        got = read_plane(out / name)
        assert got.dtype == pixels.dtype and got.shape == pixels.shape, name
        np.testing.assert_array_equal(got, pixels, err_msg=name)
    converted = len(good) - 1  # holes.ome.zarr wrote one output, then failed
    assert (f"summary: {converted} converted ({len(good)} outputs written), {len(bad)} failed, "
            "0 skipped") in proc.stderr
    assert sorted(os.listdir(inp)) == before  # the input collection is untouched

    again = run_plugin(inp, out, "--numWorkers", "1")  # a re-run redoes only the failures
    assert again.returncode == 1
    assert set(failures(again.stderr)) == set(bad)
    assert f"skipped {len(good)} complete outputs" in again.stderr
    assert sorted(os.listdir(out)) == sorted(good)


def test_absurd_headers_never_allocate(tmp_path):
    """Under a 300 MiB data limit, opening the absurd files fails at once, cleanly."""
    craft_tiff(tmp_path / "absurd.tif", 10**6, 10**6, pages=10**4)
    craft_tiff(tmp_path / "claims.ome.tif", 64, 64, data=bytes(64 * 64),
               description=ome_xml(size_z=10**4))
    craft_tiff(tmp_path / "deflate.tif", 10**6, 10**6, compression=8,
               data=zlib.compress(b"\0" * 1000))
    code = f"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_DATA, (300 << 20, 300 << 20))
from omeio import BioReader
from omeio.errors import CorruptFileError, UnreadableFileError
start = time.monotonic()
for name in ("absurd.tif", "claims.ome.tif"):
    try:
        BioReader({str(tmp_path)!r} + "/" + name)
    except CorruptFileError as exc:
        print(name, "refused:", exc.reason)
with BioReader({str(tmp_path)!r} + "/deflate.tif") as br:
    print("deflate.tif", br.X, br.Y)
    try:
        br[0:16, 0:16]
    except UnreadableFileError as exc:
        print("deflate.tif read refused:", exc.reason)
print("seconds", time.monotonic() - start)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("absurd.tif refused: uncompressed page 0 of 1000000 x 1000000")
    assert lines[1] == ("claims.ome.tif refused: the metadata describes 10000 planes but 9999 "
                        "of them are not in the file")
    assert lines[2] == "deflate.tif 1000000 1000000"
    # the single 10^12-pixel strip cannot be decoded in 300 MiB: said so, no MemoryError
    assert lines[3] == ("deflate.tif read refused: strip 0 of page 0 (1000000 x 1000000 pixels) "
                        "is too large to decode in the memory available")
    assert float(lines[4].split()[1]) < 30


def test_corrupt_file_is_not_handed_to_bioformats(tmp_path):
    """A file whose header proves it broken fails in the TIFF backend; Bio-Formats, which
    reads the same file as 10000 planes (9999 of them invented), is not asked."""
    path = tmp_path / "claims.ome.tif"
    craft_tiff(path, 64, 64, data=bytes(range(64)) * 64, description=ome_xml(size_z=10**4))
    with pytest.raises(CorruptFileError) as info:
        BioReader(path)
    assert str(info.value) == (f"{path}: the metadata describes 10000 planes but 9999 of "
                               "them are not in the file")
    assert "bioformats" not in info.value.reason
    with BioReader(path, backend="bioformats") as br:  # what the fallback would have done
        assert br.Z == 10**4


def test_zero_width_image_is_refused(tmp_path):
    path = tmp_path / "thin.tif"
    craft_tiff(path, 0, 16)
    with pytest.raises(UnreadableFileError) as info:
        BioReader(path, backend="tiff")
    assert info.value.reason == "the image holds no pixels: its size is (16, 0, 1, 1, 1) (Y, X, Z, C, T)"


def _without_dac_override() -> None:
    """In the child, before exec: drop root's right to read files whatever their mode
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set, so chmod 000 holds."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_unreadable_file_fails_alone(tmp_path):
    """chmod 000 does not stop root, and the suite runs as root here: the plugin then runs
    without the two capabilities that let root read any file (a non-root run needs nothing)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    pixels = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    tifffile.imwrite(inp / "fine.tif", pixels)
    tifffile.imwrite(inp / "locked.tif", pixels)
    (inp / "locked.tif").chmod(0)
    preexec = _without_dac_override if os.geteuid() == 0 else None
    probe = subprocess.run([sys.executable, "-c", f"open({str(inp / 'locked.tif')!r}, 'rb')"],
                           capture_output=True, text=True, preexec_fn=preexec)
    assert probe.returncode == 1 and "PermissionError" in probe.stderr  # the setup holds

    proc = run_plugin(inp, out, preexec_fn=preexec)
    assert proc.returncode == 1, proc.stderr
    assert failures(proc.stderr) == {"locked.tif": "cannot open: Permission denied"}
    assert sorted(os.listdir(out)) == ["fine.ome.tif"]
    np.testing.assert_array_equal(read_plane(out / "fine.ome.tif"), pixels)


def test_collision_with_unusual_names_names_both_inputs(tmp_path):
    """Two inputs that would write one output stop the run before any conversion (plan.py:
    a collision is a collection error, not a file error); the line names both and the output."""
    from PIL import Image

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    tifffile.imwrite(inp / "é €.tif", np.zeros((8, 8), np.uint8))
    Image.fromarray(np.ones((8, 8), np.uint8)).save(inp / "é €.png")
    tifffile.imwrite(inp / "other.tif", np.ones((8, 8), np.uint8))
    proc = run_plugin(inp, out)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if "name collision" in ln]
    assert len(lines) == 1, proc.stderr
    assert "'é €.png'" in lines[0] and "'é €.tif'" in lines[0] and "'é €.ome.tif'" in lines[0]
    assert not out.exists() or os.listdir(out) == []


# -- hostile OME-XML ---------------------------------------------------------------------------

LAUGHS = ('<!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                    for i in range(9)) + "]>")


def _hostile(path: Path, pixels: np.ndarray, doctype: str, reference: str) -> None:
    y, x = pixels.shape
    xml = (f'<?xml version="1.0"?>{doctype}<OME xmlns="{NS}"><Image ID="Image:0" Name="n">'
           f'<Description>{reference}</Description><Pixels ID="Pixels:0" DimensionOrder="XYZCT" '
           f'Type="uint16" SizeX="{x}" SizeY="{y}" SizeZ="1" SizeC="1" SizeT="1">'
           '<Channel ID="Channel:0:0" Name="hostile" SamplesPerPixel="1"/><TiffData/></Pixels>'
           "</Image></OME>")
    tifffile.imwrite(path, pixels, description=xml, metadata=None)


def test_entity_payloads_are_never_expanded(tmp_path):
    """Decided: an OME-TIFF whose OME-XML declares entities is read for its pixels, and its
    XML is not used (omeio refuses DOCTYPE; tifffile's expat stops the expansion; Bio-Formats'
    parsers run with the JDK's limits and no external access, see omeio.java.XML_HARDENING).
    Through the plugin it converts, without any expanded or fetched text, in seconds."""
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-7731")
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    pixels = np.arange(48 * 40, dtype=np.uint16).reshape(48, 40)
    _hostile(inp / "laughs.ome.tif", pixels, LAUGHS, "&j;")
    _hostile(inp / "xxe.ome.tif", pixels,
             f'<!DOCTYPE OME [<!ENTITY x SYSTEM "file://{secret}">]>', "&x;")

    for name in ("laughs.ome.tif", "xxe.ome.tif"):
        for backend in ("tiff", "bioformats"):
            with BioReader(inp / name, backend=backend) as br:
                np.testing.assert_array_equal(br[:, :], pixels)
                xml = br.file_metadata.to_xml()
                assert "SECRET" not in xml and "aaaaaaaaaaaaaaaaaaaa" not in xml, backend
                assert len(xml) < 10_000

    proc = run_plugin(inp, out, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "OME-XML unusable (OME-XML with a DOCTYPE or ENTITY declaration is refused)" in \
        proc.stderr
    assert sorted(os.listdir(out)) == ["laughs.ome.tif", "xxe.ome.tif"]
    for name in os.listdir(out):
        np.testing.assert_array_equal(read_plane(out / name), pixels)
        with tifffile.TiffFile(out / name) as tf:
            assert "SECRET" not in tf.ome_metadata and "<!ENTITY" not in tf.ome_metadata


def test_broken_ifd_chain_is_conclusive_only_when_tifffile_fails(tmp_path):
    """An IFD whose entries run past the end of the file kept Bio-Formats busy past any limit
    (fuzz finding): it is refused without asking Bio-Formats. A chain that merely points
    past the end after readable pages is not a reason to refuse what tifffile reads."""
    data = bytes(range(64))
    broken = tmp_path / "broken.tif"
    craft_tiff(broken, 8, 8, pages=2, data=data)
    raw = bytearray(broken.read_bytes())
    second = struct.unpack_from("<I", raw, 8 + len(data) + 2 + 9 * 12)[0]
    struct.pack_into("<H", raw, second, 2031)
    broken.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError) as info:
        BioReader(broken)
    assert info.value.reason.endswith(
        f"IFD 1 at offset {second} lists 2031 entries, which run past the end of the file "
        f"({len(raw)} bytes)")
    assert "bioformats" not in info.value.reason

    tail = tmp_path / "tail.tif"
    craft_tiff(tail, 8, 8, pages=3, data=data)
    raw = bytearray(tail.read_bytes())
    struct.pack_into("<I", raw, len(raw) - 4, len(raw) + 1000)  # the last IFD's next pointer
    tail.write_bytes(bytes(raw))
    with BioReader(tail) as br:
        assert br.backend_name == "tiff" and (br.Y, br.X, br.Z) == (8, 8, 3)
        np.testing.assert_array_equal(br[:, :, 2], np.frombuffer(data, np.uint8).reshape(8, 8))


def test_absurd_samples_per_pixel_in_ome_xml_is_not_expanded(tmp_path):
    """SamplesPerPixel="99999999999999" once had omeio copy a Channel element 10^14 times
    (fuzz finding): the XML is now unusable and the TIFF itself describes the image."""
    import time

    pixels = np.arange(32 * 40 * 3, dtype=np.uint8).reshape(32, 40, 3)
    xml = (f'<?xml version="1.0"?><OME xmlns="{NS}"><Image ID="Image:0"><Pixels ID="Pixels:0" '
           'DimensionOrder="XYCZT" Type="uint8" SizeX="40" SizeY="32" SizeZ="1" SizeC="3" '
           'SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="99999999999999"/><TiffData/>'
           "</Pixels></Image></OME>")
    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", description=xml, metadata=None)
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))
import numpy as np
from omeio import BioReader
with BioReader({str(path)!r}) as br:
    np.save({str(tmp_path / "read.npy")!r}, br.read())
    print(br.backend_name, br.Y, br.X, br.C, len(br.metadata.images[0].pixels.channels))
"""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # before the fix: a hang, then a MemoryError
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tiff", "32", "40", "3", "3"]
    np.testing.assert_array_equal(np.load(tmp_path / "read.npy").reshape(32, 40, 3), pixels)
    assert time.monotonic() - start < 30
