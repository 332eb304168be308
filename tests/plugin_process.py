"""Running the plugin as users do: ``python -m ome_converter`` in a real subprocess, with the
environment variables that would change its defaults removed (tests set what they mean)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: variables of the caller's environment a test run must not inherit
CLEAN_ENV = ("POLUS_IMG_EXT", "NUM_WORKERS", "NUM_THREADS", "POLUS_LOG", "JOB_COMPLETION_INDEX",
             "SHARD_COUNT", "PYTHONPATH")


def plugin_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update(extra or {})
    return env


def plugin_argv(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ome_converter", "--inpDir", str(inp), "--outDir", str(out),
            *args]


def run_plugin(inp: Path, out: Path, *args: str, env: dict | None = None,
               timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    """Run to the end; ``popen`` goes to ``subprocess.run`` (e.g. ``preexec_fn``)."""
    return subprocess.run(plugin_argv(inp, out, *args), capture_output=True, text=True,
                          env=plugin_env(env), timeout=timeout, **popen)


def start_plugin(inp: Path, out: Path, *args: str, **env: str) -> subprocess.Popen:
    """Start in a session of its own, so a test can kill the whole process group."""
    return subprocess.Popen(plugin_argv(inp, out, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=plugin_env(env),
                            start_new_session=True)
