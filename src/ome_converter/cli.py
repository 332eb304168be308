"""The plugin's command line: ONE table of options, from which parsing and manifests both derive.

WIPP conventions: camelCase options, defaults that the environment can set (``POLUS_IMG_EXT``,
``NUM_WORKERS``, ``NUM_THREADS``), ``POLUS_LOG`` for the log level. Every bad argument ends in
a one-line message and exit status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .shard import Shard
from .shard import resolve as resolve_shard

#: output extensions the plugin writes
EXTENSIONS = (".ome.tif", ".ome.zarr")
#: ``plane``: one 2-D plane per file (what WIPP expects); ``series``: each series as one 5-D file
LAYOUTS = ("plane", "series")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
USAGE_ERROR = 2


@dataclass(frozen=True)
class Option:
    """One option of the plugin, as the CLI, plugin.json, CWL and ICT manifests all see it.

    ``type`` is one of ``directory`` (WIPP collection), ``string``, ``enum``, ``boolean``,
    ``integer``. ``env`` names the environment variable that supplies the default.
    """

    name: str
    type: str
    description: str
    required: bool = False
    default: str | bool | int | None = None
    env: str | None = None
    choices: tuple[str, ...] = ()
    output: bool = False

    @property
    def flag(self) -> str:
        return f"--{self.name}"


OPTIONS: tuple[Option, ...] = (
    Option("inpDir", "directory", "Input image collection: files of any Bio-Formats format "
           "and .zarr stores (a store is one input)", required=True),
    Option("filePattern", "string", "filepattern pattern (e.g. img_c{c:d}.tif) or regular "
           "expression selecting input names", default=".+"),
    Option("outDir", "directory", "Output collection", required=True, output=True),
    Option("fileExtension", "enum", "Output format", default=".ome.tif", env="POLUS_IMG_EXT",
           choices=EXTENSIONS),
    Option("layout", "enum", "plane: one 2-D plane per output file (what WIPP expects); "
           "series: each series as one 5-D file", default="plane", choices=LAYOUTS),
    Option("preview", "boolean", "Write preview.json in outDir listing the files a real run "
           "would write, and convert nothing", default=False),
    Option("overwrite", "boolean", "Convert again outputs that are already complete "
           "(by default they are skipped)", default=False),
    Option("numWorkers", "integer", "Worker processes; automatic: one per available core, "
           "at most one per input", env="NUM_WORKERS"),
    Option("numThreads", "integer", "Threads per worker process; automatic: the available "
           "cores shared among the workers", env="NUM_THREADS"),
    Option("shard", "string", "I/N: convert only part I (0-based) of N of the collection, "
           "balanced by bytes, one part per pod; default: $JOB_COMPLETION_INDEX of "
           "--shardCount when a Kubernetes Indexed Job sets it, else the whole collection"),
    Option("shardCount", "integer", "Number of shards when the part comes from "
           "$JOB_COMPLETION_INDEX; default: $SHARD_COUNT"),
    Option("verifyComplete", "boolean", "Convert nothing; exit 0 only when every output of "
           "the collection (or of --shard) exists complete and no .partial temporary is left",
           default=False),
)

EPILOG = f"""\
Environment:
  POLUS_LOG      log level: {', '.join(LOG_LEVELS)} (default INFO)
  POLUS_IMG_EXT  default of --fileExtension
  NUM_WORKERS    default of --numWorkers
  NUM_THREADS    default of --numThreads
  JOB_COMPLETION_INDEX, SHARD_COUNT  the shard I and count N when --shard is not given

Outputs are named after the input: its name without a known extension (.ome.tif, .ome.tiff,
.ome.zarr...; else its last suffix), then _c<c>_t<t>_z<z>_s<s> (unpadded indices, only for
dimensions larger than 1), then the extension. With --layout series: name + _s<s> when a
file has several image series. Thumbnail, label and macro series are skipped. Outputs that
already exist are skipped unless --overwrite. Exit status: 0 success, 1 a file failed or two
inputs would make the same output (or, with --verifyComplete, an output is missing), 2 bad
arguments.
"""


@dataclass(frozen=True)
class Config:
    """Validated arguments of one run."""

    inp_dir: Path
    file_pattern: str
    out_dir: Path
    file_extension: str
    layout: str
    preview: bool
    overwrite: bool
    num_workers: int | None
    num_threads: int | None
    log_level: int
    shard: Shard | None = None
    verify_complete: bool = False


class UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m ome_converter",
        description="Convert every series of every image in a collection to 1024x1024-tiled "
                    "OME-TIFF or OME-Zarr.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    for opt in OPTIONS:
        text = opt.description + "."
        if opt.required:
            text += " Required."
        elif opt.env:
            text += f" Default: ${opt.env}, else {opt.default or 'automatic'}."
        elif opt.default not in (None, False):
            text += f" Default: {opt.default}."
        kwargs: dict = {"dest": opt.name, "help": text, "default": None}
        if opt.type == "boolean":
            # a bare flag, or WIPP's "--flag true|false"
            kwargs.update(nargs="?", const=True, type=_bool, metavar="true|false")
        elif opt.type == "integer":
            kwargs.update(type=_positive, metavar="N")
        elif opt.type == "directory":
            kwargs.update(metavar="DIR")
        else:
            kwargs.update(metavar=opt.type.upper() if not opt.choices else "|".join(opt.choices))
        parser.add_argument(opt.flag, **kwargs)
    return parser


def _value(opt: Option, given, env: Mapping[str, str]):
    """Command line, else environment, else the table's default."""
    if given is not None:
        if opt.type == "directory" and not str(given).strip():
            # an unset variable in a workflow template: "" would silently mean the cwd
            raise UsageError(f"{opt.flag} is empty")
        return given
    if opt.env and env.get(opt.env, "").strip():
        text = env[opt.env].strip()
        try:
            return _positive(text) if opt.type == "integer" else text
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{opt.env}: {exc}") from None
    if opt.required:
        raise UsageError(f"the option {opt.flag} is required")
    return opt.default


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that neither filepattern nor a regular expression accepts."""
    from .discover import matcher

    if not pattern:
        raise UsageError("--filePattern is empty; use .+ to take every file")
    try:
        matcher([], pattern)
    except Exception as exc:
        hint = " (a glob? use a regular expression like .*\\.tif)" if pattern[0] in "*?" else ""
        raise UsageError(f"--filePattern {pattern!r} is not valid: {exc}{hint}") from None


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate; raises :class:`UsageError` with a one-line message."""
    env = os.environ if env is None else env
    ns = build_parser().parse_args(argv)
    values = {opt.name: _value(opt, getattr(ns, opt.name), env) for opt in OPTIONS}
    for opt in OPTIONS:
        if opt.choices and values[opt.name] not in opt.choices:
            source = opt.env if getattr(ns, opt.name) is None and opt.env else opt.flag
            raise UsageError(f"{source}: {values[opt.name]!r} is not one of "
                             f"{', '.join(opt.choices)}")
    level_name = env.get("POLUS_LOG", "").strip().upper() or "INFO"
    if level_name not in LOG_LEVELS:
        raise UsageError(f"POLUS_LOG: {level_name!r} is not one of {', '.join(LOG_LEVELS)}")
    inp = Path(values["inpDir"]).expanduser()
    if not inp.exists():
        raise UsageError(f"--inpDir {inp} does not exist")
    if not inp.is_dir():
        raise UsageError(f"--inpDir {inp} is not a directory")
    out = Path(values["outDir"]).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--outDir {out} exists and is not a directory")
    if _inside(out.resolve(), inp.resolve()):
        raise UsageError(f"--outDir {out} is inside --inpDir {inp}: outputs would become inputs")
    check_pattern(values["filePattern"])
    try:
        shard = resolve_shard(values["shard"], values["shardCount"], env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if values["preview"] and values["verifyComplete"]:
        raise UsageError("--preview and --verifyComplete exclude each other")
    return Config(
        inp_dir=inp,
        file_pattern=values["filePattern"],
        out_dir=out,
        file_extension=values["fileExtension"],
        layout=values["layout"],
        preview=bool(values["preview"]),
        overwrite=bool(values["overwrite"]),
        num_workers=values["numWorkers"],
        num_threads=values["numThreads"],
        log_level=getattr(logging, level_name),
        shard=shard,
        verify_complete=bool(values["verifyComplete"]),
    )


def parse_or_exit(argv: Sequence[str] | None = None) -> Config:
    """:func:`parse`, printing a bad argument as one line on stderr and exiting with status 2."""
    try:
        return parse(argv)
    except UsageError as exc:
        print(f"ome_converter: error: {exc} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
