"""The class-data-sharing archive: made by ``python -m omeio.cds``, mapped by every later JVM,
never made at the exit of an ordinary process, never used when incomplete, off on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from omeio import cds
from omeio.jar import find_jar

KEY = "0123456789abcdef0123"

_READ_FAKE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from omeio import BioReader
    from jpype import JClass
    path = Path(sys.argv[1]) / "img&sizeX=70&sizeY=50&sizeC=2&pixelType=uint16.fake"
    path.touch()
    with BioReader(path, backend="bioformats") as br:
        data = br[:]
    bean = JClass("java.lang.management.ManagementFactory").getRuntimeMXBean()
    args = [str(a) for a in bean.getInputArguments()]
    print(json.dumps({"shape": list(data.shape), "row": data[20, :12, 0, 1].tolist(),
                      "args": [a for a in args if "Archive" in a or "Tiered" in a or "GC" in a]}))
""")


def _run(tmp_path, env_changes):
    env = dict(os.environ, BIOFORMATS_JAR=str(find_jar()),
               OMEIO_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("OMEIO_JAVA_OPTS", None)
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", _READ_FAKE, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def _own_jar(tmp_path) -> str:
    """A copy of the jar in its own folder, so that no archive is found next to it."""
    import shutil

    jar = tmp_path / "jar" / "bioformats_package.jar"
    jar.parent.mkdir()
    shutil.copy2(find_jar(), jar)
    return str(jar)


def _make(tmp_path, jar: str, *extra: str):
    env = dict(os.environ, BIOFORMATS_JAR=jar, OMEIO_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("OMEIO_JAVA_OPTS", None)
    env.pop(cds.ENV, None)
    return subprocess.run([sys.executable, "-m", "omeio.cds", *extra], env=env,
                          capture_output=True, text=True, timeout=180)


def test_ordinary_processes_never_make_one_the_command_does_and_the_next_maps_it(tmp_path):
    own = {"BIOFORMATS_JAR": _own_jar(tmp_path)}
    first, done = _run(tmp_path, own)
    assert "Pre JDK 6" not in done.stdout + done.stderr  # CDS warnings stay quiet
    assert first["shape"] == [50, 70, 1, 2]
    assert first["row"] == list(range(12))  # the fake reader's gradient
    assert not [a for a in first["args"] if "Archive" in a]
    assert "-XX:TieredStopAtLevel=1" in first["args"] and "-XX:+UseSerialGC" in first["args"]
    jar_cds = tmp_path / "jar" / "cds"
    assert not (tmp_path / "cache" / "cds").exists() and not jar_cds.exists()

    made = _make(tmp_path, own["BIOFORMATS_JAR"])
    assert made.returncode == 0, made.stderr
    archives = list(jar_cds.iterdir())
    assert len(archives) == 1 and archives[0].name.endswith(".jsa")  # no partial left
    assert archives[0].name.split("-")[1] == f"{archives[0].stat().st_size}.jsa"
    assert archives[0].stat().st_size > 1 << 20
    again = _make(tmp_path, own["BIOFORMATS_JAR"], "--if-missing")
    assert again.returncode == 0 and "up to date" in again.stdout
    assert list(jar_cds.iterdir()) == archives

    second, _ = _run(tmp_path, own)
    assert f"-XX:SharedArchiveFile={archives[0]}" in second["args"]
    assert not [a for a in second["args"] if a.startswith("-XX:ArchiveClassesAtExit")]
    assert second["shape"] == first["shape"] and second["row"] == first["row"]

    off, _ = _run(tmp_path, {**own, "OMEIO_JAVA_CDS": "off",
                             "OMEIO_JAVA_OPTS": "-XX:TieredStopAtLevel=4 -XX:+UseG1GC"})
    assert not [a for a in off["args"] if "Archive" in a]
    # the user's options come last (the last of two wins) and a collector of theirs replaces
    # the serial one (two would stop the JVM from starting)
    assert off["args"][-2:] == ["-XX:TieredStopAtLevel=4", "-XX:+UseG1GC"]
    assert "-XX:+UseSerialGC" not in off["args"]
    assert off["row"] == first["row"]


def test_an_archive_whose_size_is_not_its_name_is_never_used(tmp_path):
    (tmp_path / f"{KEY}-100.jsa").write_bytes(b"x" * 60)  # truncated
    assert cds.find(KEY, tmp_path) is None
    (tmp_path / f"{KEY}-50.jsa").write_bytes(b"x" * 50)
    assert cds.find(KEY, tmp_path) == tmp_path / f"{KEY}-50.jsa"
    assert cds.find("f" * 20, tmp_path) is None
    assert cds.find(KEY, tmp_path / "missing") is None


def test_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "cache"))
    jar, jvm = tmp_path / "x.jar", tmp_path / "libjvm.so"
    jar.write_bytes(b"jar")
    jvm.write_bytes(b"jvm")
    monkeypatch.setenv(cds.ENV, "off")
    assert cds.options(jvm, jar) == ([], None)
    archive = tmp_path / "given.jsa"
    monkeypatch.setenv(cds.ENV, str(archive))
    assert cds.options(jvm, jar) == ([], None)  # not there: nothing
    archive.write_bytes(b"a")
    assert cds.options(jvm, jar) == ([cds.QUIET, f"-XX:SharedArchiveFile={archive}"], None)
    monkeypatch.delenv(cds.ENV)
    assert cds.options(jvm, jar) == ([], None)  # no archive yet: none is made here
    key = cds.key(jvm, jar)
    (tmp_path / "cache" / "cds").mkdir(parents=True)
    (tmp_path / "cache" / "cds" / f"{key}-1.jsa").write_bytes(b"1")
    found = tmp_path / "cache" / "cds" / f"{key}-1.jsa"
    assert cds.options(jvm, jar) == ([cds.QUIET, f"-XX:SharedArchiveFile={found}"], None)
    jar.write_bytes(b"another jar")  # any change of the jar asks for another archive
    assert cds.key(jvm, jar) != key
    assert cds.options(jvm, jar) == ([], None)  # not this jar's archive


def test_made_beforehand_next_to_the_jar(tmp_path):
    """What a container image does at build time: every later run, with an empty cache, maps
    the archive next to the jar and makes none of its own."""
    import shutil

    jar = tmp_path / "opt" / "bioformats_package.jar"
    jar.parent.mkdir()
    shutil.copy2(find_jar(), jar)
    env = dict(os.environ, BIOFORMATS_JAR=str(jar), OMEIO_CACHE_DIR=str(tmp_path / "build"))
    env.pop("OMEIO_JAVA_OPTS", None)
    env.pop(cds.ENV, None)
    made = subprocess.run([sys.executable, "-m", "omeio.cds"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert made.returncode == 0, made.stderr
    archives = list((jar.parent / "cds").iterdir())
    assert len(archives) == 1 and cds.find(archives[0].name[:20], jar.parent / "cds")
    run, _ = _run(tmp_path, {"BIOFORMATS_JAR": str(jar)})
    assert f"-XX:SharedArchiveFile={archives[0]}" in run["args"]
    assert not (tmp_path / "cache" / "cds").exists() or \
        not list((tmp_path / "cache" / "cds").iterdir())
    assert run["row"] == list(range(12))
