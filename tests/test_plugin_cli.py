"""The plugin's arguments: defaults from the environment, one-line errors, exit status 2."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ome_converter import cli


def _parse(tmp_path: Path, *extra: str, env: dict | None = None) -> cli.Config:
    inp = tmp_path / "in"
    inp.mkdir(exist_ok=True)
    return cli.parse(["--inpDir", str(inp), "--outDir", str(tmp_path / "out"), *extra],
                     env=env or {})


def test_defaults(tmp_path):
    cfg = _parse(tmp_path)
    assert cfg.inp_dir == tmp_path / "in"
    assert cfg.out_dir == tmp_path / "out"
    assert cfg.file_pattern == ".+"
    assert cfg.file_extension == ".ome.tif"
    assert cfg.layout == "plane"
    assert cfg.preview is False and cfg.overwrite is False
    assert cfg.num_workers is None and cfg.num_threads is None
    assert cfg.log_level == logging.INFO


def test_environment_defaults_and_command_line_wins(tmp_path):
    env = {"POLUS_IMG_EXT": ".ome.zarr", "NUM_WORKERS": "3", "NUM_THREADS": "2",
           "POLUS_LOG": "debug"}
    cfg = _parse(tmp_path, env=env)
    assert (cfg.file_extension, cfg.num_workers, cfg.num_threads) == (".ome.zarr", 3, 2)
    assert cfg.log_level == logging.DEBUG
    cfg = _parse(tmp_path, "--fileExtension", ".ome.tif", "--numWorkers", "1", env=env)
    assert (cfg.file_extension, cfg.num_workers) == (".ome.tif", 1)


def test_boolean_flags_bare_or_with_value(tmp_path):
    assert _parse(tmp_path, "--preview").preview is True
    assert _parse(tmp_path, "--preview", "false").preview is False
    assert _parse(tmp_path, "--overwrite", "true", "--layout", "series").overwrite is True
    assert _parse(tmp_path, "--layout", "series").layout == "series"


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--outDir", "{out}"], {}, "--inpDir is required"),
        (["--inpDir", "{inp}"], {}, "--outDir is required"),
        (["--inpDir", "{missing}", "--outDir", "{out}"], {}, "does not exist"),
        (["--inpDir", "{file}", "--outDir", "{out}"], {}, "is not a directory"),
        (["--inpDir", "{inp}", "--outDir", "{inp}/sub"], {}, "inside --inpDir"),
        (["--inpDir", "{inp}", "--outDir", "{inp}"], {}, "inside --inpDir"),
        (["--inpDir", "{inp}", "--outDir", "{file}"], {}, "not a directory"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--fileExtension", ".png"], {},
         "is not one of"),
        (["--inpDir", "{inp}", "--outDir", "{out}"], {"POLUS_IMG_EXT": ".jpg"},
         "POLUS_IMG_EXT"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--filePattern", "img{c:d"], {},
         "--filePattern"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--filePattern", "*.tif"], {}, "glob"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--numWorkers", "0"], {}, "positive"),
        (["--inpDir", "{inp}", "--outDir", "{out}"], {"NUM_THREADS": "x"}, "NUM_THREADS"),
        (["--inpDir", "{inp}", "--outDir", "{out}"], {"POLUS_LOG": "LOUD"}, "POLUS_LOG"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--layout", "tiles"], {}, "is not one of"),
        (["--inpDir", "{inp}", "--outDir", "{out}", "--bogus"], {}, "unrecognized"),
    ],
)
def test_bad_arguments(tmp_path, args, env, needle):
    inp = tmp_path / "in"
    inp.mkdir()
    (tmp_path / "file.txt").write_text("x")
    subs = {"inp": str(inp), "out": str(tmp_path / "out"), "missing": str(tmp_path / "nope"),
            "file": str(tmp_path / "file.txt")}
    with pytest.raises(cli.UsageError) as info:
        cli.parse([a.format(**subs) if "{" in a and "}" in a and a[0] == "{" else a
                   for a in args], env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not (inp / "sub").exists()


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, **(env or {})}
    full_env.pop("POLUS_IMG_EXT", None)
    return subprocess.run([sys.executable, "-m", "ome_converter", *args], capture_output=True,
                          text=True, env=full_env, timeout=60)


def test_subprocess_bad_arguments_exit_2_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    cases = [
        ["--outDir", str(tmp_path / "out")],
        ["--inpDir", str(tmp_path / "nope"), "--outDir", str(tmp_path / "out")],
        ["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "in" / "o")],
        ["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "out"),
         "--fileExtension", ".jpg"],
        ["--inpDir", str(tmp_path / "in"), "--outDir", str(tmp_path / "out"),
         "--filePattern", "("],
    ]
    for args in cases:
        proc = _run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("ome_converter: error: ")
        assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert list((tmp_path / "in").iterdir()) == []


def test_help_exits_0_and_explains_every_option():
    proc = _run("--help")
    assert proc.returncode == 0
    for opt in cli.OPTIONS:
        assert opt.flag in proc.stdout
    for word in ("POLUS_LOG", "POLUS_IMG_EXT", "NUM_WORKERS", "NUM_THREADS", "_c<c>_t<t>_z<z>_s<s>"):
        assert word in proc.stdout


def test_option_table_is_consistent():
    names = [o.name for o in cli.OPTIONS]
    assert len(names) == len(set(names))
    assert {o.name for o in cli.OPTIONS if o.required} == {"inpDir", "outDir"}
    assert [o.name for o in cli.OPTIONS if o.output] == ["outDir"]
    for o in cli.OPTIONS:
        assert o.type in ("directory", "string", "enum", "boolean", "integer")
        assert (o.type == "enum") == bool(o.choices)
        if o.choices and o.default is not None:
            assert o.default in o.choices
        assert o.name[0].islower() and " " not in o.name
