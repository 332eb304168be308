"""The partition of a collection among shards, and how a shard is chosen (no conversion here).

Property tests: every input in exactly one shard, the same partition whatever the listing order,
heaviest shard at most total/N + largest input, and a shard planning only its own inputs plus
the collision suspects finds exactly the collisions of the whole collection.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_converter import cli
from ome_converter import plan as planning
from ome_converter import shard as sharding
from ome_converter.jobs import InputPlan, SeriesInfo
from ome_converter.shard import Shard

NAME = st.text(alphabet="abcdefghij_0123456789.", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("."))
COLLECTION = st.dictionaries(NAME, st.integers(0, 10**12), max_size=60)


def _shards(weights: dict[str, int], count: int) -> list[list[str]]:
    owner = sharding.assign(weights, count)
    parts: list[list[str]] = [[] for _ in range(count)]
    for name, index in owner.items():
        parts[index].append(name)
    return parts


# --- the partition --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(COLLECTION, st.integers(1, 12))
def test_every_input_lands_in_exactly_one_shard(weights, count):
    parts = _shards(weights, count)
    flat = [name for part in parts for name in part]
    assert sorted(flat) == sorted(weights)
    assert len(flat) == len(set(flat))


@settings(max_examples=300, deadline=None)
@given(COLLECTION, st.integers(1, 12), st.randoms(use_true_random=False))
def test_partition_ignores_the_listing_order(weights, count, rnd):
    items = list(weights.items())
    rnd.shuffle(items)
    assert sharding.assign(dict(items), count) == sharding.assign(weights, count)
    assert sharding.fingerprint(dict(items)) == sharding.fingerprint(weights)


@settings(max_examples=300, deadline=None)
@given(COLLECTION, st.integers(1, 12))
def test_heaviest_shard_is_within_one_input_of_the_mean(weights, count):
    parts = _shards(weights, count)
    loads = [sum(weights[n] for n in part) for part in parts]
    total = sum(weights.values())
    largest = max(weights.values(), default=0)
    assert sum(loads) == total
    assert max(loads) * count <= total + largest * count


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 40), st.sampled_from([0, 1, 1000]))
def test_equal_sizes_balance_by_count(count, n, size):
    """Empty files (``.fake``, headers of multi-file formats) are spread too."""
    parts = _shards({f"img{i:03d}.tif": size for i in range(n)}, count)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_large_inputs_are_spread_before_small_ones_fill_in():
    weights = {"big1.czi": 900, "big2.czi": 800, "big3.czi": 700}
    weights.update({f"small{i}.tif": 100 for i in range(9)})
    parts = _shards(weights, 3)
    bigs = [sorted(n for n in part if n.startswith("big")) for part in parts]
    assert bigs == [["big1.czi"], ["big2.czi"], ["big3.czi"]]
    assert [sum(weights[n] for n in part) for part in parts] == [1100, 1100, 1100]


def test_fingerprint_changes_with_a_name_or_a_size():
    base = {"a.tif": 10, "b.tif": 20}
    assert sharding.fingerprint(base) != sharding.fingerprint({"a.tif": 10, "b.tif": 21})
    assert sharding.fingerprint(base) != sharding.fingerprint({"a.tif": 10, "c.tif": 20})
    assert len(sharding.fingerprint(base)) == 16


def test_input_bytes_of_a_file_and_of_a_directory_store(tmp_path):
    f = tmp_path / "x.tif"
    f.write_bytes(b"\0" * 1234)
    store = tmp_path / "y.zarr"
    (store / "0" / "c").mkdir(parents=True)
    (store / "zarr.json").write_bytes(b"{" * 10)
    (store / "0" / "c" / "0").write_bytes(b"\1" * 500)
    (store / "0" / "zarr.json").write_bytes(b"}" * 7)
    assert sharding.input_bytes(f) == 1234
    assert sharding.input_bytes(store) == 517
    assert sharding.input_bytes(tmp_path / "gone.tif") == 0


def test_scope_is_independent_of_the_mount_path(tmp_path):
    """Pods may mount the volume at different paths: only names and sizes count."""
    rng = random.Random(3)
    for root in (tmp_path / "mnt1", tmp_path / "other" / "mnt2"):
        root.mkdir(parents=True)
        for i in range(12):
            (root / f"img{i:02d}.tif").write_bytes(b"\0" * rng.randrange(1, 5000))
        rng = random.Random(3)
    scopes = [[p.name for p in sharding.scope(sorted(root.iterdir()), Shard(1, 3)).own]
              for root in (tmp_path / "mnt1", tmp_path / "other" / "mnt2")]
    assert scopes[0] == scopes[1] and scopes[0]


# --- collision suspects ---------------------------------------------------------------------


def test_suspects_are_names_one_token_run_apart():
    names = ["img.tif", "img_c0.png", "img_c1_t2.czi", "other_c0.tif", "other_c1.tif",
             "x.tif", "x.ome.tiff", "plate_s1.nd2", "cell.tif", "cell_z.tif"]
    assert sharding.collision_suspects(names) == {
        "img.tif", "img_c0.png", "img_c1_t2.czi", "x.tif", "x.ome.tiff"}
    # a typical per-channel collection is not suspect: no stem extends another by tokens
    assert sharding.collision_suspects([f"well_c{c}.tif" for c in range(20)]) == set()


STEMS = st.sampled_from(["a", "a_c0", "a_c1", "a_t0", "a_c0_t0", "a_z1", "a_s0", "b", "b_c0",
                         "ab", "a_c", "a_c01"])
EXTS = st.sampled_from([".tif", ".png", ".ome.tif", ".czi", ".ome.zarr"])
SERIES = st.lists(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)),
                  min_size=1, max_size=2)


def _plans(inputs: list[tuple[str, list[tuple[int, int, int]]]]) -> list[InputPlan]:
    return [InputPlan(f"/in/{name}", tuple(SeriesInfo(i, "image", 8, 8, z, c, t, "uint8")
                                           for i, (z, c, t) in enumerate(series)))
            for name, series in inputs]


def _collides(plans: list[InputPlan], layout: str) -> bool:
    try:
        planning.build(plans, ".ome.tif", layout)
    except planning.CollisionError:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.tuples(STEMS, EXTS).map("".join), SERIES, max_size=7),
       st.integers(1, 4), st.sampled_from(["plane", "series"]))
def test_every_shard_sees_every_collision(inputs, count, layout):
    """Planning a shard's own inputs plus the suspects finds a collision exactly when planning
    the whole collection does, in every shard."""
    items = sorted(inputs.items())
    plans = _plans(items)
    whole = _collides(plans, layout)
    suspects = sharding.collision_suspects(inputs)
    owner = sharding.assign({name: len(name) for name in inputs}, count)
    for index in range(count):
        mine = [p for p, (name, _) in zip(plans, items)
                if owner[name] == index or name in suspects]
        assert _collides(mine, layout) == whole, (index, sorted(suspects))


# --- choosing the shard ---------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "count", "env", "expected"), [
    (None, None, {}, None),
    ("", None, {}, None),
    ("2/5", None, {}, Shard(2, 5)),
    (" 0 / 1 ", None, {}, Shard(0, 1)),
    ("1/3", 3, {"JOB_COMPLETION_INDEX": "2", "SHARD_COUNT": "7"}, Shard(1, 3)),
    (None, None, {"JOB_COMPLETION_INDEX": "3", "SHARD_COUNT": "4"}, Shard(3, 4)),
    (None, 6, {"JOB_COMPLETION_INDEX": "5", "SHARD_COUNT": "4"}, Shard(5, 6)),
    (None, None, {"SHARD_COUNT": "4"}, None),  # a workflow-wide count, e.g. the final check
])
def test_resolve(spec, count, env, expected):
    assert sharding.resolve(spec, count, env) == expected


@pytest.mark.parametrize(("spec", "count", "env", "needle"), [
    ("3/3", None, {}, "shard index 3 is not in 0..2"),
    ("0/0", None, {}, "at least 1"),
    ("1", None, {}, "expects I/N"),
    ("-1/3", None, {}, "expects I/N"),
    ("a/b", None, {}, "expects I/N"),
    ("1/3", 4, {}, "disagree"),
    (None, 3, {}, "--shardCount needs --shard"),
    (None, None, {"JOB_COMPLETION_INDEX": "1"}, "the number of shards is not"),
    (None, None, {"JOB_COMPLETION_INDEX": "4", "SHARD_COUNT": "4"}, "not below"),
    (None, None, {"JOB_COMPLETION_INDEX": "x", "SHARD_COUNT": "4"}, "non-negative integer"),
    (None, None, {"JOB_COMPLETION_INDEX": "0", "SHARD_COUNT": "0"}, "SHARD_COUNT"),
])
def test_resolve_refuses(spec, count, env, needle):
    with pytest.raises(ValueError, match=needle):
        sharding.resolve(spec, count, env)


def _parse(tmp_path: Path, *extra: str, env: dict | None = None) -> cli.Config:
    (tmp_path / "in").mkdir(exist_ok=True)
    return cli.parse(["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "out"),
                      *extra], env=env or {})


def test_cli_options(tmp_path):
    assert _parse(tmp_path).shard is None
    assert _parse(tmp_path).verify_complete is False
    assert _parse(tmp_path, "--shard", "1/4").shard == Shard(1, 4)
    env = {"JOB_COMPLETION_INDEX": "2"}
    assert _parse(tmp_path, "--shardCount", "3", env=env).shard == Shard(2, 3)
    assert _parse(tmp_path, "--verifyComplete").verify_complete is True
    assert Shard(1, 4).preview_name == "preview-shard-1-of-4.json"
    with pytest.raises(cli.UsageError, match="number of shards is not"):
        _parse(tmp_path, env=env)
    with pytest.raises(cli.UsageError, match="exclude each other"):
        _parse(tmp_path, "--preview", "--verifyComplete")
    with pytest.raises(cli.UsageError, match="positive integer"):
        _parse(tmp_path, "--shardCount", "0", env=env)
