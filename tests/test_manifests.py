"""The shipping files agree with each other and with the CLI.

VERSION is the one source of the version; build-docker.sh is the one place the image name is
chosen; ``ome_converter.cli.OPTIONS`` is the one table of options. plugin.json (WIPP),
ict.yaml (ICT), ome-converter.cwl (CWL) and the Dockerfile must all follow them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

from ome_converter import cli
from omeio import jar

ROOT = Path(__file__).resolve().parents[1]
VERSION = (ROOT / "VERSION").read_text().strip()
MANIFESTS = ("plugin.json", "ict.yaml", "ome-converter.cwl")

INPUTS = [o for o in cli.OPTIONS if not o.output]
OUTPUTS = [o for o in cli.OPTIONS if o.output]

#: CLI option type -> manifest type, for inputs
WIPP_TYPES = {"directory": "genericData", "string": "string", "enum": "enum",
              "boolean": "boolean", "integer": "integer"}
ICT_TYPES = {"directory": "path", "string": "string", "enum": "string",
             "boolean": "boolean", "integer": "number"}
ICT_UI_TYPES = {"directory": "path", "string": "text", "enum": "select",
                "boolean": "checkbox", "integer": "number"}
CWL_TYPES = {"directory": "Directory", "string": "string", "boolean": "boolean",
             "integer": "int"}


def plugin() -> dict:
    return json.loads((ROOT / "plugin.json").read_text())


def ict() -> dict:
    return yaml.safe_load((ROOT / "ict.yaml").read_text())


def cwl() -> dict:
    return yaml.safe_load((ROOT / "ome-converter.cwl").read_text())


def build_script_image() -> str:
    """``ORG/IMAGE`` as build-docker.sh sets them."""
    text = (ROOT / "build-docker.sh").read_text()
    org = re.search(r"^ORG=(\S+)$", text, re.M)
    image = re.search(r"^IMAGE=(\S+)$", text, re.M)
    assert org and image, "build-docker.sh must set ORG= and IMAGE= on lines of their own"
    return f"{org.group(1)}/{image.group(1)}"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def entrypoint() -> list[str]:
    found = [json.loads(rest) for word, rest in final_stage() if word == "ENTRYPOINT"]
    assert len(found) == 1
    return found[0]


# --- one version, one image name ----------------------------------------------------------


def test_version_is_one_string_everywhere():
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", VERSION)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.M)
    assert re.search(r'^version = \{ file = "VERSION" \}$', pyproject, re.M)
    assert metadata.version("ome-converter-plugin") == VERSION, "reinstall: pip install -e ."
    tags = {
        "plugin.json version": plugin()["version"],
        "plugin.json containerId": plugin()["containerId"].rsplit(":", 1)[1],
        "ict.yaml version": str(ict()["version"]),
        "ict.yaml container": ict()["container"].rsplit(":", 1)[1],
        "CWL dockerPull": cwl()["hints"]["DockerRequirement"]["dockerPull"].rsplit(":", 1)[1],
    }
    assert tags == dict.fromkeys(tags, VERSION)


def test_image_name_comes_from_build_script():
    image = build_script_image()
    assert image == "polusai/ome-converter-plugin"
    tag = f"{image}:{VERSION}"
    assert plugin()["containerId"] == tag
    assert ict()["container"] == tag
    assert cwl()["hints"]["DockerRequirement"]["dockerPull"] == tag
    assert plugin()["name"] == ict()["name"] == image


def test_command_is_the_entrypoint_everywhere():
    command = ["python3", "-m", "ome_converter"]
    assert entrypoint() == command
    assert plugin()["baseCommand"] == command  # WIPP/Argo `command` replaces the ENTRYPOINT
    assert ict()["entrypoint"].split() == command
    # CWL runners run ENTRYPOINT + command line: a baseCommand would repeat the module
    assert "baseCommand" not in cwl()


# --- plugin.json (WIPP) -------------------------------------------------------------------


def test_wipp_inputs_are_the_cli_options():
    inputs = plugin()["inputs"]
    assert [i["name"] for i in inputs] == [o.name for o in INPUTS]
    for item, opt in zip(inputs, INPUTS, strict=True):
        assert item["type"] == WIPP_TYPES[opt.type], opt.name
        assert item["required"] is opt.required, opt.name
        assert item["description"], opt.name
        if opt.choices:
            assert item["options"]["values"] == list(opt.choices), opt.name
        else:
            assert "options" not in item, opt.name


def test_wipp_outputs_are_the_cli_output_options():
    outputs = plugin()["outputs"]
    assert [(o["name"], o["type"]) for o in outputs] == [(o.name, "collection") for o in OUTPUTS]


def test_wipp_ui_has_one_entry_per_input_with_the_cli_default():
    ui = plugin()["ui"]
    entries = {e["key"]: e for e in ui if e["key"] != "fieldsets"}
    assert list(entries) == [f"inputs.{o.name}" for o in INPUTS]
    for opt in INPUTS:
        entry = entries[f"inputs.{opt.name}"]
        assert entry["title"], opt.name
        if opt.default is None:
            assert "default" not in entry, opt.name
        else:
            assert entry["default"] == opt.default, opt.name
            assert type(entry["default"]) is type(opt.default), opt.name
    fieldsets = [e for e in ui if e["key"] == "fieldsets"]
    assert len(fieldsets) == 1
    fields = [name for group in fieldsets[0]["fieldsets"] for name in group["fields"]]
    assert sorted(fields) == sorted(o.name for o in INPUTS)


def test_wipp_style_arguments_parse(tmp_path):
    """WIPP passes every input as ``--name value``, booleans as true/false."""
    sample = {"genericData": str(tmp_path / "in"), "string": "img_{c:d}.tif", "integer": "2",
              "boolean": "true"}
    by_name = {"shard": "1/3", "shardCount": "3", "verifyComplete": "false"}
    (tmp_path / "in").mkdir()
    argv = []
    for item in plugin()["inputs"]:
        value = item["options"]["values"][-1] if item["type"] == "enum" else sample[item["type"]]
        argv += [f"--{item['name']}", by_name.get(item["name"], value)]
    argv += [f"--{plugin()['outputs'][0]['name']}", str(tmp_path / "out")]
    config = cli.parse(argv, env={})
    assert config.inp_dir == tmp_path / "in"
    assert config.out_dir == tmp_path / "out"
    assert config.file_pattern == "img_{c:d}.tif"
    assert (config.file_extension, config.layout) == (".ome.zarr", "series")
    assert (config.preview, config.overwrite) == (True, True)
    assert (config.num_workers, config.num_threads) == (2, 2)
    assert (config.shard.index, config.shard.count) == (1, 3)
    assert config.verify_complete is False


# --- ict.yaml -----------------------------------------------------------------------------


def test_ict_inputs_and_outputs_are_the_cli_options():
    doc = ict()
    assert str(doc["specVersion"]) and doc["title"] == plugin()["title"]
    assert [i["name"] for i in doc["inputs"]] == [o.name for o in INPUTS]
    for item, opt in zip(doc["inputs"], INPUTS, strict=True):
        assert item["type"] == ICT_TYPES[opt.type], opt.name
        assert item["required"] is opt.required, opt.name
        assert item["format"] == [opt.name]
        assert item.get("defaultValue") == opt.default, opt.name
    assert [(o["name"], o["type"]) for o in doc["outputs"]] == [(o.name, "path") for o in OUTPUTS]


def test_ict_ui_covers_every_input_and_output():
    ui = {e["key"]: e for e in ict()["ui"]}
    expected = [f"inputs.{o.name}" for o in INPUTS] + [f"outputs.{o.name}" for o in OUTPUTS]
    assert list(ui) == expected
    for opt in cli.OPTIONS:
        entry = ui[f"{'outputs' if opt.output else 'inputs'}.{opt.name}"]
        assert entry["title"] and entry["description"], opt.name
        assert entry["type"] == ICT_UI_TYPES[opt.type], opt.name
        if opt.choices:
            assert entry["fields"] == list(opt.choices), opt.name
        if opt.type == "integer":
            assert entry["integer"] is True
        if opt.type == "boolean":
            assert entry["default"] is opt.default


# --- ome-converter.cwl --------------------------------------------------------------------


def test_cwl_inputs_are_the_cli_options():
    doc = cwl()
    assert (doc["cwlVersion"], doc["class"]) == ("v1.2", "CommandLineTool")
    inputs = doc["inputs"]
    assert list(inputs) == [o.name for o in INPUTS if o.name != "outDir"] + ["outDir"]
    assert sorted(inputs) == sorted(o.name for o in cli.OPTIONS)
    for opt in cli.OPTIONS:
        item = inputs[opt.name]
        assert item["inputBinding"] == {"prefix": opt.flag}, opt.name
        if opt.choices:
            null, enum = item["type"]
            assert null == "null" and enum["type"] == "enum", opt.name
            assert enum["symbols"] == list(opt.choices), opt.name
        else:
            suffix = "" if opt.required else "?"
            assert item["type"] == CWL_TYPES[opt.type] + suffix, opt.name


def test_cwl_output_directory_is_the_staged_out_dir():
    doc = cwl()
    assert doc["outputs"] == {
        "outDir": {"type": "Directory",
                   "outputBinding": {"glob": "$(inputs.outDir.basename)"}},
    }
    listing = doc["requirements"]["InitialWorkDirRequirement"]["listing"]
    assert listing == [{"entry": "$(inputs.outDir)", "writable": True}]


def test_cwl_adds_the_command_only_outside_the_container():
    """In the image the ENTRYPOINT is the command; without a container the first argument is."""
    doc = cwl()
    docker = doc["hints"]["DockerRequirement"]
    assert "DockerRequirement" not in doc["requirements"]  # --no-container refuses it there
    (argument,) = doc["arguments"]
    assert argument["position"] < 0
    expr = argument["valueFrom"]
    match = re.fullmatch(
        r'\$\{ return runtime\.outdir == "([^"]+)" \? \[\] : (\[[^]]*\]); \}', expr.strip())
    assert match, expr
    assert match.group(1) == docker["dockerOutputDirectory"]
    assert json.loads(match.group(2)) == entrypoint()


# --- Dockerfile, .dockerignore, build-docker.sh --------------------------------------------


def test_dockerfile_final_stage():
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = " ".join(rest for word, rest in stage if word == "RUN")
    assert "apt-get install -y --no-install-recommends openjdk-17-jre-headless" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    users = [rest for word, rest in stage if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "numeric non-root USER"
    assert [json.loads(rest) for word, rest in stage if word == "CMD"] == [["--help"]]
    labels = " ".join(rest for word, rest in stage if word == "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_dockerfile_bakes_the_jar_with_the_documented_command():
    steps = dockerfile()
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    match = re.search(r"omeio-fetch-jar --dest (\S+)", runs)
    assert match
    assert final_env()["BIOFORMATS_JAR"] == f"{match.group(1)}/{jar.JAR_NAME}"
    assert ("COPY", f"--from=build {match.group(1)} {match.group(1)}") in final_stage()
    installs = [m.strip() for m in re.findall(r"pip install ([^&]+)", runs)]
    assert installs == ["/src"], "one non-editable install of the project, no extras"


def test_dockerfile_environment():
    env = final_env()
    defaults = {o.env: o.default for o in cli.OPTIONS if o.env and o.default is not None}
    assert env["POLUS_IMG_EXT"] == defaults["POLUS_IMG_EXT"] == ".ome.tif"
    assert env["POLUS_LOG"] in cli.LOG_LEVELS
    # the JVM and omeio write caches under /tmp, never under a read-only or missing HOME
    assert env["OMEIO_CACHE_DIR"].startswith("/tmp/")
    assert env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerignore_lets_in_only_the_package_sources():
    lines = [s for s in (ROOT / ".dockerignore").read_text().splitlines()
             if s and not s.startswith("#")]
    assert lines[0] == "*"
    allowed = {s[1:].rstrip("/") for s in lines if s.startswith("!")}
    assert {"pyproject.toml", "VERSION", "src"} <= allowed
    assert not allowed & {"tests", ".venv", ".git", "bench", "scripts"}


def _fake_docker(folder: Path) -> Path:
    """A ``docker`` that records its arguments, one per line."""
    folder.mkdir()
    log = folder / "docker.args"
    script = folder / "docker"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def _run_build(root: Path, fake: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(root / "build-docker.sh"), "--no-cache"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_build_script_tags_the_version(tmp_path):
    log = _fake_docker(tmp_path / "bin")
    done = _run_build(ROOT, tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    args = log.read_text().splitlines()
    tag = f"{build_script_image()}:{VERSION}"
    assert args == ["build", "--build-arg", f"VERSION={VERSION}", "--tag", tag, "--no-cache", "."]


def test_build_script_refuses_manifests_of_another_version(tmp_path):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("build-docker.sh", *MANIFESTS):
        shutil.copy(ROOT / name, copy / name)
    (copy / "VERSION").write_text("9.9.9\n")
    log = _fake_docker(tmp_path / "bin")
    done = _run_build(copy, tmp_path / "bin")
    assert done.returncode == 1
    assert "plugin.json does not name polusai/ome-converter-plugin:9.9.9" in done.stderr
    assert not log.exists()


def test_help_runs_as_the_image_entrypoint_would():
    command = entrypoint()
    assert command[0] == "python3"
    done = subprocess.run([sys.executable, *command[1:], "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for opt in cli.OPTIONS:
        assert opt.flag in done.stdout
