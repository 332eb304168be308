"""omeio: read any microscopy image, write 1024x1024-tiled OME-TIFF and OME-Zarr.

A bfio-style API (``BioReader`` / ``BioWriter``, 5-D ``Y, X, Z, C, T`` views) over three
backends: tifffile, zarr-python and Bio-Formats (through JPype).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    JavaUnavailableError,
    OmeioError,
    ReadOnlyError,
    UnreadableFileError,
    UnsupportedPixelTypeError,
)
from .metadata import OmeMetadata
from .pixeltypes import OME_TYPES
from .reader import BioReader
from .writer import BioWriter

try:
    __version__ = version("ome-converter-plugin")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"


def start(**options) -> None:
    """Start the JVM with Bio-Formats now (it otherwise starts at the first Bio-Formats read)."""
    from .java import start as _start

    _start(**options)


__all__ = [
    "BioReader",
    "BioWriter",
    "OmeMetadata",
    "OME_TYPES",
    "OmeioError",
    "UnreadableFileError",
    "UnsupportedPixelTypeError",
    "ReadOnlyError",
    "JavaUnavailableError",
    "start",
    "__version__",
]
