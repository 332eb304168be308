"""Write the benchmark's four input collections (deterministic; skipped when up to date).

    python bench/make_workloads.py [--size full|small] [--out DIR] [--only w1,w4] [--jar JAR]

Folders under ``DIR/SIZE/``: ``w1_collection`` (strip TIFFs), ``w2_big`` (one big tiled TIFF),
``w3_formats`` (PNG gray + RGB and a C=3 Z=10 OME-TIFF), ``w4_bioformats`` (ICS files written by
Bio-Formats itself, a format only Bio-Formats reads) with its pixels as plain TIFFs in
``w4_bioformats_ref`` for the verifier. ``manifest.json`` records each workload's parameters
and files; a workload whose parameters and file sizes match is not made again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import machine
import numpy as np
import planes
import synth

#: bump a workload's number when its content or layout changes: only it is made again
GENERATOR = {"w1": 1, "w2": 1, "w3": 2, "w4": 1}
DEFAULT_OUT = Path("/tmp/omeio-bench/data")
#: tifffile would draw a random UUID for the OME-TIFF: the bytes would differ between runs
FIXED_UUID = "urn:uuid:6f6d6569-6f00-4b00-8000-20251121b3c4"
FOLDERS = {"w1": "w1_collection", "w2": "w2_big", "w3": "w3_formats", "w4": "w4_bioformats"}
SIZES = {
    "full": {"w1": {"files": 16, "side": 4096}, "w2": {"side": 20000, "tile": 512},
             "w3": {"side": 2048, "z": 10, "c": 3}, "w4": {"files": 16, "side": 2048}},
    "small": {"w1": {"files": 4, "side": 1024}, "w2": {"side": 3000, "tile": 512},
              "w3": {"side": 512, "z": 3, "c": 3}, "w4": {"files": 4, "side": 512}},
}


def _tiff(path: Path, data, **kw) -> None:
    import tifffile

    tifffile.imwrite(path, data, photometric="minisblack", **kw)


def _png(path: Path, data: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(data).save(path, compress_level=6)


def make_w1(folder: Path, p: dict) -> None:
    """Plain (not OME) uncompressed strip TIFFs, 64 rows per strip: the common lab export."""
    for i in range(p["files"]):
        plane = synth.Plane((1, i), p["side"], p["side"])
        _tiff(folder / f"img_{i:02d}.tif", plane.array(), rowsperstrip=64, metadata=None)


def make_w2(folder: Path, p: dict) -> None:
    """One plane too big to hold twice in a converter's memory; written tile by tile."""
    plane = synth.Plane((2, 0), p["side"], p["side"])
    _tiff(folder / "big.tif", plane.tiles(p["tile"]), shape=(p["side"], p["side"]),
          dtype=np.uint16, tile=(p["tile"], p["tile"]), metadata=None)


def make_w3(folder: Path, p: dict) -> None:
    """Mixed formats: 8-bit gray and RGB PNG, a multi-channel z-stack OME-TIFF in strips."""
    side = p["side"]
    for i in range(2):
        _png(folder / f"gray_{i}.png", synth.Plane((3, i), side, side, synth.LOOK_8).array())
    rgb = np.stack([synth.Plane((3, 10 + c), side, side, synth.LOOK_8).array() for c in range(3)],
                   axis=-1)
    _png(folder / "rgb.png", rgb)
    z, c = p["z"], p["c"]
    stack = (synth.Plane((3, 100 + iz * c + ic), side, side).array()
             for iz in range(z) for ic in range(c))
    _tiff(folder / "stack.ome.tif", stack, shape=(z, c, side, side), dtype=np.uint16, ome=True,
          metadata={"axes": "ZCYX", "UUID": FIXED_UUID}, rowsperstrip=64)


def make_w4(folder: Path, p: dict, jar: Path) -> None:
    """Bio-Formats converts reference TIFFs to ICS 2.0, two JVMs at a time.

    It runs inside the ICS folder with relative names because the header records the output
    name as given: the bytes then do not depend on where the data lives.
    """
    ref = ref_folder(folder)
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    names = [f"img_{i:02d}" for i in range(p["files"])]
    for i, name in enumerate(names):
        _tiff(ref / f"{name}.tif", synth.Plane((4, i), p["side"], p["side"]).array(),
              metadata=None)

    def convert(name: str) -> None:
        cmd = ["java", "-cp", str(jar), "loci.formats.tools.ImageConverter", "-no-upgrade",
               f"../{ref.name}/{name}.tif", f"{name}.ics"]
        run = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(convert, names))
    import tifffile

    for name in names:
        got = list(planes.ics_planes(folder / f"{name}.ics"))
        want = tifffile.imread(ref / f"{name}.tif")
        if len(got) != 1 or not np.array_equal(got[0], want) or got[0].dtype != want.dtype:
            raise RuntimeError(f"{name}.ics does not hold exactly {name}.tif's pixels")


def ref_folder(folder: Path) -> Path:
    """Where the verifier finds a workload's expected pixels when its inputs are not readable."""
    return folder.with_name(folder.name + "_ref")


def params(wid: str, size: str, jar: Path | None) -> dict:
    p = {"generator": GENERATOR[wid], "size": size, "seed": synth.SEED, "band": synth.BAND,
         "numpy": np.__version__, **SIZES[size][wid],
         "looks": [asdict(synth.LOOK_16)] + ([asdict(synth.LOOK_8)] if wid == "w3" else [])}
    if wid == "w4":
        p["jar_sha256"] = machine.sha256_file(jar) if jar and jar.is_file() else None
        p["jar_version"] = machine.jar_version(jar) if jar else None
        p["java"] = machine.java_version()
    return p


def _files(root: Path, folders: list[Path]) -> dict[str, dict]:
    return {str(f.relative_to(root)): {"bytes": f.stat().st_size, "sha256": machine.sha256_file(f)}
            for d in folders for f in sorted(d.iterdir()) if f.is_file()}


def up_to_date(entry: dict | None, p: dict, root: Path) -> bool:
    if not entry or entry.get("params") != p or not entry.get("files"):
        return False
    return all((root / name).is_file() and (root / name).stat().st_size == f["bytes"]
               for name, f in entry["files"].items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="data root (default %(default)s)")
    ap.add_argument("--only", default="w1,w2,w3,w4", help="workloads to make (default all)")
    ap.add_argument("--jar", help="Bio-Formats jar for w4 (default: omeio's)")
    args = ap.parse_args(argv)
    root = args.out / args.size
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("workloads", {})
    jar = machine.find_jar(args.jar)
    for wid in [w.strip() for w in args.only.split(",") if w.strip()]:
        if wid not in FOLDERS:
            ap.error(f"unknown workload {wid!r}")
        folder = root / FOLDERS[wid]
        if wid == "w4" and (jar is None or not jar.is_file() or machine.java_version() is None):
            print(f"[skip] w4: needs java and the Bio-Formats jar (--jar; found {jar})")
            continue
        p = params(wid, args.size, jar)
        if up_to_date(manifest["workloads"].get(wid), p, root):
            print(f"[up to date] {wid} {folder}")
            continue
        manifest["workloads"].pop(wid, None)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t0 = time.monotonic()
        maker = {"w1": make_w1, "w2": make_w2, "w3": make_w3}.get(wid)
        maker(folder, p) if maker else make_w4(folder, p, jar)
        folders = [folder] + ([ref_folder(folder)] if wid == "w4" else [])
        manifest["workloads"][wid] = {"folder": FOLDERS[wid], "params": p,
                                      "files": _files(root, folders)}
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        total = sum(f["bytes"] for f in manifest["workloads"][wid]["files"].values())
        print(f"[made] {wid} {folder}: {total / 2**20:.0f} MiB in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
