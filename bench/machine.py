"""What this machine offers the benchmark: Java, the Bio-Formats jar, library versions, load.

Recorded with the workloads (another jar may write other ICS bytes) and with every result
(figures are only comparable between runs on the same software).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def find_jar(explicit: str | None = None) -> Path | None:
    """``--jar``, else ``$BENCH_JAR``, else omeio's own lookup, else omeio's cache folder."""
    for candidate in (explicit, os.environ.get("BENCH_JAR")):
        if candidate:
            return Path(candidate)
    try:
        from omeio.jar import find_jar as omeio_find_jar

        return Path(omeio_find_jar())
    except Exception:  # omeio.jar missing, or no jar installed: try the usual place
        fallback = Path.home() / ".cache" / "omeio" / "bioformats_package.jar"
        return fallback if fallback.is_file() else None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def jar_version(jar: Path) -> str:
    try:
        with zipfile.ZipFile(jar) as z:
            for line in z.read("META-INF/MANIFEST.MF").decode().splitlines():
                if line.startswith("Implementation-Version:"):
                    return line.split(":", 1)[1].strip()
    except (OSError, KeyError, zipfile.BadZipFile):
        pass
    return "unknown"


def java_version() -> str | None:
    """First line of ``java -version``, or None without Java."""
    if shutil.which("java") is None:
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0].strip() if out else "unknown"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("numpy", "tifffile", "imagecodecs", "zarr", "pillow", "psutil",
                 "ome-converter-plugin"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def git_commit() -> str:
    """The project's commit, ``+dirty`` when the tree has changes (read-only git calls)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def describe() -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java_version(),
        "libraries": library_versions(),
        "commit": git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
