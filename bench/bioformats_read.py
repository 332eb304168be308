"""What omeio's Bio-Formats backend costs over plain JPype, and what a second worker buys.

    python bench/bioformats_read.py [--repeat N]

1. open + read one 4096x4096 uint16 plane (a ``.fake`` file): ``BioReader`` against a plain
   JPype loop (ImageReader, setId, openBytes, np.frombuffer);
2. ``read_region`` of 4 such planes with ``max_workers`` 1 and 2 (one opened reader each).

The JVM is started (and Bio-Formats' classes loaded) before any timing. Medians of N runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import omeio
from omeio.indexing import Region

SIZE = 4096


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_jpype(path: Path) -> np.ndarray:
    from jpype import JClass

    reader = JClass("loci.formats.ImageReader")()
    reader.setId(str(path))
    try:
        data = np.frombuffer(memoryview(reader.openBytes(0)), "<u2").reshape(SIZE, SIZE).copy()
    finally:
        reader.close()
    return data


def omeio_plane(path: Path) -> np.ndarray:
    with omeio.BioReader(path, backend="bioformats", max_workers=1) as br:
        return br.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / f"one&sizeX={SIZE}&sizeY={SIZE}&pixelType=uint16.fake"
        four = Path(tmp) / f"four&sizeX={SIZE}&sizeY={SIZE}&sizeZ=4&pixelType=uint16.fake"
        one.touch()
        four.touch()
        start = time.perf_counter()
        omeio.start()
        print(f"JVM start: {time.perf_counter() - start:.3f} s")
        np.testing.assert_array_equal(omeio_plane(one), plain_jpype(one))  # warm-up and check
        plane_mb = SIZE * SIZE * 2 / 1e6
        t_plain = median_time(lambda: plain_jpype(one), args.repeat)
        t_omeio = median_time(lambda: omeio_plane(one), args.repeat)
        print(f"open + read one {SIZE}x{SIZE} uint16 plane ({plane_mb:.0f} MB), median of "
              f"{args.repeat}:")
        print(f"  plain JPype loop : {t_plain * 1e3:7.1f} ms")
        print(f"  omeio BioReader  : {t_omeio * 1e3:7.1f} ms  ({t_omeio / t_plain:.2f}x)")
        region = Region(range(SIZE), range(SIZE), (0, 1, 2, 3), (0,), (0,))
        print(f"read_region of 4 planes ({4 * plane_mb:.0f} MB), reader already open:")
        for workers in (1, 2):
            with omeio.BioReader(four, backend="bioformats", max_workers=workers) as br:
                br.read_region(region)  # the pool's readers are opened here, untimed
                t = median_time(lambda br=br: br.read_region(region), args.repeat)
            print(f"  max_workers={workers}    : {t * 1e3:7.1f} ms  ({4 * plane_mb / t:.0f} MB/s)")


if __name__ == "__main__":
    main()
