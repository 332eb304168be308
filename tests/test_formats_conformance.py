"""Third-party files read through the Bio-Formats backend, checked two ways.

1. Against Bio-Formats' own ``bfconvert``: each file is converted (all series, resolutions
   kept as SubIFDs) by Bio-Formats' ImageConverter in separate JVMs, the OME-TIFF is decoded
   with tifffile and ElementTree (``bench/conformance.py``), and every plane of every level of
   every series must be bit-identical to ``BioReader(file, backend="bioformats", series=S,
   level=L)``.
2. Against the independent writer's own array, where the format is lossless.

The files are written here by libraries that are not Bio-Formats (Pillow, imagecodecs,
tifffile, nibabel, mrcfile, mrc, pydicom, pylibCZIrw, h5py), by a few lines of Python from the
formats' layouts (ICS, DM3, the LSM and SVS/QPTIFF tag layouts), or are real files: shipped
inside installed packages (nibabel's NIfTI, pydicom's DICOM) or in PyPI source distributions
fetched once with pip into omeio's cache (an Olympus OIB, an Olympus VSI with JPEG 2000 ETS).
Orientation conventions that Bio-Formats applies (and bfconvert shares) are spelled out where
the independent comparison needs them.
"""

from __future__ import annotations

import importlib.util
import io
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from omeio import BioReader, UnreadableFileError
from omeio.indexing import Region
from omeio.jar import find_jar

_spec = importlib.util.spec_from_file_location(
    "conformance", Path(__file__).resolve().parents[1] / "bench" / "conformance.py")
conformance = importlib.util.module_from_spec(_spec)
sys.modules["conformance"] = conformance
_spec.loader.exec_module(conformance)

RNG = np.random.default_rng(20261121)


@dataclass
class Sample:
    """A file, how many series Bio-Formats should see, and the writer's own pixels (YXZCT)."""

    path: Path
    series_count: int = 1
    expected: dict[int, np.ndarray] = field(default_factory=dict)
    #: per series: the level count Bio-Formats should report
    levels: dict[int, int] = field(default_factory=dict)
    #: Bio-Formats itself cannot decode the pixels: bfconvert fails, and omeio must say so too
    undecodable: bool = False
    #: level L of every series is the expected array subsampled by ``pyramid_step ** L``
    pyramid_step: int = 0


def noise(shape, dtype) -> np.ndarray:
    """Random values over the type's whole range (any misplaced pixel shows)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (RNG.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


def smooth(shape) -> np.ndarray:
    """An 8-bit image JPEG can hold almost unchanged."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = (np.sin(y / 9.0) + np.cos(x / 13.0)) * 60 + 128
    if len(shape) == 3:
        base = np.stack([base + 20 * k for k in range(shape[2])], axis=-1)
    return np.clip(base, 0, 255).astype(np.uint8)


def yxzct(a: np.ndarray, axes: str) -> np.ndarray:
    """Reorder an array with named axes (a subset of YXZCT) to the 5-D YXZCT layout."""
    for axis in "YXZCT":
        if axis not in axes:
            a, axes = a[..., None], axes + axis
    return np.transpose(a, [axes.index(axis) for axis in "YXZCT"])


# -- writers ------------------------------------------------------------------------------------------

def make_pillow(folder: Path) -> dict[str, Sample]:
    out = {}
    gray8, gray16 = noise((37, 53), np.uint8), noise((41, 29), np.uint16)
    rgb8, rgba8 = noise((33, 47, 3), np.uint8), noise((25, 31, 4), np.uint8)
    Image.fromarray(gray8).save(folder / "gray8.png")
    out["png-gray8"] = Sample(folder / "gray8.png", expected={0: yxzct(gray8, "YX")})
    Image.fromarray(gray16).save(folder / "gray16.png")
    out["png-gray16"] = Sample(folder / "gray16.png", expected={0: yxzct(gray16, "YX")})
    Image.fromarray(rgb8).save(folder / "rgb8.png")
    out["png-rgb8"] = Sample(folder / "rgb8.png", expected={0: yxzct(rgb8, "YXC")})
    Image.fromarray(rgba8).save(folder / "rgba8.png")
    out["png-rgba8"] = Sample(folder / "rgba8.png", expected={0: yxzct(rgba8, "YXC")})
    index = RNG.integers(0, 200, (19, 23), dtype=np.uint8)  # > 16 colours: an 8-bit palette
    pal = Image.fromarray(index, mode="P")
    pal.putpalette([v for k in range(200) for v in (k, 255 - k, (k * 7) % 256)])
    pal.save(folder / "palette.png")
    # 16 colours make a 4-bit palette PNG, which Bio-Formats 7.3.1 fails to decode
    small = Image.fromarray((index % 16).astype(np.uint8), mode="P")
    small.putpalette([v for k in range(16) for v in (k * 16, 255 - k * 16, 0)])
    small.save(folder / "palette4.png")
    out["png-palette-4bit"] = Sample(folder / "palette4.png", undecodable=True)
    out["png-palette"] = Sample(folder / "palette.png", expected={0: yxzct(index, "YX")})
    pal.save(folder / "palette.gif")  # GIF writing renumbers the palette: Pillow's read-back
    with Image.open(folder / "palette.gif") as gif:
        gif_index = np.asarray(gif)
    out["gif-palette"] = Sample(folder / "palette.gif", expected={0: yxzct(gif_index, "YX")})
    Image.fromarray(rgb8).save(folder / "rgb.bmp")
    out["bmp-rgb"] = Sample(folder / "rgb.bmp", expected={0: yxzct(rgb8, "YXC")})
    # JPEG is lossy: only bfconvert's decode of the same file is an exact reference
    Image.fromarray(smooth((48, 64, 3))).save(folder / "rgb.jpg", quality=90)
    out["jpeg-rgb"] = Sample(folder / "rgb.jpg")
    Image.fromarray(smooth((40, 56))).save(folder / "gray.jpg", quality=90)
    out["jpeg-gray"] = Sample(folder / "gray.jpg")
    return out


def make_imagecodecs(folder: Path) -> dict[str, Sample]:
    import imagecodecs

    rgb16 = noise((21, 34, 3), np.uint16)
    (folder / "rgb16.png").write_bytes(imagecodecs.png_encode(rgb16))
    return {"png-rgb16": Sample(folder / "rgb16.png", expected={0: yxzct(rgb16, "YXC")})}


def make_tifffile(folder: Path) -> dict[str, Sample]:
    out = {}
    strips = noise((45, 70), np.uint16)
    tifffile.imwrite(folder / "strips_be.tif", strips, byteorder=">", rowsperstrip=7)
    out["tiff-strips-bigendian"] = Sample(folder / "strips_be.tif", expected={0: yxzct(strips, "YX")})
    planar = noise((3, 40, 72), np.float32)
    tifffile.imwrite(folder / "tiled_planar.tif", planar, photometric="rgb",
                     planarconfig="separate", tile=(16, 32), compression="zlib")
    out["tiff-tiled-planar-rgb-float"] = Sample(folder / "tiled_planar.tif",
                                                expected={0: yxzct(planar, "CYX")})
    hyper = noise((2, 3, 2, 24, 20), np.uint16)  # ImageJ hyperstack: T, Z, C, Y, X
    tifffile.imwrite(folder / "hyperstack.tif", hyper, imagej=True,
                     metadata={"axes": "TZCYX"})
    out["imagej-hyperstack"] = Sample(folder / "hyperstack.tif", expected={0: yxzct(hyper, "TZCYX")})
    lzw = noise((30, 26), np.int32)
    tifffile.imwrite(folder / "lzw_int32.tif", lzw, compression="lzw")
    out["tiff-lzw-int32"] = Sample(folder / "lzw_int32.tif", expected={0: yxzct(lzw, "YX")})
    return out


def make_ome_tiff(folder: Path) -> dict[str, Sample]:
    """Two OME images: a 2-channel z-stack with two sub-resolutions, and a float64 plane."""
    stack = noise((2, 3, 64, 96), np.int8)  # C, Z, Y, X
    flat = noise((17, 13), np.float64)
    path = folder / "multi.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(stack, subifds=2, metadata={"axes": "CZYX"}, tile=(32, 32))
        for factor in (2, 4):
            tif.write(stack[..., ::factor, ::factor], subfiletype=1, tile=(16, 16))
        tif.write(flat, metadata={"axes": "YX"})
    return {"ome-tiff-2series-pyramid": Sample(
        path, series_count=2, expected={0: yxzct(stack, "CZYX"), 1: yxzct(flat, "YX")},
        levels={0: 3, 1: 1}, pyramid_step=2)}


def make_svs(folder: Path) -> dict[str, Sample]:
    """An Aperio SVS layout: JPEG-tiled RGB pyramid, strip thumbnail, label and macro."""
    full = smooth((512, 768, 3))
    head = "Aperio Image Library v12.0.15 \r\n"
    desc = head + "768x512 [0,0 768x512] (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = 0.5"
    label = noise((60, 80, 3), np.uint8)
    path = folder / "slide.svs"
    with tifffile.TiffWriter(path) as tif:
        tif.write(full, tile=(256, 256), compression="jpeg", compressionargs={"level": 90}, photometric="rgb",
                  description=desc)
        tif.write(full[::4, ::4], photometric="rgb", description=head + "192x128 -> 768x512",
                  compression="jpeg")
        tif.write(full[::2, ::2], tile=(256, 256), compression="jpeg", compressionargs={"level": 90}, photometric="rgb",
                  description=head + "384x256 (256x256) JPEG/RGB Q=90")
        tif.write(label, photometric="rgb", compression="lzw", subfiletype=1,
                  description=head + "label 80x60")
        tif.write(smooth((100, 200, 3)), photometric="rgb", compression="jpeg", subfiletype=9,
                  description=head + "macro 200x100")
    return {"svs": Sample(path, series_count=3, expected={1: yxzct(label, "YXC")},
                          levels={0: 2, 1: 1, 2: 1})}


def make_qptiff(folder: Path) -> dict[str, Sample]:
    """A PerkinElmer QPTIFF layout: one IFD per channel per resolution, an RGB thumbnail."""
    channels = noise((3, 128, 160), np.uint16)
    thumb = noise((32, 40, 3), np.uint8)
    path = folder / "scan.qptiff"

    def desc(name: str, kind: str) -> str:
        return (f'<?xml version="1.0" encoding="utf-16"?><PerkinElmer-QPI-ImageDescription>'
                f"<DescriptionVersion>2</DescriptionVersion><ImageType>{kind}</ImageType>"
                f"<Name>{name}</Name><Color>255,0,0</Color>"
                f"</PerkinElmer-QPI-ImageDescription>")

    names = ["DAPI", "FITC", "Cy5"]
    with tifffile.TiffWriter(path) as tif:
        for c in range(3):
            tif.write(channels[c], tile=(64, 64), description=desc(names[c], "FullResolution"),
                      software="PerkinElmer-QPI")
        tif.write(thumb, photometric="rgb", description=desc("", "Thumbnail"),
                  software="PerkinElmer-QPI")
        for c in range(3):
            tif.write(channels[c, ::2, ::2], tile=(64, 64), subfiletype=1,
                      description=desc(names[c], "ReducedResolution"), software="PerkinElmer-QPI")
    return {"qptiff": Sample(path, series_count=2,
                             expected={0: yxzct(channels, "CYX"), 1: yxzct(thumb, "YXC")},
                             levels={0: 2, 1: 1}, pyramid_step=2)}


def ics_header(name: str, sizes, bits: int, fmt: str, sign: str, order: str, version: str,
               source: str | None = None) -> bytes:
    """An ICS header: x y z ch sizes (x fastest), uncompressed."""
    lines = [f"ics_version\t{version}", f"filename\t{name}", "layout\tparameters\t5",
             "layout\torder\tbits\tx\ty\tz\tch",
             "layout\tsizes\t" + "\t".join(str(s) for s in (bits, *sizes)),
             f"layout\tsignificant_bits\t{bits}", f"representation\tformat\t{fmt}",
             f"representation\tsign\t{sign}", f"representation\tbyte_order\t{order}",
             "representation\tcompression\tuncompressed"]
    if source:
        lines.append(source)
    return ("\t\n" + "\n".join([*lines, "end"]) + "\n").encode()


def make_ics(folder: Path) -> dict[str, Sample]:
    """ICS 2.0 (one file, little-endian) and ICS 1.0 (.ics + .ids, big-endian), by hand."""
    out = {}
    data = noise((2, 3, 22, 35), np.uint16)  # C, Z, Y, X
    sizes = (35, 22, 3, 2)
    # ICS 2.0 names its own data offset: fixed-width, so the header's length does not change
    head = ics_header("v2", sizes, 16, "integer", "unsigned", "1\t2", "2.0",
                      "source\tfile\tv2.ics\t0000000000")
    head = ics_header("v2", sizes, 16, "integer", "unsigned", "1\t2", "2.0",
                      f"source\tfile\tv2.ics\t{len(head):010d}")
    (folder / "v2.ics").write_bytes(head + data.astype("<u2").tobytes())
    out["ics2-uint16"] = Sample(folder / "v2.ics", expected={0: yxzct(data, "CZYX")})
    floats = noise((4, 18, 27), np.float32)  # Z, Y, X
    (folder / "v1.ics").write_bytes(
        ics_header("v1", (27, 18, 4, 1), 32, "real", "signed", "4\t3\t2\t1", "1.0"))
    (folder / "v1.ids").write_bytes(floats.astype(">f4").tobytes())
    out["ics1-float-bigendian"] = Sample(folder / "v1.ics", expected={0: yxzct(floats, "ZYX")})
    return out


def make_lsm(folder: Path) -> dict[str, Sample]:
    """A Zeiss LSM layout by tifffile: a CZ_LSMINFO tag (34412) on the first IFD, channels as
    planar samples, every plane's IFD followed by a thumbnail IFD."""
    nz, nc, h, w = 3, 2, 40, 56
    data = noise((nz, nc, h, w), np.uint8)
    info = bytearray(512)  # magic, size, X, Y, Z, C, T, data type, thumbnail X, Y; rest zero
    struct.pack_into("<IiiiiiiiII", info, 0, 0x00400494C, len(info), w, h, nz, nc, 1, 1, 16, 16)
    struct.pack_into("<ddd", info, 40, 0.2e-6, 0.2e-6, 1e-6)
    path = folder / "stack.lsm"
    with tifffile.TiffWriter(path) as tif:
        for z in range(nz):
            extratags = [(34412, 1, len(info), bytes(info), True)] if z == 0 else []
            tif.write(data[z], photometric="minisblack", planarconfig="separate",
                      extratags=extratags, metadata=None)
            tif.write(np.zeros((16, 16, 3), np.uint8), photometric="rgb", subfiletype=1,
                      metadata=None)
    return {"lsm-uint8-zc": Sample(path, expected={0: yxzct(data, "ZCYX")})}


#: numpy type -> (DM3 array element type, Gatan DataType code)
DM3_TYPES = {np.dtype(np.int16): (2, 1), np.dtype(np.uint16): (4, 10),
             np.dtype(np.float32): (6, 2)}


def _dm3_data(label: str, info: list[int], payload: bytes) -> bytes:
    return (b"\x15" + struct.pack(">h", len(label)) + label.encode() + b"%%%%"
            + struct.pack(f">i{len(info)}i", len(info), *info) + payload)


def _dm3_group(label: str | None, entries: list[bytes]) -> bytes:
    head = b"" if label is None else b"\x14" + struct.pack(">h", len(label)) + label.encode()
    return head + b"\x00\x00" + struct.pack(">i", len(entries)) + b"".join(entries)


def make_dm3(folder: Path) -> dict[str, Sample]:
    """Gatan DM3 (version 3 tag tree, little-endian data) written here from the format's layout:
    ImageList / ImageData with Data, DataType and Dimensions."""
    out = {}
    for dtype in DM3_TYPES:
        image = noise((30, 41), dtype)
        element, code = DM3_TYPES[dtype]
        data = _dm3_data("Data", [20, element, image.size], image.astype(dtype.newbyteorder("<")).tobytes())
        dims = _dm3_group("Dimensions", [_dm3_data("", [5], struct.pack("<I", n))
                                         for n in image.shape[::-1]])
        fields = [data, _dm3_data("DataType", [3], struct.pack("<i", code)), dims,
                  _dm3_data("PixelDepth", [3], struct.pack("<i", dtype.itemsize))]
        root = _dm3_group(None, [_dm3_group("ImageList", [_dm3_group("", [
            _dm3_group("ImageData", fields)])])])
        path = folder / f"image_{dtype.name}.dm3"
        path.write_bytes(struct.pack(">iii", 3, len(root), 1) + root + bytes(8))
        out[f"dm3-{dtype.name}"] = Sample(path, expected={0: yxzct(image, "YX")})
    return out


def make_nifti(folder: Path) -> dict[str, Sample]:
    """nibabel-written volumes (NIfTI keeps X fastest: the array is X, Y, Z[, T])."""
    nib = pytest.importorskip("nibabel")
    out = {}
    vol = noise((29, 23, 4), np.int16)  # X, Y, Z as NIfTI stores them
    nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / "vol.nii")
    want = yxzct(vol, "XYZ")
    out["nifti-int16-3d"] = Sample(folder / "vol.nii", expected={0: want})
    ts = noise((17, 11, 3, 2), np.float32)  # X, Y, Z, T
    nib.save(nib.Nifti1Image(ts, np.eye(4)), folder / "ts.nii.gz")
    want = yxzct(ts, "XYZT")
    out["nifti-float32-4d-gz"] = Sample(folder / "ts.nii.gz", expected={0: want})
    shipped = Path(nib.__file__).parent / "tests" / "data"
    for name in ("anatomical.nii", "example4d.nii.gz"):
        arr = np.asarray(nib.load(shipped / name).dataobj)
        out[f"nifti-shipped-{name}"] = Sample(shipped / name,
                                              expected={0: yxzct(arr, "XYZT"[: arr.ndim])})
    return out


def make_mrc(folder: Path) -> dict[str, Sample]:
    """mrcfile volumes; Bio-Formats shows MRC sections bottom-up (the last row first)."""
    mrcfile = pytest.importorskip("mrcfile")
    out = {}
    for dtype in (np.int8, np.int16, np.uint16, np.float32):
        vol = noise((3, 21, 30), dtype)  # Z, Y, X
        path = folder / f"vol_{np.dtype(dtype).name}.mrc"
        with mrcfile.new(path) as m:
            m.set_data(vol)
        want = yxzct(vol[:, ::-1], "ZYX")
        if dtype is np.int8:  # mode 0: Bio-Formats keeps the pre-2014 reading, unsigned bytes
            want = want.view(np.uint8)
        out[f"mrc-{np.dtype(dtype).name}"] = Sample(path, expected={0: want})
    return out


def make_dv(folder: Path) -> dict[str, Sample]:
    """A DeltaVision file by ``mrc``: it stores a 3-D array's sections as 4 wavelengths
    (NumWaves=4), bottom-up like MRC."""
    mrc = pytest.importorskip("mrc")
    vol = noise((4, 26, 33), np.uint16)
    path = folder / "stack.dv"
    mrc.imsave(str(path), vol, metadata={"dx": 0.1, "dy": 0.1, "dz": 0.3})
    return {"dv-uint16": Sample(path, expected={0: yxzct(vol[:, ::-1], "CYX")})}


def make_dicom(folder: Path) -> dict[str, Sample]:
    """pydicom-written multi-frame and RGB images, and pydicom's own shipped test files."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out = {}

    def write(name: str, frames: np.ndarray, rgb: bool) -> Path:
        """One file alone in its folder: Bio-Formats groups the DICOM files of a folder."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.Modality, ds.PatientName, ds.PatientID = "OT", "Test^Omeio", "1"
        ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
        ds.NumberOfFrames = frames.shape[0]
        ds.SamplesPerPixel = 3 if rgb else 1
        ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
        if rgb:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = frames.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if frames.dtype.kind == "i" else 0
        ds.PixelData = frames.tobytes()
        (folder / name).mkdir()
        path = folder / name / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return path

    frames = noise((3, 20, 24), np.uint16)
    out["dicom-multiframe-uint16"] = Sample(write("frames", frames, False),
                                            expected={0: yxzct(frames, "ZYX")})
    rgb = noise((1, 18, 22, 3), np.uint8)
    out["dicom-rgb8"] = Sample(write("rgb", rgb, True), expected={0: yxzct(rgb[0], "YXC")})
    signed = noise((1, 16, 21), np.int16)
    out["dicom-int16"] = Sample(write("signed", signed, False), expected={0: yxzct(signed[0], "YX")})
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_rle.dcm"):
        src = Path(get_testdata_file(name))
        alone = folder / f"shipped_{src.stem}"
        alone.mkdir()
        (alone / name).write_bytes(src.read_bytes())
        arr = pydicom.dcmread(src).pixel_array
        want = {0: yxzct(arr, "YXC" if arr.ndim == 3 else "YX")}
        if name == "SC_rgb_rle.dcm":
            # Bio-Formats' RLE decoding (bfconvert's too) differs from pydicom's at the very
            # last pixel: only the bfconvert comparison applies
            want = {}
        out[f"dicom-shipped-{src.stem}"] = Sample(alone / name, expected=want)
    return out


def make_czi(folder: Path) -> dict[str, Sample]:
    czi = pytest.importorskip("pylibCZIrw.czi")
    out = {}
    stack = noise((2, 3, 40, 52), np.uint16)  # C, Z, Y, X
    path = folder / "stack.czi"
    with czi.create_czi(str(path), exist_ok=True) as doc:
        for c in range(2):
            for z in range(3):
                doc.write(stack[c, z][..., None], plane={"C": c, "Z": z, "T": 0})
        doc.write_metadata(channel_names={0: "A", 1: "B"}, scale_x=0.2e-6, scale_y=0.2e-6)
    out["czi-uint16-cz"] = Sample(path, expected={0: yxzct(stack, "CZYX")})
    bgr = noise((30, 44, 3), np.uint8)  # CZI stores Bgr24: blue first
    path = folder / "rgb.czi"
    with czi.create_czi(str(path), exist_ok=True) as doc:
        doc.write(bgr, plane={"C": 0, "Z": 0, "T": 0})
        doc.write_metadata()
    out["czi-bgr24"] = Sample(path, expected={0: yxzct(bgr[..., ::-1], "YXC")})
    return out


def make_ims(folder: Path) -> dict[str, Sample]:
    """An Imaris 5.5 (HDF5) file written with h5py: two channels, a z-stack, two resolutions."""
    h5py = pytest.importorskip("h5py")
    data = noise((2, 4, 48, 64), np.uint16)  # C, Z, Y, X
    path = folder / "stack.ims"

    def text(value) -> np.ndarray:  # Imaris attributes are arrays of one-byte strings
        return np.array(list(str(value)), dtype="S1")

    with h5py.File(path, "w") as f:
        f.attrs["ImarisDataSet"] = text("ImarisDataSet")
        f.attrs["ImarisVersion"] = text("5.5.0")
        f.attrs["DataSetInfoDirectoryName"] = text("DataSetInfo")
        f.attrs["DataSetDirectoryName"] = text("DataSet")
        f.attrs["ThumbnailDirectoryName"] = text("Thumbnail")
        f.attrs["NumberOfDataSets"] = np.array([1], dtype=np.uint32)
        info = f.create_group("DataSetInfo/Image")
        for key, value in (("X", 64), ("Y", 48), ("Z", 4), ("Unit", "um"), ("ExtMin0", 0),
                           ("ExtMin1", 0), ("ExtMin2", 0), ("ExtMax0", 64), ("ExtMax1", 48),
                           ("ExtMax2", 8), ("Noc", 2)):
            info.attrs[key] = text(value)
        for c in range(2):
            f.create_group(f"DataSetInfo/Channel {c}").attrs["Name"] = text(f"ch{c}")
        times = f.create_group("DataSetInfo/TimeInfo")
        times.attrs["DatasetTimePoints"] = text(1)
        times.attrs["FileTimePoints"] = text(1)
        for level, step in ((0, 1), (1, 2)):
            for c in range(2):
                g = f.create_group(f"DataSet/ResolutionLevel {level}/TimePoint 0/Channel {c}")
                vol = data[c, :, ::step, ::step]
                g.create_dataset("Data", data=vol, chunks=(4, 16, 16))
                for key, value in zip(("ImageSizeZ", "ImageSizeY", "ImageSizeX"), vol.shape):
                    g.attrs[key] = text(value)
    return {"ims": Sample(path, expected={0: yxzct(data, "CZYX")}, levels={0: 2},
                          pyramid_step=2)}


#: real files shipped in source distributions on PyPI: (requirement, members, sample name,
#: series count); fetched once with pip into omeio's cache dir, never committed
SDIST_SAMPLES = [
    ("oiffile==2026.2.8", ["oiffile-2026.2.8/test.oib"], "oib-oiffile-sample", 1),
    ("bioio-vsi==0.1.0",
     ["bioio_vsi-0.1.0/bioio_vsi/tests/resources/vsi-ets-test-jpg2k.vsi",
      "bioio_vsi-0.1.0/bioio_vsi/tests/resources/_vsi-ets-test-jpg2k_/stack1/frame_t_0.ets"],
     "vsi-bioio-jpeg2000", 2),
]


def fetch_sdist_members(requirement: str, members: list[str]) -> Path:
    """The members of a PyPI sdist, extracted under omeio's cache dir (pip runs once)."""
    from omeio.jar import cache_dir

    folder = cache_dir() / "conformance-samples" / requirement.replace("==", "-")
    if all((folder / m).is_file() for m in members):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--quiet", requirement, "-d", tmp], capture_output=True, text=True, timeout=300)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(f"pip download {requirement} failed: {done.stderr.strip()[-300:]}")
        with tarfile.open(archives[0]) as archive:
            for member in members:
                target = folder / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    return folder


def make_sdist_samples(folder: Path) -> dict[str, Sample]:
    out = {}
    for requirement, members, name, series in SDIST_SAMPLES:
        try:
            root = fetch_sdist_members(requirement, members)
        except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as exc:
            UNAVAILABLE[name] = str(exc)
            continue
        out[name] = Sample(root / members[0], series_count=series)
    return out


#: sample name -> why it could not be fetched (the test says so and skips)
UNAVAILABLE: dict[str, str] = {}
#: maker -> why it made nothing (its writer library is missing; those tests skip)
MISSING_WRITERS: dict[str, str] = {}

MAKERS = [make_pillow, make_imagecodecs, make_tifffile, make_ome_tiff, make_svs, make_qptiff,
          make_ics, make_lsm, make_dm3, make_nifti, make_mrc, make_dv, make_dicom, make_czi, make_ims,
          make_sdist_samples]


# -- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Sample]:
    folder = tmp_path_factory.mktemp("thirdparty")
    samples: dict[str, Sample] = {}
    for make in MAKERS:
        try:
            samples.update(make(folder))
        except pytest.skip.Exception as exc:  # a writer library is not installed
            MISSING_WRITERS[make.__name__] = str(exc)
    return samples


@pytest.fixture(scope="module")
def converted(corpus, tmp_path_factory) -> dict[str, Path | str]:
    """bfconvert's OME-TIFF of every sample (or why there is none): two JVMs for them all."""
    out = tmp_path_factory.mktemp("bfconvert")
    names = list(corpus)
    jobs = [(corpus[n].path, out / f"{n}.ome.tif") for n in names]
    outcomes = conformance.bfconvert_many(jobs, find_jar(), workers=2, timeout=600)
    return {n: (dest if why is None else why) for n, (_, dest), why in zip(names, jobs, outcomes)}


def whole(br: BioReader) -> np.ndarray:
    return br.read_region(Region(range(br.Y), range(br.X), tuple(range(br.Z)),
                                 tuple(range(br.C)), tuple(range(br.T))))


def oracle_array(tif, oracle, level: int) -> np.ndarray:
    h, w, nz, nc, nt = oracle.sizes[level]
    out = np.empty((h, w, nz, nc, nt), oracle.dtype)
    for z in range(nz):
        for c in range(nc):
            for t in range(nt):
                out[:, :, z, c, t] = conformance.oracle_rows(tif, oracle, level, z, c, t, 0, h)
    return out


SAMPLE_NAMES = [
    "png-gray8", "png-gray16", "png-rgb8", "png-rgba8", "png-palette", "gif-palette", "bmp-rgb",
    "png-palette-4bit", "jpeg-rgb", "jpeg-gray", "png-rgb16", "tiff-strips-bigendian", "tiff-tiled-planar-rgb-float",
    "imagej-hyperstack", "tiff-lzw-int32", "ome-tiff-2series-pyramid", "svs", "qptiff",
    "ics2-uint16", "ics1-float-bigendian", "lsm-uint8-zc", "dm3-int16", "dm3-uint16",
    "dm3-float32", "nifti-int16-3d", "nifti-float32-4d-gz",
    "nifti-shipped-anatomical.nii", "nifti-shipped-example4d.nii.gz", "mrc-int8", "mrc-int16",
    "mrc-uint16", "mrc-float32", "dv-uint16", "dicom-multiframe-uint16", "dicom-rgb8",
    "dicom-int16", "dicom-shipped-CT_small", "dicom-shipped-MR_small_bigendian",
    "dicom-shipped-SC_rgb_rle", "czi-uint16-cz", "czi-bgr24", "ims", "oib-oiffile-sample",
    "vsi-bioio-jpeg2000",
]


def test_every_sample_is_listed(corpus):
    made = sorted([*corpus, *UNAVAILABLE])
    if MISSING_WRITERS:
        assert set(made) < set(SAMPLE_NAMES)
    else:
        assert made == sorted(SAMPLE_NAMES)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_matches_bfconvert_and_writer(name, corpus, converted):
    if name in UNAVAILABLE:
        pytest.skip(f"sample not available offline: {UNAVAILABLE[name]}")
    if name not in corpus:
        pytest.skip(f"writer library missing: {'; '.join(MISSING_WRITERS.values())}")
    sample = corpus[name]
    result = converted[name]
    if sample.undecodable:
        assert isinstance(result, str), "bfconvert converted a file it was expected to refuse"
        with BioReader(sample.path, backend="bioformats") as br:
            with pytest.raises(UnreadableFileError, match="Bio-Formats"):
                whole(br)
        return
    if isinstance(result, str):
        pytest.fail(f"bfconvert failed on {sample.path.name}: {result}")
    with tifffile.TiffFile(result) as tif:
        oracles = conformance.load_oracle(tif)
        with BioReader(sample.path, backend="bioformats") as br:
            assert br.series_count == sample.series_count == len(oracles)
        for series, oracle in enumerate(oracles):
            with BioReader(sample.path, backend="bioformats", series=series) as br:
                assert br.level_count == len(oracle.sizes) == sample.levels.get(series, 1)
                # the metadata bfconvert carried: image name, physical sizes, channel names
                image = br.file_metadata.images[series]
                assert (image.name or "") == oracle.name
                for axis in "XYZ":
                    value = oracle.pixels.get(f"PhysicalSize{axis}")
                    want = (None, None) if value is None else \
                        (float(value), oracle.pixels.get(f"PhysicalSize{axis}Unit", "µm"))
                    assert image.pixels.physical_size(axis) == want
                if oracle.spp == 1:
                    assert br.channel_names == oracle.channel_names
            for level in range(len(oracle.sizes)):
                with BioReader(sample.path, backend="bioformats", series=series,
                               level=level) as br:
                    ours = whole(br)
                want = oracle_array(tif, oracle, level)
                assert ours.shape == want.shape == oracle.sizes[level]
                assert ours.dtype == want.dtype == oracle.dtype
                np.testing.assert_array_equal(ours, want, err_msg=f"series {series} level {level}")
                expected = sample.expected.get(series)
                if expected is not None and (level == 0 or sample.pyramid_step):
                    step = sample.pyramid_step ** level if level else 1
                    expected = expected[::step, ::step]
                    assert ours.shape == expected.shape
                    assert ours.dtype == expected.dtype.newbyteorder("=")
                    np.testing.assert_array_equal(ours, expected)


# -- the checker itself: it must be able to fail --------------------------------------------------

@pytest.mark.parametrize("order", ["XYZCT", "XYZTC", "XYCZT", "XYCTZ", "XYTZC", "XYTCZ"])
def test_plane_numbers_follow_the_dimension_order(order):
    sizes = {"Z": 3, "C": 2, "T": 4}
    seen = set()
    for number in range(24):
        z, c, t = conformance._zct(number, order, sizes)
        assert conformance._plane_number((z, c, t), order, sizes) == number
        seen.add((z, c, t))
    assert len(seen) == 24
    # the fastest-varying axis is the third letter of the order
    first = conformance._zct(1, order, sizes)
    assert first == tuple(int(axis == order[2]) for axis in "ZCT")


def test_first_difference_is_bitwise():
    a = np.array([[0.0, np.nan], [1.5, 2.0]], np.float32)
    assert conformance.first_difference(a, a.copy()) is None
    assert conformance.first_difference(a, a.astype(">f4")) is None  # byte order is not a value
    b = a.copy()
    b[0, 0] = -0.0  # equal as numbers, different bits
    assert "1 pixel(s) differ, first at (y, x)=(0, 0)" in conformance.first_difference(a, b)
    assert conformance.first_difference(a, a[:1]).startswith("shape")
    assert conformance.first_difference(a, a.astype(np.float64)).startswith("dtype")


def test_bench_reports_ok_skip_and_fail(tmp_path, monkeypatch):
    (tmp_path / "two&sizeX=40&sizeY=30&sizeC=3&rgb=3&series=2&pixelType=uint16.fake").touch()
    (tmp_path / "notes.txt").write_text("not an image")
    jar = find_jar()
    out = io.StringIO()
    results = conformance.run([tmp_path], jar, out=out)
    assert [(r.path.suffix, r.series, r.status) for r in results] == [
        (".txt", None, "SKIP"), (".fake", 0, "OK"), (".fake", 1, "OK")]
    assert "3 plane(s) identical" in out.getvalue()

    from omeio.backends.bioformats_reader import BioformatsReader

    original = BioformatsReader.read_region

    def off_by_one(self, region, pool=None):
        data = original(self, region, pool)
        if self.series == 1:
            data[-1, -1, 0, -1, 0] += 1
        return data

    monkeypatch.setattr(BioformatsReader, "read_region", off_by_one)
    results = conformance.run([tmp_path], jar, out=io.StringIO())
    assert [r.status for r in results] == ["SKIP", "OK", "FAIL"]
    assert "c=2" in results[2].detail and "1 pixel(s) differ" in results[2].detail
