"""Turn the runs of one session into per-workload summaries and a markdown report.

Medians, not means: on 2 shared cores one disturbed run would pull a mean; [min-max] shows
the spread. Ratios are taken against the tifffile floor of the same workload in the same
session, the only comparison that survives a change of machine or load.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def _median(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict], floor: str) -> list[dict]:
    """One entry per (workload, contender) from the timed (not warm-up) runs."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if not r["warmup"]:
            cells.setdefault((r["workload"], r["contender"]), []).append(r)
    out = []
    for (wid, name), rs in cells.items():
        ok = [r for r in rs if r["returncode"] == 0 and not r["timed_out"]]
        walls = [r["wall_s"] for r in ok]
        out.append({
            "workload": wid, "contender": name, "runs": len(rs), "failed_runs": len(rs) - len(ok),
            "wall_s": _median(walls), "wall_min": min(walls, default=None),
            "wall_max": max(walls, default=None),
            "cpu_s": _median(r["cpu_s"] for r in ok),
            "peak_tree_rss_mib": _median(r["peak_tree_rss_mib"] for r in ok),
            "peak_tree_pss_mib": _median(r["peak_tree_pss_mib"] for r in ok),
            "max_rss_1proc_mib": _median(r["max_rss_1proc_mib"] for r in ok),
            "procs": max((r["procs"] for r in ok), default=0),
            "output_bytes": _median(r["output_bytes"] for r in ok),
            "output_files": _median(r["output_files"] for r in ok),
        })
    floors = {s["workload"]: s["wall_s"] for s in out if s["contender"] == floor and s["wall_s"]}
    for s in out:
        f = floors.get(s["workload"])
        s["x_floor"] = s["wall_s"] / f if f and s["wall_s"] is not None else None
    return out


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def table(workload: dict, rows: list[dict], verdicts: dict[str, str], skipped: dict[str, str],
          floor: str) -> str:
    lines = [
        f"## {workload['id']} {workload['folder']}: {workload['files']} files, "
        f"{workload['mib']:.0f} MiB",
        "",
        "| contender | wall s, median [min-max] | x floor | CPU s | CPU/wall | peak tree RSS MiB "
        "| peak tree PSS MiB | peak 1 proc MiB | procs | output MiB (files) | out/in "
        "| pixels |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        name = s["contender"]
        if s["wall_s"] is None:
            lines.append(f"| {name} | failed ({s['failed_runs']}/{s['runs']} runs) "
                         f"| - | - | - | - | - | - | - | - | - | {verdicts.get(name, '-')} |")
            continue
        out_mib = (s["output_bytes"] or 0) / 2**20
        flag = f" ({s['failed_runs']} failed)" if s["failed_runs"] else ""
        lines.append(
            f"| {name} | {s['wall_s']:.2f} [{s['wall_min']:.2f}-{s['wall_max']:.2f}]{flag} "
            f"| {_num(s['x_floor'])} | {_num(s['cpu_s'], '{:.1f}')} "
            f"| {_num(s['cpu_s'] / s['wall_s'] if s['wall_s'] else None)} "
            f"| {_num(s['peak_tree_rss_mib'], '{:.0f}')} | {_num(s['peak_tree_pss_mib'], '{:.0f}')} "
            f"| {_num(s['max_rss_1proc_mib'], '{:.0f}')} | {s['procs']} "
            f"| {out_mib:.0f} ({s['output_files']:.0f}) | {out_mib / workload['mib']:.2f} "
            f"| {verdicts.get(name, '-')} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | - | - | - | - | - | - | - | - | - | - |")
    if not any(s["contender"] == floor for s in rows):
        lines += ["", f"(no `{floor}` here: `x floor` is not available for this workload)"]
    return "\n".join(lines)


def markdown(meta: dict, workloads: list[dict], summary: list[dict], verdicts: dict,
             skipped: dict[str, str], contenders: list[dict], floor: str) -> str:
    m = meta["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    parts = [
        f"# omeio conversion benchmark {meta['started']} ({meta['tag']})",
        "",
        f"Machine: {m['affinity']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; Python {m['python']}; {m['java'] or 'no Java'}; Bio-Formats jar "
        f"{meta['jar_version']}. Project commit {m['commit']}. {libs}.",
        f"Inputs: size '{meta['size']}' from make_workloads.py; {meta['runs']} timed run(s) after "
        f"{meta['warmup']} warm-up round(s), contenders interleaved round-robin; warm page cache, "
        f"no fsync; outputs deleted (then sync) between runs. Load average at start "
        f"{meta['load_start']}, at end {meta['load_end']}.",
        "",
        "wall = monotonic clock around the command; CPU = user+sys of the command and every "
        "descendant it waited for (wait4); peak tree RSS/PSS = largest sum over the command's "
        f"live process tree, sampled every {meta['interval'] * 1000:.0f} ms; peak 1 proc = "
        "largest single process, sampled the same way; x floor = median wall / median wall of "
        f"`{floor}` on the same workload; pixels = content check of the first round's output "
        "(every input plane bit-exact, nothing else).",
    ]
    by_workload: dict[str, list[dict]] = {}
    for s in summary:
        by_workload.setdefault(s["workload"], []).append(s)
    for w in workloads:
        skip = {n: why for n, why in skipped.items()
                if any(c["name"] == n and w["id"] in c["workloads"] for c in contenders)}
        parts += ["", table(w, by_workload.get(w["id"], []), verdicts.get(w["id"], {}), skip,
                            floor)]
    parts += ["", "## Contenders", ""]
    for c in contenders:
        note = f" - skipped: {skipped[c['name']]}" if c["name"] in skipped else ""
        parts.append(f"- `{c['name']}` ({','.join(c['workloads'])}): `{c['command']}`{note}")
    failures = meta.get("failures") or []
    if failures:
        parts += ["", "## Failures", ""]
        for f in failures:
            parts += [f"- {f['workload']} {f['contender']} round {f['round']}: "
                      f"exit {f['returncode']}{' (timeout)' if f['timed_out'] else ''}",
                      "", "```", f["log_tail"].rstrip(), "```"]
    return "\n".join(parts) + "\n"
