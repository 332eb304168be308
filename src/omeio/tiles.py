"""Tile geometry shared by readers and writers, and the assembler that lets writes come in any order.

A writer hands every write to :class:`TileAssembler`; it copies the pixels into the tiles they
touch and passes each tile on the moment its last pixel arrives. Only tiles that are not yet
complete are held, so memory is bounded by the writes in flight, not by the image.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .indexing import Region

TILE = 1024

#: ``emit(z, c, t, ty, tx, tile)``: ``tile`` is a full ``tile_size`` square, zero-padded at edges
EmitTile = Callable[[int, int, int, int, int, np.ndarray], None]


def tile_grid(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    """Number of tile rows and columns covering an image."""
    return max(1, math.ceil(height / tile)), max(1, math.ceil(width / tile))


def tiles_touched(y0: int, y1: int, x0: int, x1: int, tile: int = TILE) -> Iterator[tuple[int, int]]:
    """``(ty, tx)`` of every tile the box ``[y0, y1) x [x0, x1)`` touches."""
    if y1 <= y0 or x1 <= x0:
        return
    for ty in range(y0 // tile, (y1 - 1) // tile + 1):
        for tx in range(x0 // tile, (x1 - 1) // tile + 1):
            yield ty, tx


def frozen(tile: np.ndarray) -> bool:
    """A tile nobody will write to again: read-only, owning its C-ordered memory. The
    assembler hands out only such tiles, so writers may keep them without a copy."""
    return tile.base is None and tile.flags.c_contiguous and not tile.flags.writeable


def _freeze(tile: np.ndarray) -> np.ndarray:
    tile.flags.writeable = False
    return tile


@dataclass
class _Pending:
    data: np.ndarray
    mask: np.ndarray | None
    filled: int = 0


@dataclass
class TileAssembler:
    """Collect writes of any shape and order into complete, zero-padded tiles."""

    shape: tuple[int, int, int, int, int]
    dtype: np.dtype
    emit: EmitTile
    tile: int = TILE
    _pending: dict[tuple[int, int, int, int, int], _Pending] = field(default_factory=dict)
    _done: set[tuple[int, int, int, int, int]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _valid(self, ty: int, tx: int) -> tuple[int, int]:
        """Rows and columns of a tile that lie inside the image."""
        height, width = self.shape[0], self.shape[1]
        return min(self.tile, height - ty * self.tile), min(self.tile, width - tx * self.tile)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def completed(self) -> int:
        return len(self._done)

    @property
    def total(self) -> int:
        ny, nx = tile_grid(self.shape[0], self.shape[1], self.tile)
        return ny * nx * self.shape[2] * self.shape[3] * self.shape[4]

    def write(self, region: Region, data: np.ndarray) -> None:
        """Place ``data`` (shape ``region.shape``) and emit every tile it completes."""
        y0, y1 = region.y.start, region.y.stop
        x0, x1 = region.x.start, region.x.stop
        n = self.tile
        # tiles this write completes: a finished array, or a (view, rows, cols) of the caller's
        # data copied only when its turn comes, so that a wide band is not copied all at once
        ready: list[tuple[tuple[int, int, int, int, int], object]] = []
        with self._lock:
            for iz, ic, it, z, c, t in region.planes():
                plane = data[:, :, iz, ic, it]
                for ty, tx in tiles_touched(y0, y1, x0, x1, n):
                    key = (z, c, t, ty, tx)
                    ty0, tx0 = ty * n, tx * n
                    vy, vx = self._valid(ty, tx)
                    # the part of this tile the write covers, in tile and in data coordinates
                    a0, a1 = max(y0, ty0) - ty0, min(y1, ty0 + vy) - ty0
                    b0, b1 = max(x0, tx0) - tx0, min(x1, tx0 + vx) - tx0
                    src = plane[a0 + ty0 - y0:a1 + ty0 - y0, b0 + tx0 - x0:b1 + tx0 - x0]
                    full = a0 == 0 and b0 == 0 and a1 == vy and b1 == vx
                    if key in self._done:
                        raise ValueError(
                            f"tile (z={z}, c={c}, t={t}, row={ty}, col={tx}) was already "
                            "written completely; rewriting pixels is not supported"
                        )
                    if full and key not in self._pending:
                        self._done.add(key)
                        ready.append((key, (src, vy, vx)))
                        continue
                    p = self._pending.get(key)
                    if p is None:
                        p = _Pending(np.zeros((n, n), self.dtype), np.zeros((n, n), bool))
                        self._pending[key] = p
                    p.data[a0:a1, b0:b1] = src
                    window = p.mask[a0:a1, b0:b1]
                    p.filled += int(window.size - np.count_nonzero(window))
                    window[...] = True
                    if p.filled == vy * vx:
                        del self._pending[key]
                        self._done.add(key)
                        ready.append((key, p.data))
        for (z, c, t, ty, tx), tile in ready:
            if isinstance(tile, tuple):
                src, vy, vx = tile
                if vy < n or vx < n:
                    tile = np.zeros((n, n), self.dtype)
                    tile[:vy, :vx] = src
                else:
                    tile = np.array(src, dtype=self.dtype, order="C")  # ours alone
            self.emit(z, c, t, ty, tx, _freeze(tile))

    def finish(self) -> int:
        """Emit every tile not yet complete (unwritten pixels stay zero); return how many."""
        ny, nx = tile_grid(self.shape[0], self.shape[1], self.tile)
        count = 0
        n = self.tile
        for t in range(self.shape[4]):
            for c in range(self.shape[3]):
                for z in range(self.shape[2]):
                    for ty in range(ny):
                        for tx in range(nx):
                            key = (z, c, t, ty, tx)
                            if key in self._done:
                                continue
                            p = self._pending.pop(key, None)
                            tile = p.data if p is not None else np.zeros((n, n), self.dtype)
                            self._done.add(key)
                            self.emit(z, c, t, ty, tx, _freeze(tile))
                            count += 1
        return count
