"""The speed work's own contracts: tiles handed to writers without a copy yet never shared with
the caller, inputs opened once in eager runs (plan and convert with one reader), and the
largest inputs started first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import omeio
from ome_converter import convert as conv
from ome_converter import runner
from ome_converter.jobs import PlanConvertJob
from omeio import BioWriter
from omeio.backends.tiff_writer import TiffWriter
from omeio.indexing import Region
from omeio.metadata import OmeMetadata
from omeio.tiles import TileAssembler, frozen

# -- tiles ---------------------------------------------------------------------------------------


def test_assembler_hands_out_frozen_copies_of_its_own():
    got = []
    band = np.arange(2 * 1030 * 2100, dtype=np.uint16).reshape(1030 * 2, 2100)[:1030]
    asm = TileAssembler((1030, 2100, 1, 1, 1), np.dtype("uint16"),
                        lambda *args: got.append(args))
    region = Region(range(0, 1030), range(0, 2100), (0,), (0,), (0,))
    asm.write(region, band[:, :, None, None, None])
    assert len(got) == 6  # 2 x 3 tiles, the bottom row and right column padded
    for *_, ty, tx, tile in got:
        assert frozen(tile) and tile.shape == (1024, 1024)
        assert not np.shares_memory(tile, band)
        vy, vx = min(1024, 1030 - ty * 1024), min(1024, 2100 - tx * 1024)
        np.testing.assert_array_equal(tile[:vy, :vx],
                                      band[ty * 1024:ty * 1024 + vy, tx * 1024:tx * 1024 + vx])
        assert not tile[vy:].any() and not tile[:, vx:].any()
    assert band.flags.writeable  # the caller's array is never frozen
    with pytest.raises(ValueError):
        got[0][-1][0, 0] = 1


def test_writer_keeps_frozen_tiles_and_copies_the_others(tmp_path, monkeypatch):
    meta = OmeMetadata.new(size_x=1024, size_y=1024, size_z=2, dtype="uint8")
    stored = []
    real = TiffWriter._store

    def spy(self, key, tile):
        stored.append(tile)
        return real(self, key, tile)

    monkeypatch.setattr(TiffWriter, "_store", spy)
    writer = TiffWriter(tmp_path / "t.ome.tif", meta, max_workers=1)
    mine = np.full((1024, 1024), 7, np.uint8)
    theirs = np.full((1024, 1024), 9, np.uint8)
    theirs.flags.writeable = False
    writer.write_tile(0, 0, 0, 0, 0, mine)
    writer.write_tile(1, 0, 0, 0, 0, theirs)
    mine[...] = 0  # the caller reuses its buffer at once
    writer.close()
    assert stored[0] is not mine and stored[1] is theirs
    pages = tifffile.imread(tmp_path / "t.ome.tif")
    assert pages.shape == (2, 1024, 1024)
    assert (pages[0] == 7).all() and (pages[1] == 9).all()


# -- eager runs: one open per input ----------------------------------------------------------------


@pytest.fixture
def counted_opens(monkeypatch):
    opens = []
    real = omeio.backends.open_reader

    def counting(path, *args, **kwargs):
        opens.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(omeio.backends, "open_reader", counting)
    return opens


def test_plan_and_convert_opens_the_input_once(tmp_path, counted_opens):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    stack = np.random.default_rng(3).integers(0, 4000, (3, 1100, 1200), dtype=np.uint16)
    tifffile.imwrite(inp / "s.tif", stack, photometric="minisblack", metadata={"axes": "ZYX"})
    job = PlanConvertJob(str(inp / "s.tif"), str(out), ".ome.tif", "plane", False)
    reported = []
    done = conv.plan_and_convert(job, 2, reported.append)
    assert counted_opens == ["s.tif"]
    assert done.plan.error is None and done.result.error is None
    assert [s.size_z for s in done.plan.images] == [3]
    assert done.result.written == ["s_z0.ome.tif", "s_z1.ome.tif", "s_z2.ome.tif"]
    assert done.complete == () and done.outputs == 3 and sum(reported) == 3
    for z in range(3):
        np.testing.assert_array_equal(tifffile.imread(out / f"s_z{z}.ome.tif"), stack[z])

    (out / "s_z1.ome.tif").unlink()  # a rerun converts only what is missing
    again = conv.plan_and_convert(job, 1, lambda n: None)
    assert again.complete == ("s_z0.ome.tif", "s_z2.ome.tif")
    assert again.result.written == ["s_z1.ome.tif"] and again.outputs == 1
    np.testing.assert_array_equal(tifffile.imread(out / "s_z1.ome.tif"), stack[1])
    assert sorted(p.name for p in out.iterdir()) == [f"s_z{z}.ome.tif" for z in range(3)]


def test_plan_and_convert_reports_an_unreadable_input(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    job = PlanConvertJob(str(tmp_path / "bad.tif"), str(tmp_path), ".ome.tif", "plane", False)
    done = conv.plan_and_convert(job, 1, lambda n: None)
    assert done.plan.error and done.result is None
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tif"]


def test_eager_only_without_collision_suspects(tmp_path):
    from ome_converter.cli import parse

    (tmp_path / "in").mkdir()
    config = parse(["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "out")], env={})
    assert runner._eager(config, [Path("a.tif"), Path("b.png")]) is config
    assert runner._eager(config, [Path("a.tif"), Path("a.png")]) is None
    assert runner._eager(config, [Path("a.tif"), Path("a_c1.tif")]) is None
    preview = parse(["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "out"),
                     "--preview"], env={})
    assert runner._eager(preview, [Path("a.tif")]) is None


def test_partials_of_dead_workers_are_found_by_name(tmp_path):
    for name in (".a_z0.ome.tif.partial", ".a.ome.tif.partial", ".ab.ome.tif.partial",
                 ".b_c1_z3.ome.tif.partial", ".a_z0.ome.zarr.partial", "a_z1.ome.tif"):
        (tmp_path / name).write_bytes(b"")
    found = runner._partials_of(tmp_path, [Path("a.tif"), Path("b.ome.tif")], ".ome.tif")
    assert sorted(found) == ["a.ome.tif", "a_z0.ome.tif", "b_c1_z3.ome.tif"]


def test_largest_inputs_go_first(tmp_path):
    for name, size in (("small.tif", 10), ("big.tif", 1000), ("mid.tif", 100)):
        (tmp_path / name).write_bytes(b"x" * size)
    (tmp_path / "store.zarr").mkdir()
    order = sorted([tmp_path / n for n in ("small.tif", "big.tif", "mid.tif", "store.zarr")],
                   key=runner._size, reverse=True)
    assert [p.name for p in order] == ["store.zarr", "big.tif", "mid.tif", "small.tif"]


def test_band_writes_complete_tiles_without_holding_the_band(tmp_path):
    """A wide band through BioWriter: the output is exact (the copies are only deferred)."""
    data = np.random.default_rng(9).integers(0, 65535, (1500, 5000), dtype=np.uint16)
    with BioWriter(tmp_path / "w.ome.tif", X=5000, Y=1500, dtype=np.uint16) as bw:
        for y in range(0, 1500, 1024):
            bw[y:y + 1024, :] = data[y:y + 1024]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "w.ome.tif"), data)
