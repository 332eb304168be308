"""Runs that are cut short: the whole process group killed, or one worker process killed.

Nothing half-written may look complete, and the next run must finish the job.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile
from plugin_process import start_plugin as _start

PLANES = 16
SIDE = 1024


def _stack(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 65535, (PLANES, SIDE, SIDE), dtype=np.uint16)


def _write_stacks(inp: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Z-stacks: each gives PLANES outputs, converted one after the other."""
    rng = np.random.default_rng(11)
    stacks = {}
    for name in names:
        stacks[name] = _stack(rng)
        tifffile.imwrite(inp / f"{name}.ome.tif", stacks[name], metadata={"axes": "ZYX"})
    return stacks


def _complete(out: Path) -> set[str]:
    return {n for n in os.listdir(out) if not n.startswith(".")} if out.exists() else set()


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _check_outputs(out: Path, names: set[str], stacks: dict[str, np.ndarray]) -> None:
    for name in names:
        m = re.fullmatch(r"(\w+?)_z(\d+)\.ome\.tif", name)
        assert m, name
        with tifffile.TiffFile(out / name) as tf:
            np.testing.assert_array_equal(tf.asarray(), stacks[m.group(1)][int(m.group(2))],
                                          err_msg=name)


def test_killed_run_leaves_only_complete_outputs_and_rerun_finishes(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    stacks = _write_stacks(inp, ["a", "b", "c"])
    expected = {f"{s}_z{z}.ome.tif" for s in stacks for z in range(PLANES)}

    proc = _start(inp, out)
    _wait_for(lambda: len(_complete(out)) >= 4, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.2)
    done = _complete(out)
    assert 4 <= len(done) < len(expected)
    assert done <= expected
    _check_outputs(out, done, stacks)  # whatever has a final name is complete and exact
    before = {n: (out / n).stat().st_mtime_ns for n in done}
    debris = {n for n in os.listdir(out) if n.startswith(".")}
    assert all(n.endswith(".partial") for n in debris)
    (out / ".zz.ome.tif.partial").write_bytes(b"left by an older run")
    debris.add(".zz.ome.tif.partial")

    rerun = _start(inp, out)
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, stderr
    assert f"skipped {len(done)} complete outputs" in stderr
    for name in debris:
        assert f"removing {name} left by an interrupted run" in stderr
    assert os.listdir(out) and set(os.listdir(out)) == expected  # no .partial debris
    _check_outputs(out, expected, stacks)
    assert {n: (out / n).stat().st_mtime_ns for n in done} == before  # not rewritten

    forced = _start(inp, out, "--overwrite", "--filePattern", "a.*")
    _, stderr = forced.communicate(timeout=240)
    assert forced.returncode == 0, stderr
    assert f"summary: 1 converted ({PLANES} outputs written)" in stderr
    _check_outputs(out, expected, stacks)


def _workers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())]


def test_killed_worker_fails_its_file_only(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    stacks = _write_stacks(inp, ["a", "b"])
    rng = np.random.default_rng(5)
    single = rng.integers(0, 255, (700, 900), dtype=np.uint8)
    tifffile.imwrite(inp / "c.tif", single)

    proc = _start(inp, out, "--numWorkers", "1", POLUS_LOG="DEBUG")
    # one worker converts a's planes (two at a time, in any order): kill it in the middle of a
    _wait_for(lambda: {"a_z0.ome.tif", "a_z1.ome.tif"} <= _complete(out), proc)
    workers = _workers(proc.pid)
    assert len(workers) == 1
    workers[0].kill()
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr
    failed = [ln for ln in stderr.splitlines() if " - FAILED " in ln]
    assert len(failed) == 1 and "FAILED a.ome.tif: its worker process died" in failed[0], stderr
    names = set(os.listdir(out))
    assert not [n for n in names if n.startswith(".")]  # the dead worker's temporary is gone
    assert {f"b_z{z}.ome.tif" for z in range(PLANES)} | {"c.ome.tif"} <= names
    a_done = {n for n in names if n.startswith("a_")}
    assert {"a_z0.ome.tif", "a_z1.ome.tif"} <= a_done and len(a_done) < PLANES
    _check_outputs(out, names - {"c.ome.tif"}, stacks)
    with tifffile.TiffFile(out / "c.ome.tif") as tf:
        np.testing.assert_array_equal(tf.asarray(), single)
    assert "summary: 2 converted" in stderr and "1 failed" in stderr
    # the parent never had a JVM, and its workers were spawned
    assert re.search(r"parent process \d+ has a JVM: False", stderr)
    assert "worker start method(s): spawn;" in stderr


def test_sigterm_stops_workers_and_discards_unfinished_outputs(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    stacks = _write_stacks(inp, ["a", "b"])
    proc = _start(inp, out)
    _wait_for(lambda: len(_complete(out)) >= 2 and len(_workers(proc.pid)) == 2, proc)
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGTERM)  # the parent only, as a scheduler cancelling a job does
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    names = set(os.listdir(out))
    assert not [n for n in names if n.startswith(".")]
    _check_outputs(out, names, stacks)
