"""omeio's memory check: writing and reading big planes must cost a band, not the plane.

    python bench/memory_core.py [--shapes 4096x4096,...] [--dir DIR] [--target-mib 300]

For each shape and each format (.ome.tif, .ome.zarr) a fresh process writes a uint16 image with ``BioWriter`` in 1024-row bands (made band by band, never whole), then another
fresh process reads it back with ``BioReader`` window by window (1024 x 1024) and checks every
pixel. Each phase reports its peak RSS twice: sampled by a thread every 20 ms, and the
kernel's high-water mark (``ru_maxrss``). Fresh processes keep one phase's high-water mark
out of the next. A band is 1024 rows of the full width, so memory may grow with the width but
must not grow with the height: 20000x4096 should cost what 4096x4096 does. Exit status 1
when a phase goes over ``--target-mib``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from measure import output_size

BAND = 1024
MIB = 2**20


def window(y0: int, x0: int, rows: int, cols: int) -> np.ndarray:
    """A 1024-aligned block: a gradient plus noise seeded by the block, so it compresses like an
    image and the reader can rebuild any window without the band around it."""
    y = (np.arange(y0, y0 + rows, dtype=np.uint16) // 8)[:, None]
    x = (np.arange(x0, x0 + cols, dtype=np.uint16) // 8)[None, :]
    block = np.random.default_rng([7, y0, x0]).integers(0, 64, (rows, cols), dtype=np.uint16)
    block += y
    block += x
    return block


def band(y0: int, rows: int, width: int) -> np.ndarray:
    out = np.empty((rows, width), np.uint16)
    for x0 in range(0, width, BAND):
        out[:, x0:x0 + BAND] = window(y0, x0, rows, min(BAND, width - x0))
    return out


class PeakRss(threading.Thread):
    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()
        self._me = psutil.Process()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._me.memory_info().rss)
            self._done.wait(self.interval)

    def finish(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, self._me.memory_info().rss)


def write(path: Path, height: int, width: int) -> None:
    from omeio import BioWriter

    with BioWriter(path, X=width, Y=height, dtype=np.uint16) as bw:
        for y0 in range(0, height, BAND):
            rows = min(BAND, height - y0)
            bw[y0:y0 + rows, 0:width, 0, 0, 0] = band(y0, rows, width)


def read(path: Path, height: int, width: int) -> None:
    from omeio import BioReader

    with BioReader(path) as br:
        if (br.Y, br.X, br.dtype) != (height, width, np.uint16):
            raise SystemExit(f"{path.name}: read back {br.Y}x{br.X} {br.dtype}")
        for y0 in range(0, height, BAND):
            for x0 in range(0, width, BAND):
                rows, cols = min(BAND, height - y0), min(BAND, width - x0)
                got = br[y0:y0 + rows, x0:x0 + cols, 0, 0, 0]
                if not np.array_equal(got, window(y0, x0, rows, cols)):
                    raise SystemExit(f"{path.name}: pixels differ in window ({y0}, {x0})")


def child(phase: str, path: Path, height: int, width: int) -> None:
    """One phase in this (fresh) process; prints a JSON line."""
    import omeio  # noqa: F401 - the import's own memory is the baseline

    baseline = psutil.Process().memory_info().rss
    sampler = PeakRss()
    sampler.start()
    t0 = time.monotonic()
    (write if phase == "write" else read)(path, height, width)
    seconds = time.monotonic() - t0
    peak = sampler.finish()
    print(json.dumps({"seconds": seconds, "baseline_mib": baseline / MIB,
                      "peak_sampled_mib": peak / MIB,
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="4096x4096,10000x10000,20000x20000,20000x4096",
                    help="HEIGHTxWIDTH list; the last one shows that height costs nothing")
    ap.add_argument("--formats", default=".ome.tif,.ome.zarr")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/omeio-bench/memory"))
    ap.add_argument("--target-mib", type=float, default=300.0)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]), int(args.child[3]))
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    rows, over = [], False
    print(f"| Y x X | format | phase | seconds | baseline MiB | peak RSS sampled MiB "
          f"| ru_maxrss MiB | file MiB | < {args.target_mib:.0f} MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        height, width = (int(v) for v in shape.lower().split("x"))
        for ext in args.formats.split(","):
            path = args.dir / f"core_{height}x{width}{ext}"
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
            for phase in ("write", "read"):
                run = subprocess.run([sys.executable, __file__, "--child", phase, str(path),
                                      str(height), str(width)], capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"| {height}x{width} | {ext} | {phase} | failed: "
                          f"{(run.stderr or run.stdout).strip().splitlines()[-1:]} |")
                    over = True
                    break
                r = json.loads(run.stdout.strip().splitlines()[-1])
                size = output_size(path)[0] if path.is_dir() else path.stat().st_size
                ok = max(r["peak_sampled_mib"], r["ru_maxrss_mib"]) < args.target_mib
                over |= not ok
                rows.append({"height": height, "width": width, "format": ext, "phase": phase, **r,
                             "file_mib": size / MIB, "under_target": ok})
                print(f"| {height}x{width} | {ext} | {phase} | {r['seconds']:.1f} | {r['baseline_mib']:.0f} "
                      f"| {r['peak_sampled_mib']:.0f} | {r['ru_maxrss_mib']:.0f} "
                      f"| {size / MIB:.0f} | {'yes' if ok else 'NO'} |", flush=True)
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
