"""Which entries of the input directory are inputs: files, and Zarr stores taken whole.

The directory is listed here (not by filepattern) so that a ``.zarr`` store counts as ONE
input and is never descended into; filepattern then only matches the names.
"""

from __future__ import annotations

import re
from pathlib import Path

#: files that mark a directory as a Zarr store (v3, then v2)
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")


def is_zarr_store(path: Path) -> bool:
    if not path.is_dir():
        return False
    return path.name.lower().endswith(".zarr") or any((path / m).exists() for m in ZARR_MARKERS)


def is_hidden(name: str) -> bool:
    """Hidden names, our own ``.NAME.partial`` temporaries among them, are never inputs."""
    return name.startswith(".") or name.endswith(".partial")


#: a name ending like a file format's extension (``.tif``, ``.nd2``, ``.ome.tiff``...)
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")


def is_unreadable_entry(path: Path) -> bool:
    """An entry that is named like an input but is not a file: a broken symbolic link, a
    FIFO, socket or device, or a directory named like an image file (``img.tif/``).

    These are inputs that fail (reading says why) rather than names silently left out; a
    plain sub-directory (``thumbnails/``) is not an input at all.
    """
    if path.is_dir():
        return bool(_EXTENSION.search(path.name))
    return not path.is_file()


def candidates(inp_dir: Path) -> list[str]:
    """Names of the files and Zarr stores directly in ``inp_dir``, and of entries named like
    inputs that cannot be read (see :func:`is_unreadable_entry`), sorted."""
    names = []
    for entry in inp_dir.iterdir():
        if is_hidden(entry.name):
            continue
        if entry.is_file() or is_zarr_store(entry) or is_unreadable_entry(entry):
            names.append(entry.name)
    return sorted(names)


def without_captures(pattern: str) -> str:
    """``pattern`` with regex capturing groups made non-capturing: ``(a|b)`` -> ``(?:a|b)``.

    filepattern 2.2 crashes the interpreter (SIGSEGV) when a plain regular-expression group
    captures a matching name; its own ``{var:d}`` variables are the captures it expects.
    Escapes, character classes and ``{...}`` variables are copied unchanged.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[":  # a class runs to the first "]" that is not its first member
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i:j + 1])
            i = j + 1
            continue
        if ch == "{":
            j = pattern.find("}", i)
            j = n - 1 if j < 0 else j
            out.append(pattern[i:j + 1])
            i = j + 1
            continue
        if ch == "(" and not pattern.startswith("?", i + 1):
            out.append("(?:")
        elif ch == "(" and pattern.startswith(("?P<", "?<"), i + 1) and not pattern.startswith(
                ("?<=", "?<!"), i + 1):
            j = pattern.find(">", i)  # a named group: its name goes, the group stays
            out.append("(?:")
            i = n if j < 0 else j + 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def matcher(names: list[str], pattern: str):
    """A filepattern over ``names`` (raises on a bad pattern, which the CLI turns into exit 2)."""
    import filepattern

    return filepattern.FilePattern(list(names), without_captures(pattern), suppress_warnings=True)


def select(names: list[str], pattern: str) -> list[str]:
    """The names that ``pattern`` (filepattern syntax or a plain regular expression) matches."""
    if not names:
        return []
    fp = matcher(names, pattern)
    # filepattern hands names back with each backslash turned into a slash ("a\\b.tif" comes
    # back as "a/b.tif"): map what it returns to the names given
    given = {n.replace("\\", "/"): n for n in names}
    chosen: set[str] = set()
    for _variables, files in fp():
        chosen.update(given.get(str(f), Path(str(f)).name) for f in files)
    return sorted(chosen)


def find_inputs(inp_dir: Path, pattern: str) -> list[Path]:
    """Inputs of the collection, sorted by name."""
    return [inp_dir / name for name in select(candidates(inp_dir), pattern)]
