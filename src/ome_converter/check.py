"""``--verifyComplete``: the final step after a fan-out, which says whether the shards together
converted the whole collection.

An output counts as complete once it exists under its final name (writers rename a finished
temporary into place); a ``.NAME.partial`` left behind means a shard died mid-write and must be
rerun. The plan comes from the same planning as a conversion, so the expected names are exactly
those a single run would write.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from .plan import Plan, is_complete, stale_partials

log = logging.getLogger("ome_converter")

#: names listed in the log before "... and N more"
SHOWN = 20


def missing(plan: Plan, out_dir: Path) -> list[str]:
    """Expected outputs that do not exist (complete) in ``out_dir``."""
    return [name for name in plan.names if not is_complete(out_dir, name)]


def _show(names: list[str]) -> str:
    more = f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def report(plan: Plan, out_dir: Path, unreadable: Collection[str],
           only: Collection[str] | None = None) -> bool:
    """Log what is missing; True when every expected output exists, no input failed planning
    and no temporary is left (of ``only`` these names, when checking one shard)."""
    absent = missing(plan, out_dir)
    debris = [p.name for p in stale_partials(out_dir, only)]
    expected = len(plan.names)
    if absent:
        log.error("incomplete: %d of %d expected outputs missing: %s", len(absent), expected,
                  _show(absent))
    if debris:
        log.error("incomplete: %d unfinished temporary file(s) left by a stopped run (rerun "
                  "its shard): %s", len(debris), _show(debris))
    if unreadable:
        log.error("incomplete: %d input(s) could not be planned, so their outputs are unknown: "
                  "%s", len(unreadable), _show([Path(p).name for p in unreadable]))
    ok = not (absent or debris or unreadable)
    if ok:
        log.info("complete: all %d expected outputs of %d input(s) exist in %s", expected,
                 len(plan.outputs), out_dir)
    return ok
