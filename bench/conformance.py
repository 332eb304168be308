"""Does omeio's Bio-Formats backend read every series of real files exactly as bfconvert writes them?

    python bench/conformance.py [--jar JAR] [--keep DIR] PATH...

PATH is a file or a folder (searched recursively; hidden entries are skipped). For every file
that Bio-Formats can read, Bio-Formats' own converter (``loci.formats.tools.ImageConverter``,
i.e. ``bfconvert -noflat``: series stay series, resolutions become SubIFDs) writes one OME-TIFF
in a separate JVM, and that OME-TIFF is decoded here with tifffile and ElementTree alone: the
planes are found through the OME-XML's ``TiffData`` and ``DimensionOrder``, RGB samples are split
into channels, sub-resolutions are the SubIFDs. Every plane of every level of every series is
then compared bit for bit with ``BioReader(file, backend="bioformats", series=S, level=L)``.

``bfconvert_many`` runs the same conversion for many files in one JVM (the test suite's use).

One line per file and series: ``OK``, ``FAIL`` (with the first difference) or ``SKIP`` (not
readable by Bio-Formats at all, or a companion file of a dataset already checked). Exit
status 1 if any line is ``FAIL``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

#: OME pixel types as numpy dtypes (``bit`` is unpacked to one byte per pixel by Bio-Formats)
OME_DTYPES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4",
              "uint32": "u4", "float": "f4", "double": "f8", "bit": "u1"}
#: planes larger than this are converted tile by tile (Java arrays stop at 2 GiB)
TILED_CONVERSION_BYTES = 1 << 30
#: rows of a plane compared at a time, so that a whole-slide plane never sits in memory twice
BAND_BYTES = 256 << 20


def find_jar(explicit: str | None = None) -> Path:
    """The jar to run bfconvert from: ``--jar``, ``$BIOFORMATS_JAR``, else omeio's own."""
    if explicit:
        return Path(explicit)
    from omeio.jar import find_jar as omeio_jar

    return omeio_jar()


def bfconvert(src: Path, dest: Path, jar: Path, series: int | None = None, tile: int = 0,
              timeout: float = 3600) -> None:
    """Run Bio-Formats' converter in its own JVM; RuntimeError with its last words on failure."""
    cmd = ["java", "-Djava.awt.headless=true", "-cp", str(jar),
           "loci.formats.tools.ImageConverter", "-no-upgrade", "-noflat", "-no-sas", "-overwrite"]
    if series is not None:
        cmd += ["-series", str(series)]
    if tile:
        cmd += ["-tilex", str(tile), "-tiley", str(tile)]
    cmd += [str(src), str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not dest.is_file():
        raise RuntimeError(f"bfconvert exit {done.returncode}: "
                           f"{_java_error(done.stderr or done.stdout)}")


def _java_error(text: str) -> str:
    """The exception lines of a Java stack trace (not its ``at ...`` frames), else the tail."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    causes = [ln for ln in lines if ("Exception" in ln or "Error" in ln)
              and not ln.startswith(("at ", "..."))]
    return " | ".join((causes or lines)[-2:])[:500]


#: runs in a child process: one JVM, ``ImageConverter.testConvert`` (the whole of bfconvert's
#: ``main``) once per job; results go to a JSON file, since the converter prints on stdout
_BATCH = r"""
import json, sys
import jpype
jar, jobs_file, results_file = sys.argv[1:4]
jpype.startJVM("-Djava.awt.headless=true", classpath=[jar], convertStrings=True)
from jpype import JClass, JString
Converter, Writer = JClass("loci.formats.tools.ImageConverter"), JClass("loci.formats.ImageWriter")
results = []
for args in json.load(open(jobs_file)):
    try:
        ok = bool(Converter().testConvert(Writer(), jpype.JArray(JString)(args)))
        results.append(None if ok else "bfconvert reported failure")
    except Exception as exc:
        results.append(f"{exc.__class__.__name__}: {exc}".splitlines()[0][:500])
json.dump(results, open(results_file, "w"))
"""


def bfconvert_many(jobs: list[tuple[Path, Path]], jar: Path, workers: int = 2,
                   timeout: float = 3600) -> list[str | None]:
    """Convert many (source, OME-TIFF) pairs in ``workers`` JVMs: None per success, else why.

    The same conversion as :func:`bfconvert` without a JVM start per file (the test suite's
    use); each JVM runs its share of the jobs one after another.
    """
    args = [["-no-upgrade", "-noflat", "-no-sas", "-overwrite", str(src), str(dest)]
            for src, dest in jobs]
    results: list[str | None] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="bfconvert-") as tmp:
        procs = []
        for w in range(min(workers, len(jobs))):
            share = list(range(w, len(jobs), workers))
            jobs_file, results_file = Path(tmp) / f"jobs{w}.json", Path(tmp) / f"results{w}.json"
            jobs_file.write_text(json.dumps([args[i] for i in share]))
            cmd = [sys.executable, "-c", _BATCH, str(jar), str(jobs_file), str(results_file)]
            procs.append((share, results_file, subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        for share, results_file, proc in procs:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0 or not results_file.exists():
                tail = " | ".join(err.strip().splitlines()[-3:])
                for i in share:
                    results[i] = f"converter process exit {proc.returncode}: {tail}"
                continue
            for i, outcome in zip(share, json.loads(results_file.read_text())):
                results[i] = outcome
    for i, (_, dest) in enumerate(jobs):
        if results[i] is None and not dest.is_file():
            results[i] = "no output written"
    return results


# -- the oracle: bfconvert's OME-TIFF, decoded without omeio --------------------------------------

@dataclass
class OracleImage:
    """One OME Image of bfconvert's output: where each plane of each level lives."""

    name: str
    pixel_type: str
    sizes: list[tuple[int, int, int, int, int]]  # per level: Y, X, Z, C (samples split), T
    spp: int
    #: per (z, effective channel, t): the IFD index of the full-resolution page
    ifds: dict[tuple[int, int, int], int] = field(default_factory=dict)
    #: the Pixels element's attributes and the channel names, as bfconvert wrote them
    pixels: dict[str, str] = field(default_factory=dict)
    channel_names: list[str | None] = field(default_factory=list)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(OME_DTYPES[self.pixel_type])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in element if _local(e.tag) == name]


def _zct(index: int, order: str, sizes: dict[str, int]) -> tuple[int, int, int]:
    """Plane number -> (z, c, t) for an OME DimensionOrder (``XYZCT`` ...): fastest axis first."""
    coords = {}
    for axis in order[2:]:
        index, coords[axis] = divmod(index, sizes[axis])
    return coords["Z"], coords["C"], coords["T"]


def load_oracle(tif: tifffile.TiffFile) -> list[OracleImage]:
    """Every OME Image of bfconvert's output, in document order."""
    root = ET.fromstring(tif.ome_metadata)
    images = []
    for image in _children(root, "Image"):
        pixels = _children(image, "Pixels")[0]
        a = pixels.attrib
        channels = _children(pixels, "Channel")
        spp = int(channels[0].get("SamplesPerPixel", 1)) if channels else 1
        size_c = int(a["SizeC"])
        sizes = {"Z": int(a["SizeZ"]), "C": max(1, size_c // spp), "T": int(a["SizeT"])}
        oracle = OracleImage(image.get("Name", ""), a["Type"], [], spp, pixels=dict(a),
                             channel_names=[ch.get("Name") for ch in channels])
        order = a["DimensionOrder"]
        for td in _children(pixels, "TiffData"):
            ifd = int(td.get("IFD", 0))
            count = int(td.get("PlaneCount", 1 if "IFD" in td.attrib else 0))
            first = (int(td.get("FirstZ", 0)), int(td.get("FirstC", 0)), int(td.get("FirstT", 0)))
            start = _plane_number(first, order, sizes)
            for k in range(count):
                oracle.ifds[_zct(start + k, order, sizes)] = ifd + k
        expected = sizes["Z"] * sizes["C"] * sizes["T"]
        if len(oracle.ifds) != expected:
            raise ValueError(f"image {len(images)}: TiffData name {len(oracle.ifds)} of "
                             f"{expected} planes")
        page = tif.pages[oracle.ifds[(0, 0, 0)]]
        levels = [page] + list(page.pages or [])
        oracle.sizes = [(int(p.imagelength), int(p.imagewidth), sizes["Z"], size_c, sizes["T"])
                        for p in levels]
        images.append(oracle)
    return images


def _plane_number(zct: tuple[int, int, int], order: str, sizes: dict[str, int]) -> int:
    coords = dict(zip("ZCT", zct))
    number, stride = 0, 1
    for axis in order[2:]:
        number += coords[axis] * stride
        stride *= sizes[axis]
    return number


def oracle_rows(tif: tifffile.TiffFile, oracle: OracleImage, level: int, z: int, c: int, t: int,
                y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of the plane (z, channel c with samples split, t) at ``level``."""
    channel, sample = divmod(c, oracle.spp)
    page = tif.pages[oracle.ifds[(z, channel, t)]]
    if level:
        page = page.pages[level - 1]
    key = (id(tif), tif.filename, page.offset, y0, y1)
    if _last.get("key") != key:  # the samples of one RGB page are asked for one after another
        planar = page.planarconfig == 2 and page.samplesperpixel > 1
        if page.nbytes > BAND_BYTES:
            import zarr

            with page.aszarr() as store:
                whole = zarr.open(store, mode="r")
                data = np.asarray(whole[:, y0:y1] if planar else whole[y0:y1])
        else:
            whole = page.asarray()
            data = whole[:, y0:y1] if planar else whole[y0:y1]
        _last.update(key=key, data=data, planar=planar)
    data = _last["data"]
    if data.ndim == 3:
        data = data[sample] if _last["planar"] else data[..., sample]
    return data.astype(np.uint8) if data.dtype == bool else data


_last: dict = {}


# -- the comparison ---------------------------------------------------------------------------------

@dataclass
class Result:
    path: Path
    series: int | None
    status: str  # OK, FAIL, SKIP
    detail: str

    def line(self, root: Path | None = None) -> str:
        name = str(self.path.relative_to(root)) if root and self.path.is_relative_to(root) \
            else str(self.path)
        where = f"  series {self.series}" if self.series is not None else ""
        return f"{self.status:<4} {name}{where}: {self.detail}"


def _bits(a: np.ndarray) -> np.ndarray:
    """Values as native-order bytes: floats compared bit for bit (NaN payloads, -0.0)."""
    a = np.ascontiguousarray(a, a.dtype.newbyteorder("="))
    return a.view(np.uint8).reshape(*a.shape, a.dtype.itemsize) if a.ndim else a.view(np.uint8)


def first_difference(got: np.ndarray, want: np.ndarray) -> str | None:
    """None when equal bit for bit, else where and how they first differ."""
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype.newbyteorder("=") != want.dtype.newbyteorder("="):
        return f"dtype {got.dtype} != {want.dtype}"
    diff = (_bits(got) != _bits(want)).reshape(*got.shape, -1).any(axis=-1)
    if not diff.any():
        return None
    where = tuple(int(i) for i in np.argwhere(diff)[0])
    return (f"{int(diff.sum())} pixel(s) differ, first at (y, x)={where}: "
            f"{got[where]!r} != {want[where]!r}")


def compare_series(src: Path, tif: tifffile.TiffFile, oracle: OracleImage, series: int,
                   max_workers: int = 2) -> tuple[bool, str]:
    """Every level and plane of one series against the oracle: (ok, detail)."""
    from omeio import BioReader
    from omeio.indexing import Region

    planes = 0
    with BioReader(src, backend="bioformats", series=series, max_workers=max_workers) as br:
        level_count, kind = br.level_count, br.series_kind()
    if level_count != len(oracle.sizes):
        return False, f"{level_count} level(s), bfconvert wrote {len(oracle.sizes)}"
    for level in range(level_count):
        with BioReader(src, backend="bioformats", series=series, level=level,
                       max_workers=max_workers) as br:
            shape = (br.Y, br.X, br.Z, br.C, br.T)
            if shape != oracle.sizes[level]:
                return False, f"level {level}: YXZCT {shape}, bfconvert {oracle.sizes[level]}"
            if br.dtype != oracle.dtype:
                return False, f"level {level}: dtype {br.dtype}, bfconvert {oracle.pixel_type}"
            h, w, nz, nc, nt = shape
            band = max(1, BAND_BYTES // max(1, w * nc * br.dtype.itemsize))
            for z in range(nz):
                for t in range(nt):
                    for y0 in range(0, h, band):
                        y1 = min(h, y0 + band)
                        ours = br.read_region(Region(range(y0, y1), range(w), (z,),
                                                     tuple(range(nc)), (t,)))
                        for c in range(nc):
                            want = oracle_rows(tif, oracle, level, z, c, t, y0, y1)
                            problem = first_difference(ours[:, :, 0, c, 0], want)
                            if problem:
                                return False, (f"level {level} z={z} c={c} t={t} rows "
                                               f"{y0}:{y1}: {problem}")
                    planes += nc
    h, w, nz, nc, nt = oracle.sizes[0]
    return True, (f"{kind}, YXZCT=({h}, {w}, {nz}, {nc}, {nt}) {oracle.pixel_type}, "
                  f"{level_count} level(s), {planes} plane(s) identical")


def used_files(path: Path) -> tuple[int, list[Path]]:
    """Series count and every file Bio-Formats reads for ``path`` (its dataset's members)."""
    from jpype import JClass

    from omeio import java

    java.start()
    reader = JClass("loci.formats.ImageReader")()
    try:
        reader.setFlattenedResolutions(False)
        reader.setId(str(path.resolve()))
        return int(reader.getSeriesCount()), [Path(str(f)).resolve() for f in reader.getUsedFiles()]
    finally:
        reader.close()


def check_file(src: Path, jar: Path, work: Path, series_count: int | None = None,
               tile: int | None = None) -> list[Result]:
    """bfconvert ``src`` once (per series only if that fails), then compare every series."""
    from omeio import BioReader

    if series_count is None:
        with BioReader(src, backend="bioformats") as br:
            series_count = br.series_count
    if tile is None:
        tile = 0
        for s in range(series_count):
            with BioReader(src, backend="bioformats", series=s) as br:
                if br.Y * br.X * br.C * br.dtype.itemsize > TILED_CONVERSION_BYTES:
                    tile = 1024
    out = work / (src.name + ".ome.tif")
    targets: list[tuple[Path, int, int]] = []  # (bfconvert output, its image index, our series)
    failures: list[Result] = []
    try:
        bfconvert(src, out, jar, tile=tile)
        targets = [(out, s, s) for s in range(series_count)]
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        if "Unsupported image type" in str(exc):  # e.g. 'bit': no Bio-Formats writer takes it
            return [Result(src, None, "SKIP", f"bfconvert cannot write it: {exc}")]
        if series_count == 1:
            return [_without_reference(src, 0, exc)]
        for s in range(series_count):
            one = work / f"{src.name}.s{s}.ome.tif"
            try:
                bfconvert(src, one, jar, series=s, tile=tile)
                targets.append((one, 0, s))
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                failures.append(_without_reference(src, s, err))
    results = list(failures)
    opened: dict[Path, tuple[tifffile.TiffFile, list[OracleImage]]] = {}
    try:
        for target, index, s in targets:
            if target not in opened:
                tif = tifffile.TiffFile(target)
                opened[target] = (tif, load_oracle(tif))
            tif, oracles = opened[target]
            if len(oracles) != (series_count if target == out else 1):
                results.append(Result(src, s, "FAIL", f"{series_count} series, bfconvert wrote "
                                      f"{len(oracles)} image(s)"))
                continue
            try:
                ok, detail = compare_series(src, tif, oracles[index], s)
            except Exception as exc:  # a reader failure is a FAIL of this series, not the run
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results.append(Result(src, s, "OK" if ok else "FAIL", detail))
    finally:
        for tif, _ in opened.values():
            tif.close()
    return sorted(results, key=lambda r: r.series or 0)


def _without_reference(src: Path, series: int, error: BaseException) -> Result:
    """bfconvert failed: consistent only if omeio cannot decode that series' pixels either."""
    from omeio import BioReader
    from omeio.indexing import Region

    try:
        with BioReader(src, backend="bioformats", series=series) as br:
            h, w, nz, nc, nt = br.Y, br.X, br.Z, br.C, br.T
            for z in range(nz):
                for t in range(nt):
                    br.read_region(Region(range(h), range(w), (z,), tuple(range(nc)), (t,)))
    except Exception as exc:  # noqa: BLE001 - the reason is reported
        return Result(src, series, "SKIP", f"Bio-Formats cannot decode its pixels (bfconvert: "
                      f"{error}; omeio: {type(exc).__name__}: {str(exc)[:200]})")
    return Result(src, series, "FAIL", f"omeio read every plane, bfconvert failed: {error}")


def candidates(paths: list[Path]) -> Iterator[Path]:
    """Files under the given paths, sorted, without hidden entries or Zarr stores."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                             not d.endswith((".zarr", ".ome.zarr")))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(folder) / name


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    kind = type(exc).__name__
    return (text if kind in text else f"{kind}: {text}")[:300]


def run(paths: list[Path], jar: Path, keep: Path | None = None, out=sys.stdout) -> list[Result]:
    """Check every candidate file; print and return one result per file and series."""
    from omeio import BioReader, UnreadableFileError

    covered: set[Path] = set()
    results: list[Result] = []
    root = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
    for src in candidates(paths):
        if src.resolve() in covered:
            new = [Result(src, None, "SKIP", "part of a dataset already checked")]
        else:
            started = time.perf_counter()
            try:
                count, members = used_files(src)
            except Exception as exc:  # noqa: BLE001 - Java's reasons for not reading it
                new = [Result(src, None, "SKIP", f"not readable by Bio-Formats ({_first_line(exc)})")]
            else:
                try:
                    with BioReader(src, backend="bioformats"):
                        pass
                except UnreadableFileError as exc:
                    new = [Result(src, None, "FAIL", f"Bio-Formats reads it, omeio: {exc.reason}")]
                else:
                    covered.update(members)
                    if keep is not None:
                        new = check_file(src, jar, keep, series_count=count)
                    else:
                        with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
                            new = check_file(src, jar, Path(tmp), series_count=count)
                for r in new:
                    r.detail += f" [{time.perf_counter() - started:.1f} s]"
        for r in new:
            print(r.line(root), file=out, flush=True)
        results.extend(new)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders of real images")
    parser.add_argument("--jar", help="bioformats_package.jar (default: omeio's)")
    parser.add_argument("--keep", type=Path, help="keep bfconvert's OME-TIFFs in this folder")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    results = run(args.paths, find_jar(args.jar), args.keep)
    counts = {s: sum(r.status == s for r in results) for s in ("OK", "FAIL", "SKIP")}
    print(f"{counts['OK']} OK, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
