"""Decode any benchmark input or output into its 2-D planes, independently of omeio.

The verifier compares what goes in with what comes out by content alone, so every format a
contender may write (TIFF/OME-TIFF, OME-Zarr, PNG, ICS) is decoded here with the reference
libraries (tifffile, zarr, Pillow) or, for ICS, a few lines of numpy.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


def plane_digest(plane: np.ndarray) -> str:
    """Identity of a plane: dtype, shape and bytes (so a transposed or cast copy differs)."""
    plane = np.ascontiguousarray(plane)
    h = hashlib.sha256(f"{plane.dtype.str}{plane.shape}".encode())
    h.update(memoryview(plane).cast("B"))
    return h.hexdigest()


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in ZARR_MARKERS)


def image_items(folder: Path) -> list[Path]:
    """Files and Zarr stores under ``folder`` (a store counts once, its chunks are not items)."""
    items = []
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            items.extend([p] if is_zarr(p) else image_items(p))
        elif p.is_file():
            items.append(p)
    return items


def _split(data: np.ndarray, axes: str) -> Iterator[np.ndarray]:
    """Yield the (Y, X) planes of an array whose axis letters are ``axes``."""
    order = [i for i, a in enumerate(axes) if a not in "YX"] + [axes.index("Y"), axes.index("X")]
    data = data.transpose(order)
    yield from data.reshape(-1, *data.shape[-2:])


def tiff_planes(path: Path) -> Iterator[np.ndarray]:
    """Every top-level page (SubIFD pyramid levels are not planes of the image)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            yield from _split(page.asarray(), page.axes)


def png_planes(path: Path) -> Iterator[np.ndarray]:
    from PIL import Image

    with Image.open(path) as im:
        data = np.asarray(im)
    yield from _split(data, "YXS" if data.ndim == 3 else "YX")


def _multiscale_arrays(group, found: list) -> None:
    """Level 0 of every multiscales image in the hierarchy (OME-Zarr 0.4 or 0.5 attributes)."""
    attrs = dict(group.attrs)
    multiscales = attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")
    if multiscales:
        found.append(group[multiscales[0]["datasets"][0]["path"]])
        return
    for _, child in sorted(group.groups()):
        _multiscale_arrays(child, found)


def zarr_planes(path: Path) -> Iterator[np.ndarray]:
    """Planes of level 0, the last two axes being Y and X."""
    import zarr

    node = zarr.open(path, mode="r")
    arrays: list = []
    if isinstance(node, zarr.Array):
        arrays.append(node)
    else:
        _multiscale_arrays(node, arrays)
    if not arrays:
        raise ValueError("no multiscales image in the Zarr hierarchy")
    for arr in arrays:
        for index in np.ndindex(*arr.shape[:-2]):
            yield np.asarray(arr[index])


def _ics_header(text: str) -> dict[str, list[str]]:
    """``category [subcategory]`` -> values; the first line only declares the separators."""
    fields = {}
    for line in text.splitlines()[1:]:
        tokens = [t for t in line.split("\t") if t]
        if len(tokens) >= 3:
            fields[f"{tokens[0]} {tokens[1]}"] = tokens[2:]
        elif len(tokens) == 2:
            fields[tokens[0]] = tokens[1:]
    return fields


def ics_planes(path: Path) -> Iterator[np.ndarray]:
    """ICS 2.0 (one file) or 1.0 (``.ics`` + ``.ids``), uncompressed or gzip."""
    raw = path.read_bytes()
    end = raw.find(b"\nend\n")
    if end < 0:
        raise ValueError("no 'end' line in the ICS header")
    hdr = _ics_header(raw[:end].decode("latin-1"))
    order = hdr["layout order"]
    sizes = [int(v) for v in hdr["layout sizes"]]
    bits = sizes[order.index("bits")]
    kind = {"real": "f", "float": "f"}.get(hdr.get("representation format", ["integer"])[0])
    if kind is None:
        kind = "i" if hdr.get("representation sign", ["unsigned"])[0] == "signed" else "u"
    big = bits > 8 and hdr.get("representation byte_order", ["1"])[0] != "1"
    dtype = np.dtype(f"{'>' if big else '<'}{kind}{bits // 8}")
    if "source offset" in hdr:
        data = raw[int(hdr["source offset"][0]):]
    elif hdr.get("ics_version", ["1.0"])[0].startswith("2"):
        data = raw[end + 5:]
    else:
        data = path.with_suffix(".ids").read_bytes()
    if hdr.get("representation compression", ["uncompressed"])[0] == "gzip":
        data = zlib.decompress(data, 31)
    axes = [a for a in order if a != "bits"]
    dims = [s for s, a in zip(sizes, order, strict=True) if a != "bits"]
    arr = np.frombuffer(data, dtype, int(np.prod(dims))).astype(dtype.newbyteorder("="))
    # ICS lists the fastest-varying axis first; numpy wants it last
    arr = arr.reshape(dims[::-1])
    yield from _split(arr, "".join({"x": "X", "y": "Y"}.get(a, "O") for a in axes[::-1]))


def planes(path: Path) -> Iterator[np.ndarray]:
    """All 2-D planes of one file or Zarr store, whatever its format (judged by content)."""
    path = Path(path)
    if path.is_dir():
        yield from zarr_planes(path)
        return
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in TIFF_MAGIC:
        yield from tiff_planes(path)
    elif head == PNG_MAGIC:
        yield from png_planes(path)
    elif head.startswith(b"\t\n") or head.startswith(b"\t\r\n") or path.suffix == ".ics":
        yield from ics_planes(path)
    elif path.suffix == ".ids":
        return  # the pixels of an ICS 1.0 pair, decoded with its .ics header
    else:
        raise ValueError(f"unknown format (first bytes {head!r})")


def describe(path: Path) -> dict:
    """A JSON-able summary of a file's planes (shape, dtype), for messages."""
    return {"planes": [[list(p.shape), str(p.dtype)] for p in planes(path)]}


if __name__ == "__main__":  # pragma: no cover - manual inspection
    import sys

    print(json.dumps({str(p): describe(Path(p)) for p in sys.argv[1:]}, indent=1))
