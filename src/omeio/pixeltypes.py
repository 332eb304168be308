"""The pixel types omeio reads and writes exactly, and their OME names."""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedPixelTypeError

#: numpy dtype -> OME ``Pixels/@Type``; the only types written (round-trip exact in both formats)
OME_TYPES: dict[np.dtype, str] = {
    np.dtype("uint8"): "uint8",
    np.dtype("int8"): "int8",
    np.dtype("uint16"): "uint16",
    np.dtype("int16"): "int16",
    np.dtype("uint32"): "uint32",
    np.dtype("int32"): "int32",
    np.dtype("float32"): "float",
    np.dtype("float64"): "double",
}

#: OME ``Pixels/@Type`` -> numpy dtype (``bit`` is read as uint8)
NUMPY_TYPES: dict[str, np.dtype] = {v: k for k, v in OME_TYPES.items()}
NUMPY_TYPES["bit"] = np.dtype("uint8")

SUPPORTED = ", ".join(str(d) for d in OME_TYPES)


def check_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as a native-order numpy dtype, or raise a TypeError that lists what works."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedPixelTypeError(
            f"pixel type {dtype!r} is not supported; supported: {SUPPORTED}"
        ) from exc
    native = dt.newbyteorder("=")
    if native not in OME_TYPES:
        raise UnsupportedPixelTypeError(
            f"pixel type {dt} is not supported; supported: {SUPPORTED}"
        )
    return native


def ome_type(dtype) -> str:
    """OME ``Type`` name of a supported dtype."""
    return OME_TYPES[check_dtype(dtype)]


def numpy_type(ome_name: str) -> np.dtype:
    """numpy dtype of an OME ``Type`` name (``float``, ``uint16``...)."""
    try:
        return NUMPY_TYPES[ome_name]
    except KeyError as exc:
        raise UnsupportedPixelTypeError(
            f"OME pixel type {ome_name!r} is not supported; supported: {', '.join(NUMPY_TYPES)}"
        ) from exc
