"""PNG and JPEG through imagecodecs: the same pixels and sizes as Bio-Formats, checked here file by
file against Bio-Formats itself (a JVM in this process) and against Pillow's own decode."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from omeio import BioReader, UnreadableFileError
from omeio.backends import sniff
from omeio.backends.codec_reader import CodecReader
from omeio.indexing import Region

RNG = np.random.default_rng(20261121)


def smooth(shape, dtype=np.uint8) -> np.ndarray:
    """Noise on a gradient: JPEG-compressible, yet every pixel matters."""
    hi = np.iinfo(dtype).max
    y = np.linspace(0, hi * 0.7, shape[0])[:, None]
    base = np.broadcast_to(y.reshape((shape[0],) + (1,) * (len(shape) - 1)), shape)
    return np.clip(base + RNG.integers(0, hi // 4, shape), 0, hi).astype(dtype)


TAKEN = {
    "gray8.png": lambda p: Image.fromarray(smooth((70, 90))).save(p, dpi=(300, 300)),
    "gray16.png": lambda p: p.write_bytes(imagecodecs.png_encode(smooth((70, 90), np.uint16))),
    "rgb.png": lambda p: Image.fromarray(smooth((70, 90, 3))).save(p),
    "rgba.png": lambda p: Image.fromarray(smooth((70, 90, 4))).save(p),
    "gray_alpha.png": lambda p: Image.fromarray(smooth((70, 90, 4))).convert("LA").save(p),
    "rgb16.png": lambda p: p.write_bytes(imagecodecs.png_encode(smooth((70, 90, 3), np.uint16))),
    "interlaced.png": lambda p: Image.fromarray(smooth((70, 90, 3))).save(p, interlace=1),
    "gray.jpg": lambda p: Image.fromarray(smooth((70, 90))).save(p, quality=90, dpi=(96, 96)),
    "rgb420.jpg": lambda p: Image.fromarray(smooth((70, 90, 3))).save(p, quality=85),
    "rgb444.jpg": lambda p: Image.fromarray(smooth((70, 90, 3))).save(p, quality=85,
                                                                      subsampling=0),
    "progressive.jpg": lambda p: Image.fromarray(smooth((70, 90, 3))).save(p, quality=85,
                                                                           progressive=True),
}
SAMPLES = {"gray8.png": 1, "gray16.png": 1, "rgb.png": 3, "rgba.png": 4, "gray_alpha.png": 2,
           "rgb16.png": 3, "interlaced.png": 3, "gray.jpg": 1, "rgb420.jpg": 3,
           "rgb444.jpg": 3, "progressive.jpg": 3}


def _palette(p: Path) -> None:
    Image.fromarray(smooth((70, 90, 3))).quantize(200).save(p)


def _transparency(p: Path) -> None:
    Image.fromarray(smooth((70, 90, 3))).save(p, transparency=(1, 2, 3))


def _cmyk(p: Path) -> None:
    Image.fromarray(smooth((70, 90, 4)), "CMYK").save(p, quality=90)


DECLINED = {"palette.png": _palette, "transparency.png": _transparency, "cmyk.jpg": _cmyk}


def whole(br: BioReader) -> np.ndarray:
    return br.read_region(Region(range(br.Y), range(br.X), (0,), tuple(range(br.C)), (0,)))


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_same_pixels_and_sizes_as_bioformats(tmp_path, name):
    path = tmp_path / name
    TAKEN[name](path)
    assert sniff(path) == ["codecs", "bioformats"]
    with BioReader(path) as ours, BioReader(path, backend="bioformats") as ref:
        assert ours.backend_name == "codecs"
        assert (ours.Y, ours.X, ours.Z, ours.C, ours.T) == (70, 90, 1, SAMPLES[name], 1)
        assert (ours.Y, ours.X, ours.Z, ours.C, ours.T) == (ref.Y, ref.X, ref.Z, ref.C, ref.T)
        assert ours.dtype == ref.dtype == (np.uint16 if "16" in name else np.uint8)
        mine = whole(ours)
        np.testing.assert_array_equal(mine, whole(ref))
        a, b = ours.metadata.images[0], ref.metadata.images[0]
        assert a.name == b.name == name
        for axis in "XYZ":  # Bio-Formats reads neither pHYs nor JFIF density
            assert a.pixels.physical_size(axis) == b.pixels.physical_size(axis) == (None, None)
        assert a.pixels.type == b.pixels.type
        assert [c.color for c in a.pixels.channels] == [c.color for c in b.pixels.channels]
        assert len(a.pixels.channels) == SAMPLES[name]
    if name.endswith(".png") and name != "rgb16.png":  # Pillow cuts 16-bit RGB to 8 bits
        pil = np.asarray(Image.open(path))
        np.testing.assert_array_equal(mine[:, :, 0, :, 0], pil.reshape(70, 90, -1))


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_variants_go_to_bioformats(tmp_path, name):
    path = tmp_path / name
    DECLINED[name](path)
    with pytest.raises(UnreadableFileError, match="left to Bio-Formats"):
        BioReader(path, backend="codecs")
    with BioReader(path) as br:
        assert br.backend_name == "bioformats"
    assert not CodecReader.can_read(path)


def test_palette_png_reads_raw_indices(tmp_path):
    """What Bio-Formats (and so omeio) makes of an indexed PNG: the indices, one channel."""
    path = tmp_path / "palette.png"
    _palette(path)
    with BioReader(path) as br:
        assert br.C == 1
        np.testing.assert_array_equal(br[:], np.asarray(Image.open(path)))


def test_windows_decode_the_image_once(tmp_path, monkeypatch):
    path = tmp_path / "rgb.png"
    TAKEN["rgb.png"](path)
    expected = np.asarray(Image.open(path))
    calls = []
    real = imagecodecs.png_decode

    def counting(data, *args, **kwargs):
        calls.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(imagecodecs, "png_decode", counting)
    with BioReader(path) as br:
        assert calls == []  # opening reads the header only
        np.testing.assert_array_equal(br[10:33, 5:61, 0, 1, 0], expected[10:33, 5:61, 1])
        np.testing.assert_array_equal(br[0:70:3, 80:90, 0, [2, 0], 0],
                                      expected[0:70:3, 80:90][:, :, None, [2, 0]])
        np.testing.assert_array_equal(br[69:70, :, 0, 0, 0], expected[69:70, :, 0])
    assert len(calls) == 1


def test_decode_failure_falls_back_to_bioformats(tmp_path, monkeypatch):
    path = tmp_path / "gray.jpg"
    TAKEN["gray.jpg"](path)
    with BioReader(path, backend="bioformats") as ref:
        expected = ref[:]

    def broken(*args, **kwargs):
        raise RuntimeError("decoder unavailable")

    monkeypatch.setattr(imagecodecs, "jpeg8_decode", broken)
    with BioReader(path) as br:
        assert br.backend_name == "codecs"
        np.testing.assert_array_equal(br[:], expected)


def test_truncated_png_names_the_decoder_error(tmp_path):
    path = tmp_path / "cut.png"
    TAKEN["rgb.png"](path)
    path.write_bytes(path.read_bytes()[:400])
    with BioReader(path) as br:  # the header is intact
        assert br.backend_name == "codecs"
        with pytest.raises(UnreadableFileError, match="cannot decode"):
            br[:]


def test_image_size_from_the_header(tmp_path):
    for name in ("rgb16.png", "progressive.jpg"):
        path = tmp_path / name
        TAKEN[name](path)
        assert BioReader.image_size(path) == (90, 70)
    path = tmp_path / "exif.jpg"
    image = Image.fromarray(smooth((33, 47, 3)))
    exif = Image.Exif()
    exif[0x010E] = "x" * 5000  # a long APP1 segment before the frame header
    image.save(path, exif=exif)
    assert CodecReader.image_size(path) == (47, 33)
    with BioReader(path) as br:
        assert br.backend_name == "codecs"
        np.testing.assert_array_equal(br[:], np.asarray(Image.open(path)).reshape(33, 47, 1, 3))
    assert CodecReader.image_size(tmp_path / "missing.png") == (-1, -1)
