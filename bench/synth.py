"""Synthetic fluorescence-like planes, made band by band so a 20000^2 plane never sits in memory.

Pure noise (deflate ~1x) or flat images (~100x) would measure codecs, not converters: this
content (an uneven illumination background, Gaussian "nuclei" and Poisson shot noise) gets
~1.8x with deflate level 1 on uint16 (~1.7x on the dimmer 8-bit look), as real widefield
images do. The nuclei are rendered at
1/4 resolution and upsampled bilinearly (cheap, smooth), the noise is drawn per band from a
seed made of the plane's key and the band's index, so every pixel is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SEED = 20251121
#: rows drawn per noise band: part of the content's definition, do not change
BAND = 512
SCALE = 4


@dataclass(frozen=True)
class Look:
    """Brightness of a plane: photon counts of the background and of the brightest nuclei."""

    background: float = 100.0
    peak: float = 1500.0
    spacing: float = 28.0  # mean distance between nuclei, low-resolution pixels
    dtype: str = "uint16"


LOOK_16 = Look()
LOOK_8 = Look(background=6.0, peak=150.0, dtype="uint8")


def _low_resolution(rng: np.random.Generator, h: int, w: int, look: Look) -> np.ndarray:
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    img = np.full((h, w), look.background, np.float32)
    for _ in range(3):  # slow illumination ripples
        fy, fx = rng.uniform(0.3, 1.5, 2)
        phase = rng.uniform(0.0, 2 * np.pi)
        img += np.float32(0.15 * look.background) * np.cos(
            np.float32(2 * np.pi) * (fy * yy + fx * xx) + np.float32(phase))
    n = int(h * w / look.spacing**2)
    cy, cx = rng.uniform(0, h, n), rng.uniform(0, w, n)
    sigma = rng.uniform(1.5, 3.5, n)
    amp = look.peak * rng.uniform(0.3, 1.0, n)
    for y, x, s, a in zip(cy, cx, sigma, amp, strict=True):
        r = int(3 * s) + 1
        y0, y1 = max(0, int(y) - r), min(h, int(y) + r + 1)
        x0, x1 = max(0, int(x) - r), min(w, int(x) + r + 1)
        gy = np.exp(-((np.arange(y0, y1) - y) ** 2) / (2 * s * s)).astype(np.float32)
        gx = np.exp(-((np.arange(x0, x1) - x) ** 2) / (2 * s * s)).astype(np.float32)
        img[y0:y1, x0:x1] += np.float32(a) * np.outer(gy, gx)
    return img


def _bilinear(n_full: int, n_low: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-resolution neighbours and weight of every full-resolution coordinate."""
    c = np.clip((np.arange(n_full) + 0.5) / SCALE - 0.5, 0, n_low - 1)
    i0 = np.floor(c).astype(np.intp)
    return i0, np.minimum(i0 + 1, n_low - 1), (c - i0).astype(np.float32)


class Plane:
    """One reproducible plane, identified by ``key`` (a tuple of small integers)."""

    def __init__(self, key: tuple[int, ...], height: int, width: int, look: Look = LOOK_16):
        self.key, self.height, self.width, self.look = tuple(key), height, width, look
        self.dtype = np.dtype(look.dtype)
        rng = np.random.default_rng([SEED, *self.key])
        low_h, low_w = -(-height // SCALE), -(-width // SCALE)
        self._low = _low_resolution(rng, low_h, low_w, look)
        self._rows = _bilinear(height, low_h)
        self._cols = _bilinear(width, low_w)

    def band(self, index: int) -> np.ndarray:
        """Rows ``index * BAND`` to ``(index + 1) * BAND`` (fewer at the bottom edge)."""
        y0, y1 = index * BAND, min(self.height, (index + 1) * BAND)
        r0, r1, fr = (a[y0:y1] for a in self._rows)
        rows = self._low[r0] * (1 - fr)[:, None] + self._low[r1] * fr[:, None]
        c0, c1, fc = self._cols
        lam = rows[:, c0] * (1 - fc) + rows[:, c1] * fc
        noise = np.random.default_rng([SEED, *self.key, 1, index])
        counts = noise.poisson(lam)
        return np.minimum(counts, np.iinfo(self.dtype).max).astype(self.dtype)

    def bands(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, band)`` from top to bottom."""
        for i in range(-(-self.height // BAND)):
            yield i * BAND, self.band(i)

    def array(self) -> np.ndarray:
        return np.concatenate([b for _, b in self.bands()])

    def tiles(self, tile: int) -> Iterator[np.ndarray]:
        """Row-major ``tile x tile`` tiles (edge tiles smaller), for tiled TIFF writers."""
        if tile % BAND and BAND % tile:
            raise ValueError(f"tile {tile} must divide or be a multiple of {BAND}")
        rows: list[np.ndarray] = []
        for y0, band in self.bands():
            rows.append(band)
            if (y0 + band.shape[0]) % tile and y0 + band.shape[0] < self.height:
                continue
            strip = np.concatenate(rows) if len(rows) > 1 else rows[0]
            rows = []
            for ty in range(0, strip.shape[0], tile):
                for tx in range(0, self.width, tile):
                    yield strip[ty:ty + tile, tx:tx + tile]
