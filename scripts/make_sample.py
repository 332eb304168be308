"""Make a small mixed sample collection for the demo: the formats a microscopy lab hands over.

Usage: python scripts/make_sample.py OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

import omeio


def make(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261121)
    made = []
    # a plain strip TIFF, 16-bit
    p = out / "strips.tif"
    tifffile.imwrite(p, rng.integers(0, 4096, (1500, 1300), np.uint16), rowsperstrip=64)
    made.append(p)
    # a tiled, compressed TIFF with an odd tile size
    p = out / "tiled.tif"
    tifffile.imwrite(p, rng.integers(0, 255, (1100, 2100), np.uint8), tile=(256, 512),
                     compression="zlib")
    made.append(p)
    # a multi-channel z-stack OME-TIFF with channel names and physical sizes
    p = out / "stack.ome.tif"
    tifffile.imwrite(
        p, rng.integers(0, 60000, (2, 3, 700, 900), np.uint16),
        metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]},
                  "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325, "PhysicalSizeZ": 2.0},
    )
    made.append(p)
    # an RGB PNG: only Bio-Formats (of our backends) reads it
    p = out / "photo.png"
    Image.fromarray(rng.integers(0, 255, (400, 600, 3), np.uint8), "RGB").save(p)
    made.append(p)
    # Bio-Formats' synthetic format: two series, two channels, from the name alone
    p = out / "synthetic&sizeX=1200&sizeY=800&sizeC=2&pixelType=uint16&series=2.fake"
    p.touch()
    made.append(p)
    # an OME-Zarr store
    p = out / "plate.ome.zarr"
    with omeio.BioWriter(p, X=1030, Y=1030, C=1, dtype="uint16") as bw:
        bw[:] = rng.integers(0, 1000, (1030, 1030), np.uint16)
    made.append(p)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for path in make(Path(sys.argv[1])):
        print(f"made {path}")
