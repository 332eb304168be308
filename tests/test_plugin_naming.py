"""Output names, input discovery, the plan (collisions, complete outputs) and pool sizing."""

from __future__ import annotations

import json

import pytest

from ome_converter import discover, naming, plan, scheduler
from ome_converter.jobs import InputPlan, SeriesInfo


def _series(index=0, kind="image", z=1, c=1, t=1, y=10, x=12):
    return SeriesInfo(index, kind, y, x, z, c, t, "uint8")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.ome.tif", "a"), ("a.OME.TIFF", "a"), ("b.ome.zarr", "b"), ("a.1.tif", "a.1"),
        ("a.1.png", "a.1"), ("plain", "plain"), ("x.nii.gz", "x"), (".ome.tif", ".ome"),
        ("multi&sizeX=300&series=2.fake", "multi&sizeX=300&series=2"), ("img.czi", "img"),
    ],
)
def test_stem(name, expected):
    assert naming.stem(name) == expected


def test_plane_names_only_for_dimensions_larger_than_one():
    one = naming.outputs_for("a.tif", [_series()], ".ome.tif", "plane")
    assert [o.name for o in one] == ["a.ome.tif"]
    stack = naming.outputs_for("s.ome.tif", [_series(z=3, c=2)], ".ome.zarr", "plane")
    assert [o.name for o in stack] == [
        "s_c0_z0.ome.zarr", "s_c0_z1.ome.zarr", "s_c0_z2.ome.zarr",
        "s_c1_z0.ome.zarr", "s_c1_z1.ome.zarr", "s_c1_z2.ome.zarr",
    ]
    assert [(o.z, o.c, o.t) for o in stack][:4] == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0)]
    full = naming.outputs_for("f.tif", [_series(0, z=2, c=2, t=2), _series(1, z=2, c=2, t=2)],
                              ".ome.tif", "plane")
    assert len(full) == 16
    assert full[0].name == "f_c0_t0_z0_s0.ome.tif"
    assert full[-1].name == "f_c1_t1_z1_s1.ome.tif"
    assert len({o.name for o in full}) == 16
    # indices are not padded
    wide = naming.outputs_for("w.tif", [_series(c=12)], ".ome.tif", "plane")
    assert wide[11].name == "w_c11.ome.tif"


def test_series_layout_names():
    one = naming.outputs_for("s.ome.tif", [_series(z=3, c=2)], ".ome.tif", "series")
    assert [(o.name, o.z, o.c, o.t, o.planes) for o in one] == [
        ("s.ome.tif", None, None, None, 6)]
    two = naming.outputs_for("m.fake", [_series(0), _series(2)], ".ome.zarr", "series")
    assert [o.name for o in two] == ["m_s0.ome.zarr", "m_s2.ome.zarr"]


def test_ancillary_series_are_not_outputs():
    p = InputPlan("/x/slide.svs", (_series(0), _series(1, "thumbnail"), _series(2, "label")))
    assert [s.index for s in p.images] == [0]
    assert [s.kind for s in p.ancillary] == ["thumbnail", "label"]
    built = plan.build([p], ".ome.tif", "plane")
    assert built.names == ["slide.ome.tif"]


def test_discovery_takes_zarr_stores_whole_and_skips_hidden(tmp_path):
    (tmp_path / "b.tif").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / ".hidden.tif").write_bytes(b"x")
    (tmp_path / ".a.ome.tif.partial").write_bytes(b"x")
    (tmp_path / "c.ome.zarr" / "0").mkdir(parents=True)
    (tmp_path / "c.ome.zarr" / "zarr.json").write_text("{}")
    (tmp_path / "nozarr").mkdir()
    (tmp_path / "v2store").mkdir()
    (tmp_path / "v2store" / ".zgroup").write_text("{}")
    assert discover.candidates(tmp_path) == ["a.png", "b.tif", "c.ome.zarr", "v2store"]
    assert discover.find_inputs(tmp_path, ".+") == [tmp_path / n for n in
                                                    ["a.png", "b.tif", "c.ome.zarr", "v2store"]]
    assert discover.select(discover.candidates(tmp_path), r".*\.tif") == ["b.tif"]
    assert discover.select(["img_c1.tif", "img_c2.tif", "x.tif"], "img_c{c:d}.tif") == [
        "img_c1.tif", "img_c2.tif"]
    assert discover.select(["a.tif"], "zzz") == []


def test_collision_names_both_inputs():
    plans = [InputPlan("/in/a.1.png", (_series(),)), InputPlan("/in/a.1.tif", (_series(),))]
    with pytest.raises(plan.CollisionError) as info:
        plan.build(plans, ".ome.tif", "plane")
    assert "a.1.png" in str(info.value) and "a.1.tif" in str(info.value)
    assert info.value.name == "a.1.ome.tif"
    # same stems that end up with different names do not collide
    ok = plan.build([InputPlan("/in/a.png", (_series(c=3),)), InputPlan("/in/a.tif", (_series(),))],
                    ".ome.tif", "plane")
    assert ok.names == ["a_c0.ome.tif", "a_c1.ome.tif", "a_c2.ome.tif", "a.ome.tif"]
    # a failed input has no outputs, so no collision either
    fine = plan.build([InputPlan("/in/a.1.png", error="broken"),
                       InputPlan("/in/a.1.tif", (_series(),))], ".ome.tif", "plane")
    assert fine.names == ["a.1.ome.tif"]


def test_jobs_skip_complete_outputs_unless_overwrite(tmp_path):
    p = InputPlan(str(tmp_path / "s.tif"), (_series(c=2),))
    q = InputPlan(str(tmp_path / "t.tif"), (_series(),))
    built = plan.build([p, q], ".ome.tif", "plane")
    out = tmp_path / "out"
    out.mkdir()
    (out / "s_c0.ome.tif").write_bytes(b"done")
    (out / "t.ome.tif").write_bytes(b"done")
    (out / ".s_c1.ome.tif.partial").write_bytes(b"half")
    todo, complete = plan.jobs(built, out, overwrite=False)
    assert [j.path for j in todo] == [p.path]
    assert [o.name for o in todo[0].outputs] == ["s_c1.ome.tif"]
    assert sorted(complete) == ["s_c0.ome.tif", "t.ome.tif"]
    todo, complete = plan.jobs(built, out, overwrite=True)
    assert [len(j.outputs) for j in todo] == [2, 1] and complete == []
    assert [p.name for p in plan.stale_partials(out)] == [".s_c1.ome.tif.partial"]


def test_preview_document(tmp_path):
    path = plan.write_preview(tmp_path / "o", "x{c:d}.tif", ["b.ome.tif", "a.ome.tif"], ["c"])
    assert json.loads(path.read_text()) == {
        "filepattern": "x{c:d}.tif", "outDir": ["a.ome.tif", "b.ome.tif"], "complete": ["c"]}


@pytest.mark.parametrize(
    ("jobs", "cores", "workers", "threads", "expected"),
    [
        (1, 8, None, None, (1, 8)),
        (3, 8, None, None, (3, 2)),
        (100, 8, None, None, (8, 1)),
        (100, 2, None, None, (2, 1)),
        (1, 2, None, None, (1, 2)),
        (5, 8, 2, None, (2, 4)),
        (5, 8, None, 3, (5, 3)),
        (5, 8, 1, 1, (1, 1)),
    ],
)
def test_choose(jobs, cores, workers, threads, expected):
    assert scheduler.choose(jobs, cores, workers, threads) == expected


def test_available_cores_within_affinity():
    import os

    cores = scheduler.available_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


def test_cgroup_quota(tmp_path):
    proc = tmp_path / "cgroup"
    root = tmp_path / "fs"
    proc.write_text("0::/job\n")
    (root / "job").mkdir(parents=True)
    assert scheduler.cgroup_cores(proc, root) is None
    (root / "job" / "cpu.max").write_text("150000 100000\n")
    assert scheduler.cgroup_cores(proc, root) == 2
    (root / "job" / "cpu.max").write_text("max 100000\n")
    assert scheduler.cgroup_cores(proc, root) is None
    proc.write_text("4:cpu,cpuacct:/box\n3:memory:/box\n")
    (root / "cpu,cpuacct" / "box").mkdir(parents=True)
    (root / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us").write_text("50000\n")
    (root / "cpu,cpuacct" / "box" / "cpu.cfs_period_us").write_text("100000\n")
    assert scheduler.cgroup_cores(proc, root) == 1
    (root / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us").write_text("-1\n")
    assert scheduler.cgroup_cores(proc, root) is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("(stack).*", "(?:stack).*"),
        (r"\(x\)(a)", r"\(x\)(?:a)"),
        ("[(]a(b)", "[(]a(?:b)"),
        ("[]()](c)", "[]()](?:c)"),
        ("img_c{c:d}(.ome)?.tif", "img_c{c:d}(?:.ome)?.tif"),
        ("(?:a)(?=b)(?P<n>c)(?<m>d)(?<=e)(?<!f)", "(?:a)(?=b)(?:c)(?:d)(?<=e)(?<!f)"),
        (".+", ".+"),
    ],
)
def test_capturing_groups_are_made_non_capturing(pattern, expected):
    assert discover.without_captures(pattern) == expected


def test_regex_groups_select_without_crashing():
    # filepattern 2.2 segfaults on a capturing group that matches: this would kill pytest
    names = ["stack.ome.tif", "img_c1.tif", "img_c2.ome.tif", "x(1).tif", "other.png"]
    assert discover.select(names, "(stack|img).*") == ["img_c1.tif", "img_c2.ome.tif",
                                                       "stack.ome.tif"]
    assert discover.select(names, "img_c{c:d}(.ome)?.tif") == ["img_c1.tif", "img_c2.ome.tif"]
    assert discover.select(names, r"x\((\d)\)\.tif") == ["x(1).tif"]
