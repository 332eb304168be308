"""A class-data-sharing (AppCDS) archive of the classes Bio-Formats loads, made once, mapped after.

Starting Bio-Formats costs more than starting the JVM: thousands of classes are read from the
jar, verified and linked (``ImageReader()`` alone instantiates every format reader). A JDK 11+
"dynamic archive" keeps them ready to map: every process that finds one starts with
``-XX:SharedArchiveFile``. It roughly halves the time to the first pixel of the first file.

The archive is made by one dedicated process, ``python -m omeio.cds`` (the setup script and the
Dockerfile run it): it starts Java with ``-XX:ArchiveClassesAtExit``, exercises what every
Bio-Formats open needs, and at exit the JVM writes the classes it loaded. Ordinary processes
never make one: calling into Java while a long-lived process exits (a test session, a worker
full of native libraries) is where JVMs crash, and one segfault at exit is worse than a slower
start. The archive is written under a temporary name and renamed, with its size in the name,
once the JVM has shut down: a truncated archive would crash the JVM that maps it, so one whose
size is not the one in its name is never used. It lives in ``<cache>/cds`` or next to the jar
(``<jar's folder>/cds``) and is keyed by the JVM library, the jar and JPype (their paths, sizes
and times), so that any change asks for a new one; the JVM checks the rest itself and silently
ignores an archive that does not fit.

``OMEIO_JAVA_CDS``: ``off`` (or ``0``) disables it; a path uses that archive file as is.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from .jar import cache_dir

ENV = "OMEIO_JAVA_CDS"
#: set by ``python -m omeio.cds``: the folder this process makes an archive in
_make_into: Path | None = None
_OFF = ("0", "off", "false", "no")
#: CDS warnings (classes it cannot archive, an archive that does not fit) would go to stdout
QUIET = "-Xlog:cds*=off"
_NAME = re.compile(r"^(?P<key>[0-9a-f]{20})-(?P<size>\d+)\.jsa$")


def folder() -> Path:
    return cache_dir() / "cds"


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def key(jvm: str | Path, jar: str | Path) -> str:
    """What the archive depends on: the JVM, the jar and JPype's own jar on the class path."""
    import jpype

    parts = [_stamp(Path(jvm)), _stamp(Path(jar)), jpype.__version__,
             _stamp(Path(jpype.__file__).parent)]
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:20]


def find(k: str, where: Path | None = None) -> Path | None:
    """The complete archive of key ``k`` (its size is the one in its name), if any."""
    where = folder() if where is None else where
    try:
        names = os.listdir(where)
    except OSError:
        return None
    for name in sorted(names, reverse=True):
        m = _NAME.match(name)
        if not m or m.group("key") != k:
            continue
        path = where / name
        try:
            if path.stat().st_size == int(m.group("size")):
                return path
        except OSError:
            continue
    return None


def _writable(where: Path) -> bool:
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(where, os.W_OK | os.X_OK)


def options(jvm: str | Path, jar: str | Path) -> tuple[list[str], Callable[[], None] | None]:
    """JVM options for the archive, and what to call once the JVM is up when it makes one."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in _OFF:
        return [], None
    if setting and setting.lower() not in ("1", "on", "auto"):
        return ([QUIET, f"-XX:SharedArchiveFile={setting}"] if Path(setting).is_file()
                else []), None
    try:
        k = key(jvm, jar)
    except Exception:  # pragma: no cover - JPype not importable: no archive, no harm
        return [], None
    if _make_into is None:
        found = find(k) or find(k, Path(jar).parent / "cds")
        if found is not None:
            return [QUIET, f"-XX:SharedArchiveFile={found}"], None
        return [], None  # none yet: only ``python -m omeio.cds`` makes one
    where = _make_into
    if not _writable(where):
        return [], None
    _sweep(where)
    partial = where / f".{k}.{os.getpid()}.jsa.partial"
    return ([QUIET, f"-XX:ArchiveClassesAtExit={partial}"],
            lambda: atexit.register(_keep, partial, k, os.getpid()))


def _sweep(where: Path, age: float = 3600.0) -> None:
    """Remove temporaries that processes killed before their exit left behind."""
    import time

    now = time.time()
    for path in where.glob(".*.jsa.partial"):
        try:
            if now - path.stat().st_mtime > age:
                path.unlink()
        except OSError:
            pass


def _exercise() -> None:
    """Load what every Bio-Formats open needs (metadata store, OME-XML, memo files), so that
    the archive holds it whatever this process happened to read."""
    import tempfile

    from jpype import JClass

    with tempfile.TemporaryDirectory(prefix="omeio-cds-") as tmp:
        image = Path(tmp) / "cds&sizeX=64&sizeY=32&sizeC=3&pixelType=uint16.fake"
        image.touch()
        factory = JClass("loci.common.services.ServiceFactory")()
        service = factory.getInstance(JClass("loci.formats.services.OMEXMLService"))
        memoizer = JClass("loci.formats.Memoizer")
        for _ in range(2):  # the first saves a memo file, the second loads it
            store = service.createOMEXMLMetadata()
            reader = memoizer(JClass("loci.formats.ImageReader")(), 0, JClass("java.io.File")(tmp))
            reader.setFlattenedResolutions(False)
            reader.setMetadataStore(store)
            reader.setId(str(image))
            service.getOMEXML(store)
            reader.openBytes(0, 0, 0, 16, 16)
            reader.close()


def _keep(partial: Path, k: str, pid: int) -> None:
    """At exit: shut the JVM down (it writes the archive then) and give the archive its name.

    Registered after JPype's own exit hook, so it runs first; JPype's then finds no JVM.
    """
    if os.getpid() != pid:  # a forked child: the JVM is not ours
        return
    try:
        import jpype

        if jpype.isJVMStarted():
            _exercise()
            jpype.shutdownJVM()
    except Exception:
        pass
    try:
        size = partial.stat().st_size
        if size > 0:
            os.replace(partial, partial.parent / f"{k}-{size}.jsa")
            return
    except OSError:
        pass
    try:
        partial.unlink()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m omeio.cds [--dest DIR]``: make the archive now (a JVM starts and exits)."""
    import argparse

    from omeio import cds, java  # the package's module, not this __main__ copy
    from omeio.jar import find_jar

    parser = argparse.ArgumentParser(prog="python -m omeio.cds", description=main.__doc__)
    parser.add_argument("--dest", help="folder for the archive (default: <jar's folder>/cds)")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when a usable archive is already there")
    args = parser.parse_args(argv)
    jar = find_jar()
    dest = Path(args.dest) if args.dest else jar.parent / "cds"
    if args.if_missing:
        k = key(java.jvm_path(), jar)
        found = find(k, dest) or find(k)
        if found is not None:
            print(f"omeio.cds: {found} is up to date")
            return 0
    cds._make_into = dest
    os.environ.pop(ENV, None)  # this process makes the archive, whatever the setting
    java.start()
    print(f"omeio.cds: the archive goes to {cds._make_into} as this process exits")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
