"""Hostile TIFF and OME-TIFF files: a bounded fuzzing run (fuzz/fuzz_tiff.py) in CI.

150 hypothesis-drawn mutations of valid OME-TIFFs (the same cases every run), each in a child
process under a 2 GiB data limit and a time limit: no case may hang, crash the child or raise
anything but a named omeio error. ``python fuzz/fuzz_tiff.py --iterations 5000`` is the long
run by hand.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omeio import BioReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
fuzz_tiff = importlib.import_module("fuzz_tiff")

CASES = 150


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = fuzz_tiff.Runner(timeout=60, memory=2 << 30, workdir=tmp_path_factory.mktemp("fuzz"))
    yield r
    r.close()


def test_harness_catches_hangs_crashes_and_allocations(tmp_path):
    """The harness itself: a hang, an abort and an 8 GiB allocation are findings, and the
    next case runs in a fresh child."""
    r = fuzz_tiff.Runner(timeout=3, memory=2 << 30, workdir=tmp_path, target="selftest")
    try:
        got = [(what, r.run(what)) for what in
               (b"fine", b"clean", b"raise", b"hang", b"fine", b"crash", b"allocate", b"fine")]
    finally:
        r.close()
    outcomes = [(what, res.outcome) for what, res in got]
    assert outcomes == [(b"fine", "ok"), (b"clean", "clean"), (b"raise", "error"),
                        (b"hang", "hang"), (b"fine", "ok"), (b"crash", "crash"),
                        (b"allocate", "error"), (b"fine", "ok")]
    details = dict((what, res.detail) for what, res in got)
    assert details[b"clean"].startswith("UnreadableFileError: ") and "refused" in details[b"clean"]
    assert "KeyError" in details[b"raise"]
    assert details[b"crash"] == "child exit code -6"  # SIGABRT
    assert details[b"allocate"].strip().endswith("MemoryError")
    assert 3 <= got[3][1].seconds < 10
    assert r.restarts == 2


@pytest.mark.parametrize("seed", fuzz_tiff.SEEDS, ids=lambda s: s.name)
def test_seeds_are_valid_and_read_exactly(seed, tmp_path):
    """Every mutation starts from a file that omeio reads exactly as tifffile does."""
    data = fuzz_tiff.build_seed(seed)
    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        assert tf.is_ome == seed.ome and tf.is_imagej == seed.imagej
        expected = tf.series[0].asarray()
        axes = tf.series[0].axes.replace("S", "C")  # RGB samples are channels
    for letter in "YXZCT":  # tifffile's axes -> Y, X, Z, C, T
        if letter not in axes:
            expected, axes = expected[..., None], axes + letter
    expected = np.transpose(expected, [axes.index(a) for a in "YXZCT"])
    assert fuzz_tiff.build_seed(seed) == data  # the same bytes every time
    path = tmp_path / f"{seed.name}.tif"
    path.write_bytes(data)
    with BioReader(path, backend="tiff") as br:
        assert br._backend.shape == expected.shape and br.dtype == expected.dtype
        np.testing.assert_array_equal(br.read().reshape(expected.shape), expected)


def test_mutations_change_the_file_deterministically():
    plan = {"seed": 1, "description": [("attr", "SizeZ", "10000")],
            "binary": [("entry", 3, "count", 2**31), ("flip", "header", 2, 0x40)]}
    one, two = fuzz_tiff.make_case(plan), fuzz_tiff.make_case(plan)
    assert one == two and one != fuzz_tiff.build_seed(fuzz_tiff.SEEDS[1])
    assert b'SizeZ="10000"' in one


def test_fuzzed_files_fail_cleanly(runner, tmp_path):
    result = fuzz_tiff.campaign(CASES, runner, derandomize=True, save=tmp_path / "findings")
    report = "\n".join(f"{res.outcome}: {plan}\n{res.detail}" for plan, res in result.findings)
    assert result.findings == [], report
    assert result.cases == CASES
    assert set(result.outcomes) <= {"ok", "clean"}
    # the mutations do reach both sides: files still read, and files refused with a reason
    assert result.outcomes["ok"] >= 20 and result.outcomes["clean"] >= 20, result.outcomes
    assert result.slowest < 60
    print(f"\nfuzz: {result.cases} cases, {dict(result.outcomes)}, slowest "
          f"{result.slowest:.1f} s, {result.retried} MemoryError(s) gone in a fresh child")
