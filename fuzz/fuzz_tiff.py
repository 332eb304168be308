"""Fuzz omeio's reading of TIFF and OME-TIFF files with hostile headers, IFDs and OME-XML.

Each case is a small valid seed file (five layouts: omeio's own tiled OME-TIFF, tifffile's
stripped, tiled and BigTIFF OME-TIFFs, an ImageJ hyperstack) changed by a hypothesis-drawn
plan: OME-XML / ImageJ description edits (absurd sizes, wrong types, entity payloads, cut
XML), then IFD field tweaks (tag, type, count, value, next-IFD pointer), byte flips and a
truncation. Cases run in a child process under a memory limit (RLIMIT_DATA, which counts what
malloc and numpy take but not the address space the JVM merely reserves) and a per-case time
limit: a hang or a crash of the child is caught by the parent, which starts a new child. The
child keeps its JVM from case to case, and the JVM's heap (512 MiB) grows: a MemoryError is a
finding only if the case fails the same way again in a fresh child.

What a case does (:func:`exercise`) is what the converter does: open with content sniffing
(so the Bio-Formats fallback is fuzzed too), read the metadata, read the corners of the first
and last planes of the first series, and, when the image is small, read it whole, write it
with ``BioWriter`` and compare the output read back by tifffile.

Outcomes: ``ok`` (read), ``clean`` (an ``omeio.OmeioError``: a named, documented error) and
the findings: ``error`` (any other exception), ``mismatch`` (the written file differs from
what was read), ``crash`` (the child died), ``hang`` (over the time limit).

    python fuzz/fuzz_tiff.py --iterations 5000            # by hand; findings saved
    python fuzz/fuzz_tiff.py --iterations 150 --derandomize  # what CI runs
    python fuzz/fuzz_tiff.py --replay $TMPDIR/omeio-fuzz-findings/finding_0001_error.tif
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

#: values that break arithmetic: zero, one, powers of two, type limits, the file's own size
INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 1023, 1024, 4095, 65535, 65536, 10**6,
               2**24, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1)
#: stand-ins resolved against the case: file size, file size - 1, + 1
SIZE_MINUS, SIZE, SIZE_PLUS = -1, -2, -3
TIFF_TAGS = (254, 256, 257, 258, 259, 262, 270, 273, 277, 278, 279, 284, 317, 322, 323, 324,
             325, 338, 339, 330, 347, 530, 532)
OME_ATTRS = ("SizeX", "SizeY", "SizeZ", "SizeC", "SizeT", "Type", "DimensionOrder", "IFD",
             "PlaneCount", "FirstZ", "FirstC", "FirstT", "SamplesPerPixel", "PhysicalSizeX",
             "BigEndian", "Interleaved", "ID", "Significantbits")
OME_VALUES = ("0", "-1", "1", "2", "3", "7", "10000", "1000000", "4294967297", "99999999999999",
              "", "abc", "1e308", "NaN", "-0", "uint64", "float16", "bit", "complex", "double",
              "XYZTC", "XYCZT", "XYZCTQ", "true", "Image:9", "Pixels:0")
IMAGEJ_KEYS = ("images", "channels", "slices", "frames", "hyperstack", "spacing", "unit")
NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
#: ImageDescription replacements: entity payloads, a cut document, wrong roots, old schema
XML_PAYLOADS = ("laughs", "xxe", "cut", "garbage", "empty", "two_images", "no_pixels",
                "old_namespace", "tiffdata_far", "huge_attr")


# -- seeds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A valid starting file: how to build it, given an ImageDescription (None: its own)."""

    name: str
    ome: bool
    imagej: bool = False


SEEDS = (
    Seed("omeio_tiled", ome=True),
    Seed("strips", ome=True),
    Seed("tiled_lzw", ome=True),
    Seed("bigtiff_rgb", ome=True),
    Seed("imagej", ome=False, imagej=True),
)


def _pixels(name: str):
    import numpy as np

    rng = np.random.default_rng(len(name))
    if name == "omeio_tiled":
        return rng.integers(0, 65535, (40, 50, 3, 2, 1), dtype=np.uint16)  # Y X Z C T
    if name == "strips":
        return rng.integers(0, 255, (2, 2, 30, 20), dtype=np.uint8)  # C Z Y X
    if name == "tiled_lzw":
        return rng.standard_normal((2, 64, 48)).astype(np.float32)  # Z Y X
    if name == "bigtiff_rgb":
        return rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)
    return rng.integers(0, 4000, (2, 2, 24, 28), dtype=np.uint16)  # T Z Y X


@functools.lru_cache(maxsize=256)
def build_seed(seed: Seed, description: str | None = None) -> bytes:
    """The seed file's bytes; ``description`` replaces its ImageDescription when given."""
    import tifffile

    data = _pixels(seed.name)
    buf = io.BytesIO()
    if seed.name == "omeio_tiled":
        with tempfile.TemporaryDirectory() as tmp:
            from omeio import BioWriter

            path = Path(tmp) / "seed.ome.tif"
            with BioWriter(path, image=data, tile_size=16, channel_names=["a", "b"],
                           physical_size_x=(0.5, "µm")) as bw:
                bw.write(data)
            raw = path.read_bytes()
        if description is None:
            return raw
        # rewrite with tifffile, same pixels and layout family, the new description
        planes = data.transpose(4, 3, 2, 0, 1).reshape(-1, 40, 50)
        with tifffile.TiffWriter(buf) as tw:
            for i, plane in enumerate(planes):
                tw.write(plane, tile=(16, 16), compression="zlib", metadata=None,
                         description=description if i == 0 else None)
        return buf.getvalue()
    kwargs: dict = {}
    if seed.name == "strips":
        kwargs = dict(rowsperstrip=7, metadata={"axes": "CZYX"})
    elif seed.name == "tiled_lzw":
        kwargs = dict(tile=(16, 16), compression="lzw", predictor=True, metadata={"axes": "ZYX"})
    elif seed.name == "bigtiff_rgb":
        kwargs = dict(photometric="rgb", bigtiff=True, metadata={"axes": "YXS"})
    if seed.imagej:
        kwargs = dict(imagej=True, metadata={"axes": "TZYX", "spacing": 2.0, "unit": "um"})
    if description is not None:
        kwargs["metadata"] = None
        kwargs["description"] = description
        kwargs.pop("imagej", None)
        if seed.imagej:  # the ImageJ description makes tifffile treat the pages as one stack
            data = data.reshape(-1, *data.shape[-2:])
        kwargs.setdefault("photometric", "minisblack")
    tifffile.imwrite(buf, data, ome=seed.ome and description is None, **kwargs)
    return buf.getvalue()


@functools.cache
def seed_description(seed: Seed) -> str:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(build_seed(seed))) as tf:
        return tf.pages.first.description


# -- mutations -------------------------------------------------------------------------------


def _value(draw_value: int, size: int) -> int:
    return {SIZE_MINUS: size - 1, SIZE: size, SIZE_PLUS: size + 1}.get(draw_value, draw_value)


values = st.one_of(st.sampled_from(INTERESTING + (SIZE_MINUS, SIZE, SIZE_PLUS)),
                   st.integers(0, 2**16), st.integers(0, 2**32 - 1))
description_edits = st.one_of(
    st.tuples(st.just("attr"), st.sampled_from(OME_ATTRS + IMAGEJ_KEYS),
              st.sampled_from(OME_VALUES)),
    st.tuples(st.just("payload"), st.sampled_from(XML_PAYLOADS), st.integers(0, 10**6)),
)
binary_edits = st.one_of(
    st.tuples(st.just("entry"), st.integers(0, 10**4),
              st.sampled_from(("tag", "type", "count", "value")), values),
    st.tuples(st.just("next_ifd"), st.integers(0, 10**4), values),
    st.tuples(st.just("flip"), st.sampled_from(("header", "ifd", "any")), st.integers(0, 10**9),
              st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
)
plans = st.fixed_dictionaries({
    "seed": st.integers(0, len(SEEDS) - 1),
    "description": st.lists(description_edits, max_size=2),
    "binary": st.lists(binary_edits, min_size=0, max_size=4),
}).filter(lambda p: p["description"] or p["binary"])


def _payload(kind: str, base: str, n: int) -> str:
    if kind == "laughs":
        ents = '<!ENTITY a "aaaaaaaaaa">' + "".join(
            f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        body = base.split("?>", 1)[-1].replace('Name="', 'Name="&j;', 1)
        return f'<?xml version="1.0"?><!DOCTYPE OME [{ents}]>{body}'
    if kind == "xxe":
        body = base.split("?>", 1)[-1].replace('Name="', 'Name="&x;', 1)
        return f'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY x SYSTEM "file:///etc/hostname">]>{body}'
    if kind == "cut":
        return base[: n % max(1, len(base))]
    if kind == "garbage":
        return "".join(chr(33 + (n * 7 + i * 13) % 90) for i in range(64))
    if kind == "empty":
        return ""
    if kind == "two_images":
        m = re.search(r"<Image .*</Image>", base, re.S)
        return base if m is None else base.replace(m.group(0), m.group(0) * 2)
    if kind == "no_pixels":
        return re.sub(r"<Pixels .*</Pixels>", "", base, flags=re.S)
    if kind == "old_namespace":
        return base.replace(NS, "http://www.openmicroscopy.org/Schemas/OME/2012-06")
    if kind == "tiffdata_far":
        return re.sub(r"<TiffData[^>]*/>", f'<TiffData IFD="{n}" PlaneCount="{n}"/>', base)
    return base.replace("<Image ", f'<Image Description="{"x" * (n + 1000)}" ', 1)


def edit_description(text: str, edits) -> str:
    for edit in edits:
        if edit[0] == "attr":
            _, key, value = edit
            text, count = re.subn(rf'\b{key}="[^"]*"', f'{key}="{value}"', text, count=1)
            if not count:  # an ImageJ description: key=value lines
                text = re.sub(rf"(?m)^{key}=.*$", f"{key}={value}", text, count=1)
        else:
            text = _payload(edit[1], text, edit[2])
    return text


def _ifds(data: bytes) -> tuple[bool, list[int], list[int]]:
    """(bigtiff, offsets of the IFDs, offsets of their entries), following the chain."""
    big = data[2:4] == b"+\x00"
    first = struct.unpack_from("<Q" if big else "<I", data, 8 if big else 4)[0]
    ifds, entries, seen = [], [], set()
    at = first
    while 0 < at < len(data) - 8 and at not in seen and len(ifds) < 64:
        seen.add(at)
        ifds.append(at)
        n = struct.unpack_from("<Q" if big else "<H", data, at)[0]
        head, size = (8, 20) if big else (2, 12)
        if at + head + n * size + (8 if big else 4) > len(data) or n > 4096:
            break
        entries.extend(at + head + i * size for i in range(n))
        at = struct.unpack_from("<Q" if big else "<I", data, at + head + n * size)[0]
    return big, ifds, entries


def edit_binary(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for edit in edits:
        if len(out) < 16:
            break
        big, ifds, entries = _ifds(bytes(out))
        size = len(out)
        if edit[0] == "entry" and entries:
            _, k, what, raw = edit
            at = entries[k % len(entries)]
            value = _value(raw, size)
            if what == "tag":
                struct.pack_into("<H", out, at, TIFF_TAGS[value % len(TIFF_TAGS)])
            elif what == "type":
                struct.pack_into("<H", out, at + 2, value % 20)
            elif what == "count":
                struct.pack_into("<Q" if big else "<I", out, at + 4,
                                 value % (2**64 if big else 2**32))
            else:
                struct.pack_into("<Q" if big else "<I", out, at + (12 if big else 8),
                                 value % (2**64 if big else 2**32))
        elif edit[0] == "next_ifd" and ifds:
            _, k, raw = edit
            at = ifds[k % len(ifds)]
            n = struct.unpack_from("<Q" if big else "<H", out, at)[0]
            head, esize = (8, 20) if big else (2, 12)
            where = at + head + n * esize
            if where + 8 <= size:
                target = ifds[raw % len(ifds)] if raw < 64 else _value(raw, size)
                struct.pack_into("<Q" if big else "<I", out, where,
                                 target % (2**64 if big else 2**32))
        elif edit[0] == "flip":
            _, region, pos, mask = edit
            if region == "header":
                at = pos % 16
            elif region == "ifd" and entries:
                at = entries[pos % len(entries)] + pos % (20 if big else 12)
            else:
                at = pos % size
            out[at] ^= mask
        elif edit[0] == "truncate":
            del out[max(8, int(edit[1] * size)):]
    return bytes(out)


def make_case(plan: dict) -> bytes:
    seed = SEEDS[plan["seed"]]
    description = None
    if plan["description"]:
        description = edit_description(seed_description(seed), plan["description"])
    try:
        data = build_seed(seed, description)
    except Exception:  # tifffile refuses to write that description: keep the seed's own
        data = build_seed(seed)
    return edit_binary(data, plan["binary"])


# -- what one case does (in the child) -------------------------------------------------------

#: a whole image up to this many pixels is read, written and compared
ROUNDTRIP_PIXELS = 2**20
#: a case slower than this is listed (and saved) even when its outcome is fine
SLOW = 5.0
WINDOW = 256


def exercise(path: Path, scratch: Path) -> str:
    """Read ``path`` as the converter would; returns a short description of what was read."""
    import numpy as np
    import tifffile

    from omeio import BioReader, BioWriter

    with BioReader(path) as br:
        br.file_metadata.to_xml()
        y, x, z, c, t = br._backend.shape
        planes = [(0, 0, 0), (z - 1, c - 1, t - 1)]
        for pz, pc, pt in planes:
            for y0, x0 in ((0, 0), (max(0, y - WINDOW), max(0, x - WINDOW))):
                block = br[y0:y0 + WINDOW, x0:x0 + WINDOW, pz, pc, pt]
                assert block.dtype == br.dtype
        if y * x * z * c * t <= ROUNDTRIP_PIXELS:
            whole = br.read()
            out = scratch / "roundtrip.ome.tif"
            with BioWriter(out, metadata=br.metadata, max_workers=1) as bw:
                bw.dtype = br.dtype
                bw.write(whole)
            with tifffile.TiffFile(out) as tf:
                back = tf.asarray()
            expect = np.moveaxis(whole.reshape(y, x, z, c, t), (4, 3, 2), (0, 1, 2))
            if not np.array_equal(back.reshape(expect.shape), expect, equal_nan=True):
                raise AssertionError("written file differs from what was read")
            out.unlink()
        return f"{br.backend_name} {(y, x, z, c, t)} {br.dtype}"


def selftest(path: Path, scratch: Path) -> str:
    """A stand-in for :func:`exercise` that misbehaves on request: checks the harness."""
    what = path.read_bytes()
    if what == b"hang":
        time.sleep(3600)
    if what == b"crash":
        os.abort()
    if what == b"allocate":
        return str(len(bytearray(8 << 30)))
    if what == b"raise":
        raise KeyError("not a documented error")
    if what == b"clean":
        from omeio.errors import UnreadableFileError

        raise UnreadableFileError(path, "refused")
    return "fine"


TARGETS = {"exercise": exercise, "selftest": selftest}


def _serve(conn, memory: int, scratch: str, target: str = "exercise") -> None:
    """Child: run the cases the parent sends, under the memory limit, until told to stop."""
    import resource
    import threading

    def orphaned(parent: int = os.getppid()) -> None:  # the parent was killed: stop too
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ.setdefault("OMEIO_JAVA_HEAP", "512m")
    os.environ.setdefault("OMEIO_JAVA_LOG", "OFF")
    os.environ["OMEIO_JAVA_OPTS"] = (os.environ.get("OMEIO_JAVA_OPTS", "")
                                     + f" -XX:ErrorFile={scratch}/hs_err_%p.log")
    import logging

    logging.disable(logging.CRITICAL)  # tifffile logs every broken tag
    from omeio.errors import OmeioError

    conn.send(("ready", ""))
    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            what = TARGETS[target](Path(path), Path(scratch))
            conn.send(("ok", what))
        except OmeioError as exc:
            conn.send(("clean", f"{type(exc).__name__}: {exc}"))
        except AssertionError as exc:
            conn.send(("mismatch", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - every other exception is a finding
            conn.send(("error", "".join(traceback.format_exception(exc))[-3000:]))


@dataclass
class Result:
    outcome: str
    detail: str
    seconds: float


class Runner:
    """Feeds cases to a child process; restarts it after a hang or a crash."""

    FINDINGS = ("error", "mismatch", "crash", "hang")

    def __init__(self, timeout: float = 60.0, memory: int = 2 << 30,
                 workdir: Path | None = None, target: str = "exercise"):
        self.timeout = timeout
        self.target = target
        self.memory = memory
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="omeio-fuzz-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None
        self.restarts = 0

    def _start(self) -> None:
        scratch = self.workdir / "scratch"
        scratch.mkdir(exist_ok=True)
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self.memory, str(scratch), self.target),
                                       daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(120):
            raise RuntimeError("the fuzz child did not start")
        parent.recv()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
        self._proc = self._conn = None
        self.restarts += 1

    def run(self, data: bytes) -> Result:
        if self._proc is None:
            self._start()
        path = self.workdir / "case.tif"
        path.write_bytes(data)
        start = time.monotonic()
        self._conn.send(str(path))
        try:
            ready = self._conn.poll(self.timeout)
            if not ready:
                self._kill()
                return Result("hang", f"over {self.timeout:.0f} s", time.monotonic() - start)
            outcome, detail = self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._proc.join(10)
            code = self._proc.exitcode
            self._kill()
            return Result("crash", f"child exit code {code}", time.monotonic() - start)
        return Result(outcome, detail, time.monotonic() - start)

    def restart(self) -> None:
        self.close()
        self.restarts += 1

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
                self._proc.join(10)
            except (OSError, ValueError):
                pass
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = self._conn = None


@dataclass
class Campaign:
    """Outcomes of a run of cases, and the cases that were findings."""

    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    findings: list[tuple[dict, Result]] = field(default_factory=list)
    slow: list[tuple[dict, Result]] = field(default_factory=list)
    slowest: float = 0.0
    #: MemoryErrors that did not happen again in a fresh child
    retried: int = 0

    @property
    def cases(self) -> int:
        return sum(self.outcomes.values())

    def add(self, plan: dict, result: Result) -> None:
        self.outcomes[result.outcome] += 1
        self.slowest = max(self.slowest, result.seconds)
        if result.outcome == "clean":
            self.reasons[_reason_kind(result.detail)] += 1
        if result.outcome in Runner.FINDINGS:
            self.findings.append((plan, result))
        elif result.seconds > SLOW:
            self.slow.append((plan, result))


def _reason_kind(detail: str) -> str:
    """A clean error's reason without its numbers and paths, to count kinds of refusal."""
    text = detail.split(": ", 2)[-1]
    return re.sub(r"\d+", "N", text)[:80]


def campaign(iterations: int, runner: Runner, derandomize: bool = False,
             seed: int | None = None, save: Path | None = None) -> Campaign:
    """Run ``iterations`` hypothesis-drawn cases through ``runner``."""
    result = Campaign()

    @settings(max_examples=iterations, deadline=None, database=None, derandomize=derandomize,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(plan=plans)
    def one(plan):
        if result.cases >= iterations:
            return
        data = make_case(plan)
        outcome = runner.run(data)
        if outcome.outcome == "error" and "MemoryError" in outcome.detail:
            # the child holds a JVM whose heap grows case after case: a MemoryError counts
            # only if the case fails the same way in a fresh child
            runner.restart()
            again = runner.run(data)
            if again.outcome != "error" or "MemoryError" not in again.detail:
                result.retried += 1
                outcome = again
        finding = outcome.outcome in Runner.FINDINGS
        if save is not None and (finding or outcome.seconds > SLOW):
            save.mkdir(parents=True, exist_ok=True)
            kind = "finding" if finding else "slow"
            n = len(result.findings if finding else result.slow) + 1
            stem = save / f"{kind}_{n:04d}_{outcome.outcome}"
            stem.with_suffix(".tif").write_bytes(data)
            stem.with_suffix(".json").write_text(json.dumps(
                {"plan": plan, "outcome": outcome.outcome, "detail": outcome.detail},
                indent=1, default=str))
        result.add(plan, outcome)

    if seed is not None and not derandomize:
        one = hypothesis_seed(seed)(one)
    one()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--memory", type=float, default=2.0, help="GiB per case (RLIMIT_DATA)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--derandomize", action="store_true", help="the same cases every run")
    parser.add_argument("--findings", type=Path,
                        default=Path(tempfile.gettempdir()) / "omeio-fuzz-findings",
                        help="where to save the files of findings and slow cases")
    parser.add_argument("--replay", type=Path, nargs="+", metavar="FILE",
                        help="run these saved case files instead of new cases")
    args = parser.parse_args(argv)
    runner = Runner(args.timeout, int(args.memory * 2**30))
    if args.replay:
        try:
            results = [(path, runner.run(path.read_bytes())) for path in args.replay]
        finally:
            runner.close()
            shutil.rmtree(runner.workdir, ignore_errors=True)
        for path, res in results:
            print(f"{path}: {res.outcome} in {res.seconds:.1f} s\n  {res.detail}")
        return 1 if any(r.outcome in Runner.FINDINGS for _, r in results) else 0
    start = time.monotonic()
    try:
        result = campaign(args.iterations, runner, args.derandomize, args.seed, args.findings)
    finally:
        runner.close()
        shutil.rmtree(runner.workdir, ignore_errors=True)
    elapsed = time.monotonic() - start
    print(f"{result.cases} cases in {elapsed:.0f} s (slowest {result.slowest:.1f} s, "
          f"{runner.restarts} child restart(s), {result.retried} MemoryError(s) gone in a "
          "fresh child)")
    for outcome, n in sorted(result.outcomes.items()):
        print(f"  {outcome:9s} {n}")
    print("most frequent clean refusals:")
    for reason, n in result.reasons.most_common(12):
        print(f"  {n:5d}  {reason}")
    for plan, res in result.slow:
        print(f"SLOW {res.seconds:.1f} s ({res.outcome}): {json.dumps(plan, default=str)}")
    for plan, res in result.findings:
        print(f"FINDING {res.outcome}: {json.dumps(plan, default=str)}\n{res.detail}")
    if result.findings or result.slow:
        print(f"their files and plans are in {args.findings}")
    return 1 if result.findings else 0


if __name__ == "__main__":
    sys.exit(main())
