"""The tifffile-alone floor: what converting costs with no framework around the codecs.

    python bench/floor_tifffile.py IN OUT

Every 2-D plane of every TIFF/PNG in IN becomes one 1024x1024-tiled OME-TIFF in OUT (deflate
level 1, two compression threads, 16 MiB of tiles in flight). TIFF pages are read in 1024-row bands through tifffile's
zarr store, so memory stays at a band whatever the image size.
"""

import sys
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import zarr

TILE = 1024


def tiles(bands, width):
    for band in bands:
        for x in range(0, width, TILE):
            yield band[:, x:x + TILE]


def write(path, shape, dtype, bands):
    tifffile.imwrite(path, tiles(bands, shape[1]), shape=shape, dtype=dtype, tile=(TILE, TILE),
                     photometric="minisblack", compression="adobe_deflate",
                     compressionargs={"level": 1}, maxworkers=2, ome=True,
                     buffersize=16 * 2**20)  # the default (512 MiB) would hold ~13 bands


def planes(path):
    """(shape, dtype, band iterator) of each plane."""
    with open(path, "rb") as fh:
        is_png = fh.read(4) == b"\x89PNG"
    if is_png:
        data = imagecodecs.png_decode(path.read_bytes())
        for p in (data[..., s] for s in range(data.shape[-1])) if data.ndim == 3 else [data]:
            yield p.shape, p.dtype, (p[y:y + TILE] for y in range(0, p.shape[0], TILE))
        return
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            if page.samplesperpixel > 1:  # interleaved RGB: samples become planes
                data = page.asarray().reshape(page.shape[0], page.shape[1], -1)
                for s in range(data.shape[-1]):
                    p = np.ascontiguousarray(data[..., s])
                    yield p.shape, p.dtype, (p[y:y + TILE] for y in range(0, p.shape[0], TILE))
                continue
            arr = zarr.open(page.aszarr(), mode="r")
            h = arr.shape[0]
            yield arr.shape, arr.dtype, (arr[y:y + TILE] for y in range(0, h, TILE))


def main(src: Path, dst: Path) -> None:
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        stem = path.name.split(".")[0]
        n = 0
        for n, (shape, dtype, bands) in enumerate(planes(path), 1):
            write(dst / f"{stem}_{n - 1:03d}.ome.tif", shape, dtype, bands)
        if n == 1:  # a single plane keeps the input's name
            (dst / f"{stem}_000.ome.tif").rename(dst / f"{stem}.ome.tif")

if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
