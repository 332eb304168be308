"""Does an output folder hold exactly the input folder's pixels? Judged by content alone.

    python bench/verify.py IN OUT

Every input and output is decoded into 2-D planes (RGB samples are separate planes) and each
plane is reduced to sha256(dtype, shape, bytes). Pass = the two multisets are equal and not
empty: every input plane appears bit-exactly, and nothing else does. Plane order, file names
and layout (one file per plane, multi-plane files, Zarr stores) are free. When ``IN_ref/``
exists next to ``IN/`` (w4: ICS inputs) its planes are the expectation.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import planes
from make_workloads import ref_folder


def digests(folder: Path) -> tuple[Counter, list[str]]:
    """Plane digests of every item in ``folder`` and the items that could not be decoded."""
    found: Counter = Counter()
    errors = []
    for item in planes.image_items(folder):
        if item.name.startswith("."):
            errors.append(f"{item.name}: hidden leftover (an unfinished write?)")
            continue
        try:
            found.update(planes.plane_digest(p) for p in planes.planes(item))
        except Exception as exc:  # any decoding failure fails the check, with its reason
            errors.append(f"{item.relative_to(folder)}: {type(exc).__name__}: {exc}")
    return found, errors


def verify(inputs: Path, outputs: Path) -> dict:
    """``{"pass": bool, "expected": n, "found": n, "missing": n, "unexpected": n, "errors": [...]}``."""
    ref = ref_folder(inputs)
    want, in_errors = digests(ref if ref.is_dir() else inputs)
    got, out_errors = digests(outputs)
    missing = sum((want - got).values())
    unexpected = sum((got - want).values())
    errors = [f"input {e}" for e in in_errors] + out_errors
    ok = not errors and not missing and not unexpected and sum(want.values()) > 0
    return {"pass": ok, "expected": sum(want.values()), "found": sum(got.values()),
            "missing": missing, "unexpected": unexpected, "errors": errors[:20]}


def summary(result: dict) -> str:
    if result["pass"]:
        return "pass"
    parts = [f"{result['missing']}/{result['expected']} planes missing"]
    if result["unexpected"]:
        parts.append(f"{result['unexpected']} unexpected")
    if result["errors"]:
        parts.append(result["errors"][0])
    return "FAIL: " + "; ".join(parts)


if __name__ == "__main__":
    res = verify(Path(sys.argv[1]), Path(sys.argv[2]))
    print(summary(res))
    for err in res["errors"]:
        print("  " + err)
    sys.exit(0 if res["pass"] else 1)
