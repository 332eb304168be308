"""The whole run's plan, built before anything is converted: outputs, collisions, what is done.

Two inputs that would write the same output stop the run before any conversion, because
whichever finished last would silently replace the other.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from .jobs import ConvertJob, InputPlan, Output
from .naming import outputs_for

PREVIEW = "preview.json"


class CollisionError(Exception):
    """Two inputs map to one output name."""

    def __init__(self, name: str, first: str, second: str):
        self.name, self.first, self.second = name, first, second
        super().__init__(f"inputs {first!r} and {second!r} would both write {name!r}; "
                         "rename one of them or narrow --filePattern")


@dataclass
class Plan:
    """Outputs of every readable input, in input order."""

    outputs: dict[str, list[Output]] = field(default_factory=dict)
    plans: dict[str, InputPlan] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [o.name for outs in self.outputs.values() for o in outs]

    def restrict(self, paths: Collection[str]) -> Plan:
        """The plan of some inputs only (a shard's), after collisions were checked on more."""
        keep = set(paths)
        return Plan({p: o for p, o in self.outputs.items() if p in keep},
                    {p: ip for p, ip in self.plans.items() if p in keep})


def build(plans: list[InputPlan], ext: str, layout: str) -> Plan:
    """Name every output; raise :class:`CollisionError` on the first name two inputs share."""
    plan = Plan()
    owner: dict[str, str] = {}
    for p in plans:
        if p.error is not None:
            continue
        name = Path(p.path).name
        outs = outputs_for(name, p.images, ext, layout)
        for o in outs:
            if o.name in owner and owner[o.name] != name:
                raise CollisionError(o.name, owner[o.name], name)
            owner[o.name] = name
        plan.outputs[p.path] = outs
        plan.plans[p.path] = p
    return plan


def is_complete(out_dir: Path, name: str) -> bool:
    """An output exists under its final name only once its writer has finished it."""
    return (out_dir / name).exists()


def jobs(plan: Plan, out_dir: Path, overwrite: bool) -> tuple[list[ConvertJob], list[str]]:
    """Conversion jobs for the outputs still to write, and the names skipped as complete."""
    todo: list[ConvertJob] = []
    skipped: list[str] = []
    for path, outs in plan.outputs.items():
        pending = []
        for o in outs:
            if not overwrite and is_complete(out_dir, o.name):
                skipped.append(o.name)
            else:
                pending.append(o)
        if pending:
            todo.append(ConvertJob(path, str(out_dir), tuple(pending), plan.plans[path].images))
    return todo, skipped


def write_preview(out_dir: Path, pattern: str, to_write: list[str], complete: list[str],
                  name: str = PREVIEW, extra: dict | None = None) -> Path:
    """``preview.json``: ``outDir`` lists exactly the files a real run would write."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    doc = {"filepattern": pattern, "outDir": sorted(to_write), "complete": sorted(complete)}
    doc.update(extra or {})
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def stale_partials(out_dir: Path, only: Collection[str] | None = None) -> list[Path]:
    """Hidden ``.NAME.partial`` leftovers of an interrupted run; with ``only``, those of these
    output names alone (a shard must not touch what another shard is writing right now)."""
    if not out_dir.is_dir():
        return []
    found = [p for p in out_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]
    if only is not None:
        mine = {f".{name}.partial" for name in only}
        found = [p for p in found if p.name in mine]
    return sorted(found)
