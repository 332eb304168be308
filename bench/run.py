"""Run the contenders on the workloads, round-robin, and report medians with a content check.

    python bench/run.py [--size full|small] [--workloads w1,w2,w3,w4] [--runs 3] [--warmup 1]
                        [--contenders bench/contenders.conf] [--only NAME,...] [--tag TAG]

Inputs come from ``make_workloads.py`` (same ``--size`` and ``--data``). Every round runs each
contender once per workload, in turn, so slow drift of a shared machine spreads over all of
them. The first round's output of each contender is verified pixel by pixel. Results go to
``bench/results/<date>-<tag>.md`` and ``.json``; the markdown is printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import machine
import measure
import report
import verify
from make_workloads import DEFAULT_OUT, FOLDERS

BENCH = machine.BENCH
#: the converters' knobs; unset, they must choose for themselves
SCRUBBED_ENV = ("NUM_WORKERS", "NUM_THREADS", "POLUS_IMG_EXT", "POLUS_EXT")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def parse_contenders(path: Path) -> list[dict]:
    """``NAME WORKLOADS COMMAND`` lines; ``#`` starts a comment line."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise SystemExit(f"{path}:{number}: expected NAME WORKLOADS COMMAND")
        name, wl, command = parts
        workloads = list(FOLDERS) if wl == "all" else [w.strip() for w in wl.split(",")]
        unknown = set(workloads) - set(FOLDERS)
        if unknown:
            raise SystemExit(f"{path}:{number}: unknown workload(s) {sorted(unknown)}")
        found.append({"name": name, "workloads": workloads, "command": command})
    return found


def expand(command: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        command = command.replace("{" + key + "}", shlex.quote(value))
    return command


def missing_tool(contender: dict, places: dict[str, str], jar: Path | None) -> str | None:
    """Why the contender cannot run here (a tool or module is not installed), or None."""
    if "{jar}" in contender["command"]:
        if jar is None or not jar.is_file():
            return "no Bio-Formats jar (--jar or BENCH_JAR)"
        if shutil.which("java") is None:
            return "java not on PATH"
    words = shlex.split(expand(contender["command"], places))
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return "empty command"
    if shutil.which(words[0]) is None:
        return f"{words[0]} not found"
    for word in words[1:]:
        if word.startswith(str(BENCH)) and not Path(word).exists():
            return f"{word} not found"
    if len(words) > 2 and words[1] == "-m":
        module = words[2]
        check = (f"import importlib.util as u, sys; s = u.find_spec({module!r}); "
                 f"sys.exit(s is None or (s.submodule_search_locations is not None and "
                 f"u.find_spec({module + '.__main__'!r}) is None))")
        if subprocess.run([words[0], "-c", check], capture_output=True).returncode != 0:
            return f"python -m {module}: no such runnable module"
    return None


def load_workloads(root: Path, wanted: list[str]) -> list[dict]:
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    found = []
    for wid in wanted:
        entry = manifest.get("workloads", {}).get(wid)
        if entry is None:
            raise SystemExit(f"workload {wid} is not in {root}: run "
                             f"bench/make_workloads.py --size {root.name} --out {root.parent}")
        folder = entry["folder"]
        files = {k: v for k, v in entry["files"].items() if k.split("/")[0] == folder}
        found.append({"id": wid, "folder": folder, "path": str(root / folder),
                      "files": len(files),
                      "mib": sum(f["bytes"] for f in files.values()) / 2**20})
    return found


def contender_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["TMPDIR"] = str(tmp)
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("full", "small"), default="full")
    ap.add_argument("--data", type=Path, default=DEFAULT_OUT, help="make_workloads.py's --out")
    ap.add_argument("--work", type=Path, default=Path("/tmp/omeio-bench/work"),
                    help="outputs, logs and TMPDIR of the contenders (default %(default)s)")
    ap.add_argument("--workloads", default="w1,w2,w3,w4")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per cell (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--contenders", type=Path, default=BENCH / "contenders.conf")
    ap.add_argument("--only", help="comma-separated contender names to keep")
    ap.add_argument("--floor", default="tifffile-floor", help="the contender ratios refer to")
    ap.add_argument("--tag", help="result file suffix (default: the size)")
    ap.add_argument("--results", type=Path, default=BENCH / "results")
    ap.add_argument("--jar", help="Bio-Formats jar for {jar} (default: omeio's)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--interval", type=float, default=0.05, help="memory sampling period, s")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")

    workloads = load_workloads(args.data / args.size,
                               [w.strip() for w in args.workloads.split(",") if w.strip()])
    contenders = parse_contenders(args.contenders)
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        contenders = [c for c in contenders if c["name"] in keep]
    jar = machine.find_jar(args.jar)
    outdir, logs, tmp = args.work / "out", args.work / "logs", args.work / "tmp"
    for d in (logs, tmp):
        d.mkdir(parents=True, exist_ok=True)
    places = {"bench": str(BENCH), "repo": str(machine.REPO), "python": sys.executable,
              "jar": str(jar) if jar else "", "out": str(outdir)}
    skipped = {}
    for c in contenders:
        why = missing_tool(c, {**places, "in": workloads[0]["path"]}, jar)
        if why:
            skipped[c["name"]] = why
            print(f"[skip] {c['name']}: {why}", flush=True)
    active = [c for c in contenders if c["name"] not in skipped]
    env = contender_env(tmp)
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    meta = {"started": started.isoformat(), "size": args.size, "runs": args.runs,
            "warmup": args.warmup, "interval": args.interval, "tag": args.tag or args.size,
            "machine": machine.describe(), "load_start": machine.loadavg(),
            "jar_version": machine.jar_version(jar) if jar else "-", "failures": []}
    runs: list[dict] = []
    verdicts: dict[str, dict[str, str]] = {}
    checks: list[dict] = []
    for w in workloads:
        cell = [c for c in active if w["id"] in c["workloads"]]
        for rnd in range(args.warmup + args.runs):
            for c in cell:
                shutil.rmtree(outdir, ignore_errors=True)
                outdir.mkdir(parents=True)
                os.sync()
                command = expand(c["command"], {**places, "in": w["path"]})
                log = logs / f"{w['id']}-{c['name']}-{rnd}.log"
                r = measure.run_tree(["bash", "-c", command], env, log, args.timeout,
                                     args.interval, cwd=args.work)
                size, files = measure.output_size(outdir)
                row = {"workload": w["id"], "contender": c["name"], "round": rnd,
                       "warmup": rnd < args.warmup, "output_bytes": size, "output_files": files,
                       "log": str(log), **r.as_dict()}
                runs.append(row)
                state = "ok" if r.returncode == 0 else f"exit {r.returncode}"
                print(f"[{w['id']} r{rnd}{'w' if row['warmup'] else ''}] {c['name']}: "
                      f"{r.wall_s:.2f} s, CPU {r.cpu_s:.1f} s, tree "
                      f"{r.peak_tree_rss_mib:.0f} MiB, {state}", flush=True)
                if r.returncode != 0:
                    tail = log.read_text(errors="replace")[-1500:]
                    meta["failures"].append({**{k: row[k] for k in ("workload", "contender",
                                             "round", "returncode", "timed_out")},
                                             "log_tail": tail})
                if rnd == 0 and not args.no_verify:
                    result = verify.verify(Path(w["path"]), outdir)
                    checks.append({"workload": w["id"], "contender": c["name"], **result})
                    verdicts.setdefault(w["id"], {})[c["name"]] = verify.summary(result)
                    print(f"    pixels: {verify.summary(result)}", flush=True)
        shutil.rmtree(outdir, ignore_errors=True)
    meta["load_end"] = machine.loadavg()
    summary = report.summarise(runs, args.floor)
    text = report.markdown(meta, workloads, summary, verdicts, skipped, contenders, args.floor)
    text = text.replace(str(BENCH), "{bench}")
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"{started.date().isoformat()}-{meta['tag']}"
    stem.with_suffix(".md").write_text(text)
    payload = {"meta": meta, "workloads": workloads, "contenders": contenders,
               "skipped": skipped, "summary": summary, "verify": checks, "runs": runs}
    stem.with_suffix(".json").write_text(
        json.dumps(payload, indent=1, default=str).replace(str(BENCH), "{bench}") + "\n")
    print("\n" + text)
    print(f"written: {stem}.md, {stem}.json")
    failed = bool(meta["failures"]) or any(not c["pass"] for c in checks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
