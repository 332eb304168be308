"""Faults during a run: SIGKILL at several points, a full output filesystem, workers that die.

After every fault, whatever carries a final output name must be complete and exact (read back
with tifffile and zarr, not omeio), temporaries must be hidden ``.NAME.partial`` entries only,
and the next run must finish the job without converting anything twice.

Faults inside the plugin's processes are injected from outside the product: a
``sitecustomize`` module on ``PYTHONPATH`` (imported by every interpreter of the run, workers
included) wraps a few functions according to ``OMEIO_TEST_FAULT``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tifffile
import zarr

FAILED = re.compile(r" - ERROR   - FAILED (.+?): (.*)$")
DIED = "its worker process died (killed, out of memory, or crashed)"
ENOSPC = "OSError: [Errno 28] No space left on device"

#: the fault injector; ``OMEIO_TEST_FAULT`` is ``kind:marker`` items separated by commas
SITECUSTOMIZE = r'''
import builtins, errno, os

FAULTS = [item.split(":", 1) for item in os.environ.get("OMEIO_TEST_FAULT", "").split(",")
          if item]


def _marked(kind, path):
    return any(k == kind and m in str(path) for k, m in FAULTS)


def _full():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


if FAULTS:
    from omeio.backends import tiff_writer, zarr_writer
    from omeio import reader

    # enospc: every write to a marked output fails (TIFF tiles via os.pwrite, Zarr chunks via
    # open); enospc-close: the TIFF writer's last writes, its IFDs at close(), fail
    _pwrite, _open, _closing = os.pwrite, builtins.open, set()

    def pwrite(fd, data, offset):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if _marked("enospc", target) or target in _closing:
            raise _full()
        return _pwrite(fd, data, offset)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax") and _marked("enospc", file):
            raise _full()
        return _open(file, mode, *args, **kwargs)

    _close = tiff_writer.TiffWriter.close

    def close(self):
        if _marked("enospc-close", self.path):
            _closing.add(str(self.path.resolve()))
        return _close(self)

    tiff_writer.os.pwrite = pwrite
    zarr_writer.open = open_
    tiff_writer.TiffWriter.close = close

    # abort: the worker aborts (SIGABRT) when it starts writing a marked input's output;
    # exit: the worker exits (status 3) when it first opens a marked input (planning)
    _writer_init = tiff_writer.TiffWriter.__init__

    def writer_init(self, path, *args, **kwargs):
        if _marked("abort", path):
            os.abort()
        _writer_init(self, path, *args, **kwargs)

    tiff_writer.TiffWriter.__init__ = writer_init
    _reader_init = reader.BioReader.__init__

    def reader_init(self, path, *args, **kwargs):
        if _marked("exit", path):
            os._exit(3)
        if _marked("jvm", path):  # a real crash of the JVM: a write to address 0
            import jpype
            from omeio import java

            java.start()
            unsafe_class = jpype.JClass("sun.misc.Unsafe")
            field = unsafe_class.class_.getDeclaredField("theUnsafe")
            field.setAccessible(True)
            field.get(None).putAddress(0, 0)
        _reader_init(self, path, *args, **kwargs)

    reader.BioReader.__init__ = reader_init
'''


def _env(tmp_path: Path, fault: str | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLUS_IMG_EXT", "NUM_WORKERS", "NUM_THREADS", "POLUS_LOG",
                        "OMEIO_TEST_FAULT")}
    if fault is not None:
        inject = tmp_path / "inject"
        inject.mkdir(exist_ok=True)
        (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join([str(inject), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env["OMEIO_TEST_FAULT"] = fault
    env.update(extra)
    return env


def _start(inp: Path, out: Path, *args: str, env: dict, cwd: Path | None = None
           ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ome_converter", "--inpDir", str(inp), "--outDir", str(out),
         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
        start_new_session=True)


def _run(inp: Path, out: Path, *args: str, env: dict, cwd: Path | None = None,
         timeout: float = 240) -> tuple[int, str]:
    proc = _start(inp, out, *args, env=env, cwd=cwd)
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def failures(stderr: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for ln in stderr.splitlines() if (m := FAILED.search(ln))}


def _final(out: Path) -> set[str]:
    return {n for n in os.listdir(out) if not n.startswith(".")} if out.exists() else set()


def _debris(out: Path) -> set[str]:
    return {n for n in os.listdir(out) if n.startswith(".")} if out.exists() else set()


def _workers(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _read(path: Path) -> np.ndarray:
    """One output plane, read fully without omeio."""
    if path.name.endswith(".ome.zarr"):
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        dataset = (attrs.get("ome") or attrs)["multiscales"][0]["datasets"][0]["path"]
        data = np.asarray(group[dataset][...])
        assert data.shape[:3] == (1, 1, 1), data.shape
        return data[0, 0, 0]
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome and len(tf.pages) == 1
        return tf.pages[0].asarray()


# -- SIGKILL at several points, then re-runs ---------------------------------------------------

PLANES, SIDE = 12, 1024


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Two z-stacks (12 planes of 1024 x 1024 each) and a small image: 25 outputs."""
    inp = tmp_path_factory.mktemp("killed") / "in"
    inp.mkdir()
    rng = np.random.default_rng(23)
    expected: dict[str, np.ndarray] = {}
    for name in ("a", "b"):
        stack = rng.integers(0, 65535, (PLANES, SIDE, SIDE), dtype=np.uint16)
        tifffile.imwrite(inp / f"{name}.ome.tif", stack, metadata={"axes": "ZYX"})
        expected.update({f"{name}_z{z}": stack[z] for z in range(PLANES)})
    small = rng.integers(0, 255, (300, 200), dtype=np.uint8)
    tifffile.imwrite(inp / "c.tif", small)
    expected["c"] = small
    return inp, expected


def _trigger(point: str, out: Path, pid: int, total: int):
    """When to kill: early (workers up, nothing written yet), while the first output is being
    written, with half the outputs done, or with all but one done."""
    if point == "early":
        return lambda: bool(_workers(pid)) and not _final(out) and not _debris(out)
    if point == "first-write":
        return lambda: any(n.endswith(".partial") for n in _debris(out))
    if point == "half":
        return lambda: len(_final(out)) >= total // 2
    return lambda: len(_final(out)) >= total - 1


@pytest.mark.parametrize("ext,points", [
    (".ome.tif", ("early", "first-write", "half", "late")),
    (".ome.zarr", ("first-write", "half")),
])
def test_sigkill_at_any_point_then_rerun_finishes_without_redoing_work(stacks, tmp_path, ext,
                                                                      points):
    inp, expected = stacks
    out = tmp_path / "out"
    names = {stem + ext for stem in expected}
    env = _env(tmp_path)
    rng = random.Random(f"{ext}-kill")  # reproducible "random" moments after each trigger
    first_seen: dict[str, tuple[int, int]] = {}  # output -> (inode, mtime) when first complete
    interrupted_writes = 0

    for point in points:
        proc = _start(inp, out, "--fileExtension", ext, env=env)
        trigger = _trigger(point, out, proc.pid, len(names))
        end = time.monotonic() + 120
        while not trigger():
            assert proc.poll() is None, f"the run ended before the '{point}' kill"
            assert time.monotonic() < end, f"timed out waiting for '{point}'"
            time.sleep(0.002)
        if point in ("half", "late"):  # somewhere in the next few tiles
            time.sleep(rng.uniform(0, 0.03))
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and every worker, at once
        proc.wait(timeout=30)
        psutil.wait_procs(_workers(proc.pid), timeout=10)

        done = _final(out)
        assert done <= names, done - names
        assert all(n.startswith(".") and n.endswith(".partial") for n in _debris(out))
        interrupted_writes += len(_debris(out))
        for name in done:  # whatever has a final name is complete and exact
            np.testing.assert_array_equal(_read(out / name), expected[name[: -len(ext)]],
                                          err_msg=f"{name} after the '{point}' kill")
            stat = (out / name).stat()
            key = (stat.st_ino, stat.st_mtime_ns)
            assert first_seen.setdefault(name, key) == key, f"{name} was written twice"

    assert interrupted_writes >= 1  # at least one kill cut a write short
    debris = _debris(out)
    code, stderr = _run(inp, out, "--fileExtension", ext, env=env)
    assert code == 0, stderr
    complete_before = len(first_seen)
    if complete_before:
        assert f"skipped {complete_before} complete outputs" in stderr
    for name in debris:
        assert f"removing {name} left by an interrupted run" in stderr
    pending = {n.split("_z")[0] for n in names - set(first_seen)}  # inputs with work left
    assert (f"summary: {len(pending)} converted ({len(names) - complete_before} outputs "
            f"written), 0 failed, {3 - len(pending)} skipped ({complete_before} complete "
            "outputs)") in stderr
    assert set(os.listdir(out)) == names  # no debris left, nothing else
    for name in names:
        np.testing.assert_array_equal(_read(out / name), expected[name[: -len(ext)]],
                                      err_msg=name)
    for name, key in first_seen.items():  # complete outputs were never rewritten
        stat = (out / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == key, f"{name} was converted again"


# -- a full output filesystem ------------------------------------------------------------------


def _pair(inp: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    data = {"a_nospace": rng.integers(0, 65535, (1500, 1300), dtype=np.uint16),
            "b_fine": rng.integers(0, 255, (200, 300), dtype=np.uint8)}
    for stem, pixels in data.items():
        tifffile.imwrite(inp / f"{stem}.tif", pixels)
    return data


@pytest.mark.parametrize("ext,fault", [
    (".ome.tif", "enospc:a_nospace"),  # while the tiles are written
    (".ome.tif", "enospc-close:a_nospace"),  # while the IFDs are written, at close()
    (".ome.zarr", "enospc:a_nospace"),  # while the chunks are written
])
def test_disk_full_fails_the_file_and_leaves_nothing_under_its_name(tmp_path, ext, fault):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    data = _pair(inp)
    code, stderr = _run(inp, out, "--fileExtension", ext, "--numWorkers", "1",
                        env=_env(tmp_path, fault))
    assert code == 1, stderr
    assert failures(stderr) == {"a_nospace.tif": f"{ENOSPC} (0 of 1 outputs written)"}, stderr
    assert os.listdir(out) == [f"b_fine{ext}"]  # no truncated file, no temporary
    np.testing.assert_array_equal(_read(out / f"b_fine{ext}"), data["b_fine"])
    assert "summary: 1 converted (1 outputs written), 1 failed" in stderr

    # space again: the re-run converts only what failed
    code, stderr = _run(inp, out, "--fileExtension", ext, env=_env(tmp_path))
    assert code == 0, stderr
    assert "skipped 1 complete outputs" in stderr
    assert sorted(os.listdir(out)) == [f"a_nospace{ext}", f"b_fine{ext}"]
    np.testing.assert_array_equal(_read(out / f"a_nospace{ext}"), data["a_nospace"])


def test_real_full_tmpfs(tmp_path):
    """The same on a real 2 MiB tmpfs. Mounting needs root (CAP_SYS_ADMIN): without it this
    test fails, loudly, rather than passing unseen."""
    inp, out = tmp_path / "in", tmp_path / "small"
    inp.mkdir()
    out.mkdir()
    data = _pair(inp)  # a_nospace makes ~3.7 MiB of output: it cannot fit
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(out)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here ({mount.stderr.strip()}): this test needs "
                    "root; the injected-ENOSPC tests above cover the same code paths")
    try:
        code, stderr = _run(inp, out, "--numWorkers", "1", env=_env(tmp_path))
        assert code == 1, stderr
        assert failures(stderr) == {"a_nospace.tif": f"{ENOSPC} (0 of 1 outputs written)"}, stderr
        assert os.listdir(out) == ["b_fine.ome.tif"]
        np.testing.assert_array_equal(_read(out / "b_fine.ome.tif"), data["b_fine"])
        usage = os.statvfs(out)
        assert usage.f_bfree * usage.f_frsize > 1 << 20  # the partial's space was given back
    finally:
        subprocess.run(["umount", str(out)], check=True)


# -- workers that die --------------------------------------------------------------------------


def test_dying_workers_fail_their_file_only(tmp_path):
    """A worker that aborts while writing, one that exits while planning, and one whose JVM
    crashes (a real SIGSEGV in Java, hs_err file and all): each fails its own input."""
    from PIL import Image

    inp, out, cwd = tmp_path / "in", tmp_path / "out", tmp_path / "cwd"
    for d in (inp, cwd):
        d.mkdir()
    rng = np.random.default_rng(9)
    good = {"d_fine": rng.integers(0, 65535, (120, 90), dtype=np.uint16),
            "e_fine": rng.integers(0, 255, (60, 80), dtype=np.uint8)}
    tifffile.imwrite(inp / "d_fine.tif", good["d_fine"])
    Image.fromarray(good["e_fine"]).save(inp / "e_fine.png")
    tifffile.imwrite(inp / "a_aborts.tif", np.ones((50, 50), np.uint8))
    tifffile.imwrite(inp / "b_exits.tif", np.ones((50, 50), np.uint8))
    Image.fromarray(np.ones((40, 40), np.uint8)).save(inp / "c_jvmcrash.png")

    code, stderr = _run(inp, out, env=_env(tmp_path, "abort:a_aborts,exit:b_exits,jvm:c_jvmcrash"),
                        cwd=cwd)
    assert code == 1, stderr
    assert failures(stderr) == {"a_aborts.tif": DIED, "b_exits.tif": DIED, "c_jvmcrash.png": DIED}, \
        stderr
    assert sorted(os.listdir(out)) == ["d_fine.ome.tif", "e_fine.ome.tif"]  # no debris
    for stem, pixels in good.items():
        np.testing.assert_array_equal(_read(out / f"{stem}.ome.tif"), pixels)
    assert "summary: 2 converted (2 outputs written), 3 failed" in stderr
    crash_logs = [n for n in os.listdir(cwd) if n.startswith("hs_err_pid")]
    # the JVM really crashed, and wrote its log in the cwd; twice when another job was running
    # at that moment, since the scheduler then re-runs each of them alone to find the culprit
    assert 1 <= len(crash_logs) <= 2
    for log in crash_logs:
        assert "SIGSEGV" in (cwd / log).read_text(errors="replace")
