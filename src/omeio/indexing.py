"""Turning bfio-style arguments and numpy-style keys into one :class:`Region` of a 5-D image.

Every reader and writer goes through here, so ``br.read(X=..)``, ``br[..]``, ``bw.write(..)`` and
``bw[..] = ..`` agree on what a key means. Axes are bfio's: ``Y, X, Z, C, T``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AXES = "YXZCT"


@dataclass(frozen=True)
class Region:
    """A box in Y and X (half-open ranges, with a step) and index lists in Z, C and T."""

    y: range
    x: range
    z: tuple[int, ...]
    c: tuple[int, ...]
    t: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return len(self.y), len(self.x), len(self.z), len(self.c), len(self.t)

    @property
    def y_span(self) -> tuple[int, int]:
        """The contiguous rows a backend has to read to serve ``y`` (step applied afterwards)."""
        return _span(self.y)

    @property
    def x_span(self) -> tuple[int, int]:
        return _span(self.x)

    @property
    def stepped(self) -> bool:
        return self.y.step != 1 or self.x.step != 1

    def planes(self):
        """``(iz, ic, it, z, c, t)`` for every plane of the region: output and source indices."""
        for it, t in enumerate(self.t):
            for ic, c in enumerate(self.c):
                for iz, z in enumerate(self.z):
                    yield iz, ic, it, z, c, t


def _span(r: range) -> tuple[int, int]:
    if len(r) == 0:
        return r.start, r.start
    return r[0], r[-1] + 1


def _is_int(key) -> bool:
    return isinstance(key, numbers.Integral) and not isinstance(key, bool)


def _norm_int(value: int, size: int, axis: str) -> int:
    v = int(value)
    if v < 0:
        v += size
    if not 0 <= v < size:
        raise IndexError(f"index {value} is out of range for axis {axis} of size {size}")
    return v


def _axis_key(key, size: int, axis: str) -> range | tuple[int, ...]:
    """One axis of a numpy-style key: an int, a slice, or (Z, C, T) a list of ints."""
    if key is None or key is Ellipsis:
        r = range(size)
    elif _is_int(key) or (isinstance(key, np.integer)):
        v = _norm_int(key, size, axis)
        r = range(v, v + 1)
    elif isinstance(key, slice):
        r = range(*key.indices(size))
        if r.step < 0:
            raise IndexError(f"axis {axis}: negative steps are not supported")
    elif isinstance(key, (list, tuple, np.ndarray)) and axis in "ZCT":
        return tuple(_norm_int(v, size, axis) for v in key)
    else:
        raise IndexError(f"axis {axis}: cannot index with {key!r}")
    return r if axis in "YX" else tuple(r)


def region_from_key(shape: Sequence[int], key) -> Region:
    """Parse ``br[key]``: up to five keys in Y, X, Z, C, T order; ``...`` may stand first or last."""
    if not isinstance(key, tuple):
        key = (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if key and key[0] is Ellipsis and len(key) > 1:
        key = (slice(None),) * (6 - len(key)) + key[1:]
    key = tuple(slice(None) if k is Ellipsis else k for k in key)
    if len(key) > 5:
        raise IndexError(f"too many indices: {len(key)} given, the image has 5 axes (Y, X, Z, C, T)")
    key = key + (slice(None),) * (5 - len(key))
    parts = [_axis_key(k, size, axis) for k, size, axis in zip(key, shape, AXES)]
    return Region(*parts)


def _range_arg(value, size: int, axis: str) -> range:
    """bfio ``read(X=(start, stop))``: a pair, a single int, or None for the whole axis."""
    if value is None:
        return range(size)
    if _is_int(value) or isinstance(value, np.integer):
        v = _norm_int(value, size, axis)
        return range(v, v + 1)
    if isinstance(value, slice):
        return range(*value.indices(size))
    vals = list(value)
    if len(vals) != 2:
        raise ValueError(f"{axis} must be (start, stop), got {value!r}")
    start, stop = int(vals[0]), int(vals[1])
    if not 0 <= start <= stop <= size:
        raise IndexError(f"{axis}=({start}, {stop}) is outside 0..{size}")
    return range(start, stop)


def _list_arg(value, size: int, axis: str) -> tuple[int, ...]:
    if value is None:
        return tuple(range(size))
    if _is_int(value) or isinstance(value, np.integer):
        return (_norm_int(value, size, axis),)
    if isinstance(value, slice):
        return tuple(range(*value.indices(size)))
    return tuple(_norm_int(v, size, axis) for v in value)


def region_from_args(shape: Sequence[int], X=None, Y=None, Z=None, C=None, T=None) -> Region:
    """Parse bfio's ``read(X=, Y=, Z=, C=, T=)``: X, Y and Z as ``(start, stop)``; C, T as lists."""
    sy, sx, sz, sc, st = shape
    y = _range_arg(Y, sy, "Y")
    x = _range_arg(X, sx, "X")
    z = tuple(_range_arg(Z, sz, "Z")) if not isinstance(Z, (list, tuple)) or len(Z) == 2 else None
    if z is None:
        z = _list_arg(Z, sz, "Z")
    return Region(y, x, z, _list_arg(C, sc, "C"), _list_arg(T, st, "T"))


def _start_arg(value, axis: str) -> int:
    """bfio ``write(X=...)``: where the data starts, as an int or ``(start, stop)``."""
    if value is None:
        return 0
    if _is_int(value) or isinstance(value, np.integer):
        return int(value)
    vals = list(value)
    return int(vals[0])


def region_for_write(shape: Sequence[int], data_shape: Sequence[int], X=None, Y=None, Z=None,
                     C=None, T=None) -> Region:
    """Where ``write(image, X=, Y=, Z=, C=, T=)`` puts ``image``: starts in Y/X/Z, lists in C/T."""
    sy, sx, sz, sc, st = shape
    dy, dx, dz, dc, dt = data_shape
    y0, x0, z0 = _start_arg(Y, "Y"), _start_arg(X, "X"), _start_arg(Z, "Z")
    c = tuple(range(dc)) if C is None else _list_arg(C, sc, "C")
    t = tuple(range(dt)) if T is None else _list_arg(T, st, "T")
    region = Region(range(y0, y0 + dy), range(x0, x0 + dx), tuple(range(z0, z0 + dz)), c, t)
    check_write_region(shape, region)
    return region


def check_write_region(shape: Sequence[int], region: Region) -> None:
    """A write must fall inside the image and be contiguous in Y and X."""
    if region.stepped:
        raise IndexError("writes must be contiguous in Y and X (no steps)")
    for axis, r, size in (("Y", region.y, shape[0]), ("X", region.x, shape[1])):
        if len(r) and (r.start < 0 or r[-1] >= size):
            raise IndexError(f"write spans {axis}={r.start}..{r.stop} outside the image (0..{size})")
    for axis, vals, size in (("Z", region.z, shape[2]), ("C", region.c, shape[3]),
                             ("T", region.t, shape[4])):
        for v in vals:
            if not 0 <= v < size:
                raise IndexError(f"write index {axis}={v} is outside the image (0..{size})")


def as_5d(array: np.ndarray) -> np.ndarray:
    """View a 2-to-5-D array as ``(Y, X, Z, C, T)`` by appending unit axes."""
    if not 2 <= array.ndim <= 5:
        raise ValueError(f"image data must have 2 to 5 dimensions (Y, X, Z, C, T), got {array.ndim}")
    return array.reshape(array.shape + (1,) * (5 - array.ndim))


def strip_trailing(array: np.ndarray) -> np.ndarray:
    """bfio's return shape: trailing unit axes removed, never fewer than two dimensions."""
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    return array
