"""Output names: the input's stem, then ``_c _t _z _s`` for the dimensions that vary.

Indices are NOT zero-padded (``img_c0``, ``img_c10``): the names stay those that earlier
versions of the plugin produced, and filepattern's ``{c:d+}`` matches them. ``_s`` carries
the series' index in the file (as Bio-Formats numbers it), so skipped thumbnail or label
series leave gaps rather than renumbering the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from .jobs import Output, SeriesInfo

#: extensions of more than one suffix that are removed whole, longest first
MULTI_PART = (".ome.tiff", ".ome.zarr", ".ome.tif", ".ome.tf2", ".ome.tf8", ".ome.btf",
              ".ome.xml", ".nii.gz")


def stem(name: str) -> str:
    """The input's name without its extension: a known multi-part one, else the last suffix."""
    lower = name.lower()
    for ext in MULTI_PART:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def plane_name(base: str, ext: str, c: int, t: int, z: int, s: int,
               sizes: tuple[int, int, int, int]) -> str:
    """``base`` + ``_c _t _z _s`` for each of (C, T, Z, series count) larger than 1 + ``ext``."""
    parts = [base]
    for letter, index, size in zip("ctzs", (c, t, z, s), sizes, strict=True):
        if size > 1:
            parts.append(f"_{letter}{index}")
    return "".join(parts) + ext


def outputs_for(input_name: str, series: Sequence[SeriesInfo], ext: str,
                layout: str) -> list[Output]:
    """Every output one input makes; ``series`` holds its image series only (ancillary ones
    are dropped before), so ``_s`` appears when more than one image series remains."""
    base = stem(input_name)
    n_series = len(series)
    out: list[Output] = []
    for info in series:
        if layout == "series":
            name = base + (f"_s{info.index}" if n_series > 1 else "") + ext
            out.append(Output(name, info.index, None, None, None, planes=info.planes))
            continue
        sizes = (info.size_c, info.size_t, info.size_z, n_series)
        for t in range(info.size_t):
            for c in range(info.size_c):
                for z in range(info.size_z):
                    name = plane_name(base, ext, c, t, z, info.index, sizes)
                    out.append(Output(name, info.index, z, c, t, planes=1))
    return out
