"""Split one collection among N pods (``--shard I/N``): each input converted by exactly one shard.

The partition is longest-processing-time-first (LPT) over input BYTES: inputs sorted by
(size descending, name) go one by one to the lightest shard so far (on a tie, the one with
fewer inputs, then the lowest index).
Every shard computes the same partition from the same (name, size) pairs, so the result does
not depend on the pod, on the order the directory is listed in, on the mount path, or on which
outputs already exist (a rerun of a failed shard picks exactly the same inputs). The load of
the heaviest shard is at most ``total / N + largest input``.

The price of balance: the partition depends on the whole collection, so all shards must see the
same snapshot of it. Adding, removing or resizing an input between shard runs can move other
inputs to another shard. Each shard logs a fingerprint of the collection it partitioned (and
``--verifyComplete`` after the fan-out catches anything that fell through). A hash of each name
would keep inputs in place when the collection changes, but it ignores sizes and balances only
on average: a handful of large slides among small files can land in one pod.

Name collisions are checked over the WHOLE collection in every shard, without reading every
input: an output name is the input's stem plus ``_c _t _z _s`` index tokens, so two inputs can
only ever share an output when one stem equals the other plus whole tokens. Only those inputs
(:func:`collision_suspects`, usually none) are planned by every shard besides its own part.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .naming import stem

#: Kubernetes sets it in each pod of an Indexed Job (0 .. completions-1)
INDEX_ENV = "JOB_COMPLETION_INDEX"
#: the number of shards when the index comes from the environment
COUNT_ENV = "SHARD_COUNT"

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_TOKEN = re.compile(r"_[ctzs]\d+$")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the number of shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is not in 0..{self.count - 1}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def preview_name(self) -> str:
        """Each shard's own preview file, so that shards sharing one outDir do not clobber it."""
        return f"preview-shard-{self.index}-of-{self.count}.json"


def parse_spec(text: str) -> Shard:
    """``"I/N"`` -> :class:`Shard`; raises ValueError with a one-line reason."""
    m = _SPEC.fullmatch(text)
    if not m:
        raise ValueError(f"--shard expects I/N (0-based part I of N), got {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def _count_from_env(env: Mapping[str, str]) -> int | None:
    text = env.get(COUNT_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{COUNT_ENV}: expected a positive integer, got {text!r}")
    return int(text)


def resolve(spec: str | None, count: int | None, env: Mapping[str, str]) -> Shard | None:
    """The shard of this run: ``--shard I/N``, else ``$JOB_COMPLETION_INDEX`` of
    ``--shardCount``/``$SHARD_COUNT``; None for the whole collection.

    An Indexed Job pod without a shard count is refused: converting everything in every pod
    would make the pods write the same outputs at once.
    """
    if spec is not None and spec.strip():  # a manifest may pass an unset option as ""
        shard = parse_spec(spec)
        if count is not None and count != shard.count:
            raise ValueError(f"--shard {spec} and --shardCount {count} disagree on the number "
                             "of shards")
        return shard
    index = env.get(INDEX_ENV, "").strip()
    if not index:
        if count is not None:
            raise ValueError(f"--shardCount needs --shard I/N or {INDEX_ENV} (set by a "
                             "Kubernetes Indexed Job)")
        return None
    if not index.isdigit():
        raise ValueError(f"{INDEX_ENV}: expected a non-negative integer, got {index!r}")
    total = count if count is not None else _count_from_env(env)
    if total is None:
        raise ValueError(f"{INDEX_ENV}={index} is set but the number of shards is not: "
                         f"give --shardCount N or {COUNT_ENV}=N (the Job's completions)")
    if int(index) >= total:
        raise ValueError(f"{INDEX_ENV}={index} is not below the number of shards {total}")
    return Shard(int(index), total)


def input_bytes(path: Path) -> int:
    """An input's weight: its size, or for a directory store the sizes of all its files."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
    except OSError:
        return 0


def assign(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """LPT: name -> shard index, from the names and weights alone (never their order).

    Equal loads go to the shard with fewer inputs, so that inputs of equal size (empty
    ``.fake`` files, or small headers whose pixels live elsewhere) are spread by count.
    """
    loads = [(0, 0, i) for i in range(count)]  # a heap of (bytes, inputs, shard index)
    out: dict[str, int] = {}
    for name, weight in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
        load, n, index = heapq.heappop(loads)
        out[name] = index
        heapq.heappush(loads, (load + weight, n + 1, index))
    return out


def fingerprint(weights: Mapping[str, int]) -> str:
    """A short digest of the (name, size) pairs the partition was computed from: shards that
    print different fingerprints did not see the same collection."""
    digest = hashlib.sha256()
    for name, weight in sorted(weights.items()):
        digest.update(f"{name}\0{weight}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def _ancestors(name_stem: str) -> Iterable[str]:
    """The stem with one, two, ... trailing ``_c0``-like tokens removed."""
    current = name_stem
    while True:
        m = _TOKEN.search(current)
        if not m or m.start() == 0:
            return
        current = current[:m.start()]
        yield current


def collision_suspects(names: Iterable[str]) -> set[str]:
    """Input names that could share an output name with another input, judged from names only.

    Outputs are ``stem + tokens + ext`` (tokens ``_[ctzs]<digits>``), so inputs A and B can
    collide only when stem(B) is stem(A) followed by zero or more whole tokens. A superset:
    whether they really collide depends on their dimensions, which only planning knows.
    """
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_stem[stem(name)].append(name)
    suspects: set[str] = set()
    for s, group in by_stem.items():
        if len(group) > 1:
            suspects.update(group)
        for shorter in _ancestors(s):
            if shorter in by_stem:
                suspects.update(group)
                suspects.update(by_stem[shorter])
    return suspects


@dataclass(frozen=True)
class Scope:
    """What one shard does: the inputs it converts, and the inputs it plans (its own, plus
    every collision suspect of the collection, in collection order)."""

    shard: Shard
    own: tuple[Path, ...]
    planned: tuple[Path, ...]
    own_bytes: int
    total_bytes: int
    inputs: int
    fingerprint: str


def scope(inputs: list[Path], shard: Shard) -> Scope:
    """This shard's part of ``inputs`` (the whole collection, as ``find_inputs`` lists it)."""
    weights = {p.name: input_bytes(p) for p in inputs}
    owner = assign(weights, shard.count)
    suspects = collision_suspects(weights)
    own = tuple(p for p in inputs if owner[p.name] == shard.index)
    planned = tuple(p for p in inputs if owner[p.name] == shard.index or p.name in suspects)
    return Scope(shard, own, planned, sum(weights[p.name] for p in own),
                 sum(weights.values()), len(inputs), fingerprint(weights))
