"""Shards as real concurrent processes over one collection and one output directory.

A spy (a ``sitecustomize`` on PYTHONPATH, so it reaches the spawned workers too) records every
``.partial`` -> final rename with the shard that did it: each output must be finished exactly
once, by the shard whose preview listed it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import tifffile
from plugin_process import start_plugin as _start

from ome_converter import shard as sharding
from ome_converter.shard import Shard
from omeio import BioWriter

SPY = '''\
import os
_log = os.environ.get("SHARD_SPY_LOG")
if _log:
    _replace = os.replace

    def _spy(src, dst, *args, **kwargs):
        result = _replace(src, dst, *args, **kwargs)
        if str(src).endswith(".partial"):
            line = f"{os.environ.get('SHARD_SPY_TAG', '-')}\\t{os.path.basename(dst)}\\n"
            fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return result

    os.replace = _spy
'''

def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _run(inp: Path, out: Path, *args: str, **env: str) -> tuple[int, str]:
    return _finish(_start(inp, out, *args, **env))


def _spy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "spy"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SPY)
    return folder


def _spied(tmp_path: Path, tag: str) -> dict[str, str]:
    return {"PYTHONPATH": str(tmp_path / "spy"), "SHARD_SPY_LOG": str(tmp_path / "spy.log"),
            "SHARD_SPY_TAG": tag}


def _renames(tmp_path: Path) -> list[tuple[str, str]]:
    log = tmp_path / "spy.log"
    if not log.exists():
        return []
    return [tuple(line.split("\t")) for line in log.read_text().splitlines()]


def _outputs(out: Path) -> set[str]:
    return {n for n in os.listdir(out) if not n.startswith(".") and not n.startswith("preview")}


def _collection(inp: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """ZYX uint16 stacks as TIFF or OME-Zarr stores (directory inputs); each Z plane becomes
    one output ``<stem>_z<z>.ome.tif`` (``<stem>.ome.tif`` for a single plane)."""
    inp.mkdir()
    rng = np.random.default_rng(6)
    planes: dict[str, np.ndarray] = {}
    for name, (z, side) in sizes.items():
        stack = rng.integers(0, 65535, (z, side, side + 7), dtype=np.uint16)
        if name.endswith(".ome.zarr"):
            image = np.moveaxis(stack, 0, -1)[:, :, :, None, None]  # Y X Z C T
            with BioWriter(inp / name, image=image) as bw:
                bw.write(image)
        else:
            tifffile.imwrite(inp / name, stack, photometric="minisblack", metadata={"axes": "ZYX"})
        stem = name.split(".")[0]
        for k in range(z):
            planes[f"{stem}_z{k}.ome.tif" if z > 1 else f"{stem}.ome.tif"] = stack[k]
    return planes


def _check_pixels(out: Path, planes: dict[str, np.ndarray]) -> None:
    assert _outputs(out) == set(planes)
    for name, plane in planes.items():
        with tifffile.TiffFile(out / name) as tf:
            assert tf.is_ome, name
            np.testing.assert_array_equal(tf.asarray(), plane, err_msg=name)


SMALL = {"a.tif": (2, 40), "b.tif": (3, 200), "c.tif": (2, 90), "d.tif": (2, 150),
         "e.tif": (4, 60), "f.ome.zarr": (3, 120), "g.tif": (2, 30)}


def test_concurrent_shards_make_exactly_the_single_run_outputs(tmp_path):
    inp, single, out = tmp_path / "in", tmp_path / "single", tmp_path / "out"
    planes = _collection(inp, SMALL)
    _spy_dir(tmp_path)
    n = 3
    one = _start(inp, single, "--numWorkers", "1")
    previews = [_start(inp, out, "--shard", f"{i}/{n}", "--preview", NUM_WORKERS="1")
                for i in range(n)]
    code, err = _finish(one)
    assert code == 0, err
    listed: list[set[str]] = []
    prints = set()
    for i, proc in enumerate(previews):
        code, err = _finish(proc)
        assert code == 0, err
        doc = json.loads((out / Shard(i, n).preview_name).read_text())
        assert doc["shard"] == f"{i}/{n}" and doc["complete"] == []
        listed.append(set(doc["outDir"]))
        prints.add(doc["fingerprint"])
    assert len(prints) == 1
    assert not (out / "preview.json").exists()
    assert _outputs(out) == set()  # previews convert nothing
    assert sum(len(s) for s in listed) == len(set().union(*listed)) == len(planes)
    assert set().union(*listed) == set(planes) == _outputs(single)
    assert all(listed), "every shard has work with this collection"

    # the real runs take their part from the environment, as an Indexed Job's pods do
    shards = [_start(inp, out, NUM_WORKERS="1", JOB_COMPLETION_INDEX=str(i), SHARD_COUNT=str(n),
                     **_spied(tmp_path, str(i))) for i in range(n)]
    logs = [_finish(p) for p in shards]
    for code, err in logs:
        assert code == 0, err
        assert " 0 failed" in err
    (fingerprint,) = prints
    for i, (_, err) in enumerate(logs):
        assert f"shard {i}/{n}: " in err
        assert f"collection fingerprint {fingerprint}" in err
    renames = _renames(tmp_path)
    names = [name for _, name in renames]
    assert sorted(names) == sorted(planes), "every output finished exactly once"
    for i in range(n):
        assert {name for tag, name in renames if tag == str(i)} == listed[i]

    _check_pixels(out, planes)
    for name in planes:  # the single run agrees byte for byte on the pixels
        with tifffile.TiffFile(single / name) as a, tifffile.TiffFile(out / name) as b:
            np.testing.assert_array_equal(a.asarray(), b.asarray(), err_msg=name)

    code, err = _run(inp, out, "--verifyComplete", NUM_WORKERS="1")
    assert code == 0, err
    assert f"complete: all {len(planes)} expected outputs of {len(SMALL)} input(s)" in err
    # a second fan-out finds everything done and writes nothing
    again = [_start(inp, out, "--shard", f"{i}/{n}", **_spied(tmp_path, f"again{i}"))
             for i in range(n)]
    for proc in again:
        code, err = _finish(proc)
        assert code == 0, err
    assert len(_renames(tmp_path)) == len(planes)


def test_a_shard_cleans_only_its_own_temporaries(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    planes = _collection(inp, {"a.tif": (1, 30), "b.tif": (1, 30), "c.tif": (1, 31)})
    scope = sharding.scope(sorted(inp.iterdir()), Shard(0, 2))
    mine = {f"{p.name.split('.')[0]}.ome.tif" for p in scope.own}
    theirs = set(planes) - mine
    assert mine and theirs
    out.mkdir()
    for name in planes:  # as if both shards had been killed mid-write
        (out / f".{name}.partial").write_bytes(b"half")
    code, err = _run(inp, out, "--shard", "0/2", NUM_WORKERS="1")
    assert code == 0, err
    assert _outputs(out) == mine
    left = {n for n in os.listdir(out) if n.endswith(".partial")}
    assert left == {f".{name}.partial" for name in theirs}  # another shard may be writing them
    code, err = _run(inp, out, "--shard", "1/2", NUM_WORKERS="1", POLUS_LOG="DEBUG")
    assert code == 0, err
    _check_pixels(out, planes)
    assert not [n for n in os.listdir(out) if n.startswith(".")]


BIG = {"k0.tif": (12, 1024), "k1.tif": (12, 1000), "k2.tif": (12, 990), "k3.tif": (12, 980)}


def test_killed_shard_is_completed_by_rerunning_it(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    planes = _collection(inp, BIG)
    _spy_dir(tmp_path)
    inputs = sorted(inp.iterdir())
    own = [{f"{p.name.split('.')[0]}_z{k}.ome.tif" for p in sharding.scope(inputs, Shard(i, 2)).own
            for k in range(12)} for i in range(2)]
    assert len(own[0]) == len(own[1]) == 24 and not own[0] & own[1]

    victim = _start(inp, out, "--shard", "0/2", NUM_WORKERS="1", **_spied(tmp_path, "0"))
    other = _start(inp, out, "--shard", "1/2", NUM_WORKERS="1", **_spied(tmp_path, "1"))
    end = time.monotonic() + 120
    while not out.exists() or len(_outputs(out) & own[0]) < 3:
        assert victim.poll() is None, "shard 0 ended before it could be killed"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(30)
    code, err = _finish(other)
    assert code == 0, err  # the other shard is not disturbed
    assert own[1] <= _outputs(out)
    done_before = _outputs(out) & own[0]
    assert 3 <= len(done_before) < 24
    kept = {name: (out / name).stat().st_mtime_ns for name in _outputs(out)}

    code, err = _run(inp, out, "--verifyComplete", NUM_WORKERS="1")
    assert code == 1
    assert f"incomplete: {24 - len(done_before)} of 48 expected outputs missing" in err

    code, err = _run(inp, out, "--shard", "0/2", NUM_WORKERS="1", **_spied(tmp_path, "rerun"))
    assert code == 0, err
    assert f"skipped {len(done_before)} complete outputs" in err
    _check_pixels(out, planes)
    assert not [n for n in os.listdir(out) if n.startswith(".")]
    for name, mtime in kept.items():  # nothing complete was written again
        assert (out / name).stat().st_mtime_ns == mtime, name
    renames = _renames(tmp_path)
    assert {n for tag, n in renames if tag == "rerun"} == own[0] - done_before
    assert {n for tag, n in renames if tag == "1"} == own[1]
    assert sorted(n for _, n in renames) == sorted(planes)

    code, err = _run(inp, out, "--verifyComplete", NUM_WORKERS="1")
    assert code == 0, err


def test_every_shard_refuses_a_collision_across_shards(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    # img.tif (2 planes) writes img_z0 and img_z1; img_z0.tif (1 plane) writes img_z0 too
    _collection(inp, {"img.tif": (2, 300), "img_z0.tif": (1, 280), "p.tif": (1, 20),
                      "q.tif": (1, 21), "r.tif": (1, 22)})
    inputs = sorted(inp.iterdir())
    n = 3
    owners = {p.name: i for i in range(n) for p in sharding.scope(inputs, Shard(i, n)).own}
    assert owners["img.tif"] != owners["img_z0.tif"]
    procs = [_start(inp, out, "--shard", f"{i}/{n}", NUM_WORKERS="1") for i in range(n)]
    for proc in procs:
        code, err = _finish(proc)
        assert code == 1, err
        assert "name collision, nothing converted" in err
        assert "'img.tif' and 'img_z0.tif' would both write 'img_z0.ome.tif'" in err
    assert not out.exists() or not os.listdir(out)
    code, err = _run(inp, out, "--verifyComplete", "--shard", "2/3", NUM_WORKERS="1")
    assert code == 1 and "name collision" in err


def test_verify_reports_unreadable_inputs_and_empty_shards(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    _collection(inp, {"a.tif": (1, 30)})
    code, err = _run(inp, out, "--shard", "1/3", NUM_WORKERS="1")  # more shards than inputs
    assert code == 0, err
    assert "shard 1/3: 0 of 1 input(s)" in err
    code, err = _run(inp, out, "--verifyComplete", "--shard", "1/3")
    assert code == 0, err
    code, err = _run(inp, out, "--verifyComplete")
    assert code == 1 and "1 of 1 expected outputs missing: a.ome.tif" in err
    code, err = _run(inp, out, "--shard", "0/3")
    assert code == 0, err
    code, err = _run(inp, out, "--verifyComplete")
    assert code == 0, err
    (inp / "broken.tif").write_bytes(b"II*\0" + b"\xff" * 64)
    code, err = _run(inp, out, "--verifyComplete")
    assert code == 1
    assert "1 input(s) could not be planned, so their outputs are unknown: broken.tif" in err
