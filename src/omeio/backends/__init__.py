"""Backend registry: which backend reads a file (by content) and which writes a path (by name).

Backends are imported lazily so that reading a TIFF never imports JPype, and a process that
only writes never starts Java.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import CorruptFileError, JavaUnavailableError, UnreadableFileError
from .base import ReaderBackend, WriterBackend

READERS = {
    "tiff": "omeio.backends.tiff_reader:TiffReader",
    "zarr": "omeio.backends.zarr_reader:ZarrReader",
    "codecs": "omeio.backends.codec_reader:CodecReader",
    "bioformats": "omeio.backends.bioformats_reader:BioformatsReader",
}
WRITERS = {
    "tiff": "omeio.backends.tiff_writer:TiffWriter",
    "zarr": "omeio.backends.zarr_writer:ZarrWriter",
}
#: output extensions and the writer that makes them
WRITER_EXTENSIONS = {
    ".ome.tif": "tiff", ".ome.tiff": "tiff", ".tif": "tiff", ".tiff": "tiff",
    ".ome.zarr": "zarr", ".zarr": "zarr",
}

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")
#: PNG and JPEG: decoded natively (no JVM), Bio-Formats for the variants the codecs decline
_CODEC_MAGIC = (b"\x89PNG", b"\xff\xd8\xff")


def _load(table: dict[str, str], name: str):
    try:
        spec = table[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(table)}") from None
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)


def reader_class(name: str) -> type[ReaderBackend]:
    return _load(READERS, name)


def writer_class(name: str) -> type[WriterBackend]:
    return _load(WRITERS, name)


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _ZARR_MARKERS)


def sniff(path: Path) -> list[str]:
    """Reader backends to try for ``path``, best first, judged by content."""
    if not path.exists():
        if path.is_symlink():
            raise UnreadableFileError(path, f"broken symbolic link to {os.readlink(path)}")
        raise UnreadableFileError(path, "no such file or directory")
    if path.is_dir():
        if is_zarr(path):
            return ["zarr"]
        raise UnreadableFileError(path, "a directory that is not a Zarr store")
    if not path.is_file():  # opening a FIFO would block for ever
        raise UnreadableFileError(path, "not a regular file (a FIFO, socket or device)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot open: {exc.strerror or exc}") from exc
    if not head:
        if path.suffix.lower() == ".fake":  # Bio-Formats makes the image from the name alone
            return ["bioformats"]
        raise UnreadableFileError(path, "empty file (0 bytes)")
    if head in _TIFF_MAGIC:
        return ["tiff", "bioformats"]
    if head.startswith(_CODEC_MAGIC):
        return ["codecs", "bioformats"]
    return ["bioformats"]


def open_reader(
    path: Path, backend: str | None, series: int, level: int, max_workers: int | None
) -> ReaderBackend:
    """Open ``path`` with the named backend, or with the first backend that takes it."""
    path = Path(path)
    if backend is not None:
        names = [backend.lower()]
        if names[0] not in READERS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(READERS)}")
        if not path.exists():
            raise UnreadableFileError(path, "no such file or directory")
    else:
        names = sniff(path)
    errors: list[UnreadableFileError] = []
    for name in names:
        try:
            reader = reader_class(name)(path, series=series, level=level, max_workers=max_workers)
            if min(reader.shape) < 1:  # a header of zero width, height or planes
                reader.close()
                raise UnreadableFileError(path, f"the image holds no pixels: its size is "
                                          f"{reader.shape} (Y, X, Z, C, T)")
            return reader
        except (IndexError, CorruptFileError):
            raise  # a series the file lacks, or a broken file: not a reason to try elsewhere
        except JavaUnavailableError:
            if not errors:
                raise
            break  # the TIFF backend's reason is the one that matters
        except UnreadableFileError as exc:
            errors.append(exc)
        except Exception as exc:  # a library's own exception on a bad file
            errors.append(UnreadableFileError(path, f"{type(exc).__name__}: {exc}"))
    if len(errors) > 1:
        reasons = "; ".join(f"{n}: {e.reason}" for n, e in zip(names, errors))
        raise UnreadableFileError(path, reasons)
    raise errors[0]


def writer_for(path: Path, backend: str | None) -> type[WriterBackend]:
    """The writer for ``path``: the named backend, else the one its extension calls for."""
    if backend is not None:
        return writer_class(backend.lower())
    name = Path(path).name.lower()
    for ext in sorted(WRITER_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return writer_class(WRITER_EXTENSIONS[ext])
    raise ValueError(
        f"{path}: cannot tell the output format from the name; use one of "
        f"{', '.join(WRITER_EXTENSIONS)} or pass backend='tiff' / 'zarr'"
    )
