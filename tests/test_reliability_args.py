"""Bad arguments the CLI tests do not cover: each is one line on stderr, exit status 2, and
nothing is written anywhere (tests/test_plugin_cli.py has the common cases)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def layout(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    tifffile.imwrite(inp / "img.tif", np.zeros((8, 8), np.uint8))
    os.symlink(inp, tmp_path / "link_to_in")
    return tmp_path


CASES = [
    # an unset variable in a workflow template must not mean "the current directory"
    (["--inpDir", "", "--outDir", "{t}/out"], "--inpDir is empty"),
    (["--inpDir", "{t}/in", "--outDir", ""], "--outDir is empty"),
    (["--inpDir", "  ", "--outDir", "{t}/out"], "--inpDir is empty"),
    # output inside the input, however it is spelled
    (["--inpDir", "{t}/in", "--outDir", "{t}/link_to_in/out"], "is inside --inpDir"),
    (["--inpDir", "{t}/link_to_in", "--outDir", "{t}/in/out"], "is inside --inpDir"),
    (["--inpDir", "{t}/in", "--outDir", "{t}/out/../in/deeper/out"], "is inside --inpDir"),
    # extensions the plugin does not write, in any spelling
    (["--inpDir", "{t}/in", "--outDir", "{t}/out", "--fileExtension", ".ome.tiff"],
     "is not one of .ome.tif, .ome.zarr"),
    (["--inpDir", "{t}/in", "--outDir", "{t}/out", "--fileExtension", ".OME.TIF"],
     "is not one of .ome.tif, .ome.zarr"),
    (["--inpDir", "{t}/in", "--outDir", "{t}/out", "--fileExtension", ""],
     "is not one of .ome.tif, .ome.zarr"),
    # the input is a file, not a collection
    (["--inpDir", "{t}/in/img.tif", "--outDir", "{t}/out"], "is not a directory"),
    (["--inpDir", "{t}/in", "--outDir", "{t}/out", "--numWorkers", "-1"], "positive integer"),
]


@pytest.mark.parametrize(("args", "needle"), CASES)
def test_bad_argument_exit_2_one_line_nothing_written(layout, args, needle):
    before = _tree(layout)
    argv = [a.replace("{t}", str(layout)) for a in args]
    env = {k: v for k, v in os.environ.items() if k not in ("POLUS_IMG_EXT", "NUM_WORKERS")}
    proc = subprocess.run([sys.executable, "-m", "ome_converter", *argv], capture_output=True,
                          text=True, env=env, timeout=60, cwd=layout)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ome_converter: error: "), proc.stderr
    assert needle in lines[0], lines[0]
    assert proc.stdout == ""
    assert _tree(layout) == before  # no output directory, no preview, no log, nothing
