"""Scaling of the converter with the image size: time per pixel and peak memory, one image a run.

    python bench/scaling.py [--shapes 4096x4096,10000x10000,20000x20000,20000x4096]
                            [--runs 3] [--formats .ome.tif,.ome.zarr] [--data DIR] [--out FILE]

Each shape (HEIGHTxWIDTH) is one uncompressed 512x512-tiled uint16 TIFF with the workloads'
synthetic content (``synth.py``), made once under ``DIR/scaling/``. Every round converts each
shape once per format with ``python -m ome_converter`` (and the tifffile floor, for scale),
in turn, measured from outside like ``run.py`` does (wall, CPU of the tree, peak tree RSS).

A 64x64 image gives the fixed cost of a run (interpreter, worker start, imports): ``marginal
ns/px`` is (median wall - that) / pixels, the cost that grows with the image, which is what
must stay flat (within 15 % from 4096^2 to 20000^2); ``ns/px`` includes the fixed cost.
Memory must not grow with the height: 20000x4096 should cost what 4096x4096 does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
from pathlib import Path

import machine
import measure
import numpy as np
import synth
from make_workloads import DEFAULT_OUT

TILE = 512


def make_input(folder: Path, height: int, width: int) -> Path:
    """The shape's TIFF (kept: made again only when missing or of the wrong size)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{height}x{width}" / "image.tif"
    expected = height * width * 2
    if path.is_file() and path.stat().st_size > expected:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if height * width <= 64 * 64:
        data = synth.Plane((9, height, width), height, width).array()
        tifffile.imwrite(path, data, photometric="minisblack", metadata=None)
        return path
    plane = synth.Plane((9, height, width), height, width)
    tmp = path.with_suffix(".partial")
    tifffile.imwrite(tmp, plane.tiles(TILE), shape=(height, width), dtype=np.uint16,
                     tile=(TILE, TILE), photometric="minisblack", metadata=None)
    os.replace(tmp, path)
    return path


def _machine() -> str:
    m = machine.describe()
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    return (f"{m['affinity']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux "
            f"{m['kernel']}; Python {m['python']}; {m['java']}. Commit {m['commit']}. {libs}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="4096x4096,10000x10000,20000x20000,20000x4096")
    ap.add_argument("--formats", default=".ome.tif,.ome.zarr")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--work", type=Path, default=Path("/tmp/omeio-bench/scaling-work"))
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)

    shapes = [(64, 64)] + [tuple(int(v) for v in s.lower().split("x"))
                           for s in args.shapes.split(",")]
    inputs = {shape: make_input(args.data / "scaling", *shape) for shape in shapes}
    python, bench = sys.executable, Path(__file__).resolve().parent
    commands = {f"omeio {ext}": [python, "-m", "ome_converter", "--inpDir", "{in}",
                                 "--filePattern", ".+", "--outDir", "{out}",
                                 "--fileExtension", ext]
                for ext in args.formats.split(",")}
    if not args.no_floor:
        commands["tifffile-floor"] = [python, str(bench / "floor_tifffile.py"), "{in}", "{out}"]
    env = {k: v for k, v in os.environ.items() if k not in ("NUM_WORKERS", "NUM_THREADS")}
    args.work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    runs: dict[tuple, list[measure.Run]] = {}
    for _ in range(args.runs):
        for shape, path in inputs.items():
            for name, cmd in commands.items():
                out = args.work / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                full = [str(path.parent) if c == "{in}" else str(out) if c == "{out}" else c
                        for c in cmd]
                run = measure.run_tree(full, env, args.work / "log.txt", 1800)
                if run.returncode != 0:
                    print((args.work / "log.txt").read_text()[-2000:], file=sys.stderr)
                    raise SystemExit(f"{name} failed on {shape}")
                runs.setdefault((name, shape), []).append(run)
    load_end = os.getloadavg()

    lines = [f"# Scaling {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}", "",
             f"Machine: {_machine()}", "",
             f"Command: `python bench/scaling.py --shapes {args.shapes} --formats "
             f"{args.formats} --runs {args.runs}`; load average at start "
             f"{' '.join(f'{v:.2f}' for v in load_start)}, at end "
             f"{' '.join(f'{v:.2f}' for v in load_end)}.", "",
             "| contender | Y x X | wall s, median [min-max] | CPU s | ns/px | marginal ns/px "
             "| vs 4096^2 | peak tree RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for name in commands:
        fixed = statistics.median(r.wall_s for r in runs[(name, (64, 64))])
        base = None
        for shape in shapes:
            rs = runs[(name, shape)]
            wall = statistics.median(r.wall_s for r in rs)
            px = shape[0] * shape[1]
            marginal = (wall - fixed) / px * 1e9 if shape != (64, 64) else float("nan")
            if shape == (4096, 4096):
                base = marginal
            rel = f"{marginal / base:.2f}" if base and shape != (64, 64) else "-"
            lines.append(
                f"| {name} | {shape[0]}x{shape[1]} | {wall:.2f} [{min(r.wall_s for r in rs):.2f}-"
                f"{max(r.wall_s for r in rs):.2f}] | {statistics.median(r.cpu_s for r in rs):.1f} "
                f"| {wall / px * 1e9:.2f} | "
                f"{'-' if shape == (64, 64) else f'{marginal:.2f}'} | {rel} | "
                f"{max(r.peak_tree_rss_mib for r in rs):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
