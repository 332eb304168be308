"""The JVM that Bio-Formats runs in: one per process, started on first use (or by :func:`start`).

Settings, read at the first start only (a JVM cannot be restarted or reconfigured):

- ``OMEIO_JAVA_HEAP``: maximum heap, e.g. ``2g`` (default: the JVM's own, a quarter of the
  memory the process may use);
- ``OMEIO_JAVA_OPTS``: more JVM options, split like a shell would;
- ``OMEIO_JAVA_LOG``: Bio-Formats' log level (default ``ERROR``: quiet);
- ``JAVA_HOME``: the Java runtime to use (else ``java`` on ``PATH``, else the usual places);
- ``OMEIO_JAVA_CDS``: the class-data-sharing archive (see :mod:`omeio.cds`; ``off`` disables).

The JVM runs with the C1 compiler only and the serial collector (:data:`SPEED_OPTIONS`,
:data:`SERIAL_GC`), both overridable in OMEIO_JAVA_OPTS.

Fork safety: a JVM does not survive ``fork()``. Its threads are not copied into the child,
so a forked child that calls into Java hangs or crashes. This module remembers the PID that
started the JVM, and every Bio-Formats entry point calls :func:`check_process`, which raises
:class:`~omeio.errors.JavaUnavailableError` (an ``OmeioError``) in a forked child instead.
Worker processes must start their own JVM: use the ``spawn`` or ``forkserver`` start method
of :mod:`multiprocessing` / :mod:`concurrent.futures`, or start Java only inside the workers
(never in the parent before forking). In a forked child, JPype is also told not to shut
down, at exit, the JVM the child never had.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import cds
from .errors import JavaUnavailableError
from .jar import find_jar

INSTALL_HINT = (
    "install a Java runtime (11 or newer; e.g. `apt-get install openjdk-17-jre-headless`) "
    "or set JAVA_HOME to one"
)
LOG_LEVELS = ("OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL")
_HEAP = re.compile(r"^\d+[kKmMgGtT]?$")
#: before OMEIO_JAVA_OPTS, which can override them (the last of two options wins). C1 only: a
#: conversion is short next to what C2 compilation costs, and on a few cores C2's compiler
#: threads took more CPU than they saved (2 s of 5 for sixteen 8 MiB files; 10 % slower Java
#: decoding over a 320 MiB LZW TIFF). ``-XX:TieredStopAtLevel=4`` brings C2 back.
SPEED_OPTIONS = ("-XX:TieredStopAtLevel=1",)
#: the serial collector, unless the options name another: Bio-Formats' garbage is short-lived
#: pixel buffers, and G1's extra threads cost 15 % more CPU for the same work (two JVMs never
#: count as one machine's worth of collectors either)
SERIAL_GC = "-XX:+UseSerialGC"
_GC_CHOICE = re.compile(r"^-XX:\+Use\w*GC$")


def _speed_options(user: Sequence[str]) -> list[str]:
    """:data:`SPEED_OPTIONS`, and :data:`SERIAL_GC` when ``user`` picks no collector (two
    would stop the JVM from starting)."""
    chosen = any(_GC_CHOICE.match(arg) for arg in user)
    return [*SPEED_OPTIONS, *([] if chosen else [SERIAL_GC])]
_JVM_LIBS = (
    "lib/server/libjvm.so",
    "jre/lib/server/libjvm.so",
    "jre/lib/amd64/server/libjvm.so",
    "lib/server/libjvm.dylib",
    "jre/lib/server/libjvm.dylib",
    "bin/server/jvm.dll",
    "jre/bin/server/jvm.dll",
)

_lock = threading.RLock()
#: PID of the process that started the JVM through this module
_pid: int | None = None
#: set in a forked child whose parent had a running JVM
_inherited = False


def _after_fork_in_child() -> None:
    global _inherited
    jpype = sys.modules.get("jpype")
    if jpype is not None and jpype.isJVMStarted():
        _inherited = True
        import jpype.config

        jpype.config.onexit = False  # the child has no JVM to shut down


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _forked() -> bool:
    return _inherited or (_pid is not None and _pid != os.getpid())


def check_process() -> None:
    """Raise JavaUnavailableError (an OmeioError) in a forked child of a process with a JVM."""
    if _forked():
        raise JavaUnavailableError(
            f"the Java VM (Bio-Formats) was started in process {_pid or 'the parent'} and this "
            f"process ({os.getpid()}) is a fork of it: a JVM does not survive fork(). Worker "
            "processes must start their own JVM: use the 'spawn' or 'forkserver' start method "
            "(multiprocessing.get_context('spawn')), or start Java only in the workers"
        )


def jvm_started() -> bool:
    """True when this process has a JVM with Bio-Formats it can use."""
    if _forked():
        return False
    jpype = sys.modules.get("jpype")
    return _pid is not None and jpype is not None and jpype.isJVMStarted()


def _lib_in(home: Path) -> Path | None:
    for rel in _JVM_LIBS:
        if (home / rel).is_file():
            return home / rel
    return None


def jvm_path() -> str:
    """The JVM library to load: from ``JAVA_HOME``, else from ``java`` on ``PATH``, else JPype's search."""
    home = os.environ.get("JAVA_HOME")
    if home:
        lib = _lib_in(Path(home).expanduser())
        if lib is None:
            raise JavaUnavailableError(
                f"JAVA_HOME={home} holds no Java VM library (libjvm); fix or unset JAVA_HOME, "
                f"or {INSTALL_HINT}"
            )
        return str(lib)
    java = shutil.which("java")
    if java:
        lib = _lib_in(Path(os.path.realpath(java)).parent.parent)
        if lib is not None:
            return str(lib)
    import jpype

    try:
        return jpype.getDefaultJVMPath()
    except jpype.JVMNotFoundException as exc:
        raise JavaUnavailableError(f"no Java runtime found: {INSTALL_HINT}") from exc


def _jvm_args(heap: str | None, options: Sequence[str]) -> list[str]:
    args = ["-Djava.awt.headless=true"]
    heap = heap or os.environ.get("OMEIO_JAVA_HEAP") or None
    if heap:
        if not _HEAP.match(heap):
            raise JavaUnavailableError(
                f"Java heap {heap!r} (argument or OMEIO_JAVA_HEAP) is not a size like 512m or 4g"
            )
        args.append(f"-Xmx{heap}")
    args += shlex.split(os.environ.get("OMEIO_JAVA_OPTS", ""))
    args += list(options)
    return args


def _log_level(level: str | None) -> str:
    level = (level or os.environ.get("OMEIO_JAVA_LOG") or "ERROR").upper()
    if level not in LOG_LEVELS:
        raise JavaUnavailableError(
            f"log level {level!r} (argument or OMEIO_JAVA_LOG) is not one of {', '.join(LOG_LEVELS)}"
        )
    return level


#: XML hardening for every parser Bio-Formats makes. The jar bundles Apache Xerces and names it
#: the JAXP provider, and that Xerces has neither the JDK's entity-expansion limits nor its
#: external-access controls: an OME-XML "billion laughs" ran for minutes and exhausted the heap,
#: and an external entity pulled a local file into the metadata. The JDK's own parsers stop
#: expansion at 64000 entities; an empty accessExternalDTD refuses every external DTD and
#: entity. Set as system properties unless already set (``-D`` in OMEIO_JAVA_OPTS wins).
XML_HARDENING = {
    "javax.xml.parsers.DocumentBuilderFactory":
        "com.sun.org.apache.xerces.internal.jaxp.DocumentBuilderFactoryImpl",
    "javax.xml.parsers.SAXParserFactory":
        "com.sun.org.apache.xerces.internal.jaxp.SAXParserFactoryImpl",
    "javax.xml.accessExternalDTD": "",
}


def _harden_xml() -> None:
    """Apply :data:`XML_HARDENING` before Bio-Formats creates any XML parser."""
    from jpype import JClass

    system = JClass("java.lang.System")
    for key, value in XML_HARDENING.items():
        if system.getProperty(key) is None:
            system.setProperty(key, value)


def start(
    heap: str | None = None, options: Sequence[str] = (), log_level: str | None = None
) -> None:
    """Start the JVM with Bio-Formats once per process; later calls return at once.

    ``heap`` (e.g. ``"4g"``) overrides ``OMEIO_JAVA_HEAP``, ``options`` (JVM arguments) come
    after ``OMEIO_JAVA_OPTS``, ``log_level`` overrides ``OMEIO_JAVA_LOG``; a JVM cannot be
    restarted, so they only matter at the first start.
    """
    global _pid
    check_process()
    if _pid is not None:  # started here: the common, lock-free path
        return
    with _lock:
        check_process()
        if _pid is not None:
            return
        import jpype

        level = _log_level(log_level)
        if jpype.isJVMStarted():
            _adopt()
        else:
            path = jvm_path()
            jar = find_jar()
            sharing, made = cds.options(path, jar)
            user = _jvm_args(heap, options)
            args = [*_speed_options(user), *sharing, *user]
            try:
                jpype.startJVM(*args, jvmpath=path, classpath=[str(jar)], convertStrings=False)
            except (OSError, RuntimeError, SystemError) as exc:
                raise JavaUnavailableError(
                    f"cannot start the Java VM {path} with {' '.join(args)}: {exc}; {INSTALL_HINT}"
                ) from exc
            if made is not None:
                made()
        from jpype import JClass

        _harden_xml()
        JClass("loci.common.DebugTools").setRootLevel(level)
        _pid = os.getpid()


def _adopt() -> None:
    """Use a JVM someone else started in this process, if Bio-Formats is on its classpath."""
    from jpype import JClass

    try:
        JClass("loci.formats.ImageReader")
    except Exception as exc:
        raise JavaUnavailableError(
            "a Java VM is already running in this process without Bio-Formats on its classpath; "
            "start it with bioformats_package.jar on the classpath, or let omeio start it"
        ) from exc
