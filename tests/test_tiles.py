"""TileAssembler: writes of any shape, order and alignment become exact, complete tiles."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omeio.indexing import Region
from omeio.tiles import TileAssembler, tile_grid, tiles_touched


def _collect(shape, dtype, tile):
    got = {}

    def emit(z, c, t, ty, tx, data):
        assert data.shape == (tile, tile)
        assert data.dtype == dtype
        key = (z, c, t, ty, tx)
        assert key not in got, f"tile {key} emitted twice"
        got[key] = data.copy()

    return TileAssembler(shape, np.dtype(dtype), emit, tile), got


def _reassemble(got, shape, tile, dtype):
    y, x, z, c, t = shape
    ny, nx = tile_grid(y, x, tile)
    out = np.zeros((ny * tile, nx * tile, z, c, t), dtype)
    for (zz, cc, tt, ty, tx), data in got.items():
        out[ty * tile:(ty + 1) * tile, tx * tile:(tx + 1) * tile, zz, cc, tt] = data
    return out


def test_grid_and_touched():
    assert tile_grid(1, 1, 8) == (1, 1)
    assert tile_grid(17, 16, 8) == (3, 2)
    assert list(tiles_touched(7, 9, 0, 8, 8)) == [(0, 0), (1, 0)]
    assert list(tiles_touched(5, 5, 0, 8, 8)) == []


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), nz=st.integers(1, 2), tile=st.sampled_from([4, 8, 16]),
    cuts=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), min_size=0, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_random_blocks_any_order_reassemble_exactly(h, w, nz, tile, cuts, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w, nz, 1, 1)
    image = rng.integers(0, 60000, size=shape, dtype=np.uint16)
    asm, got = _collect(shape, "uint16", tile)
    ys = sorted({0, h, *(a % h for a, _ in cuts)})
    xs = sorted({0, w, *(b % w for _, b in cuts)})
    blocks = [(y0, y1, x0, x1, z) for y0, y1 in zip(ys, ys[1:]) for x0, x1 in zip(xs, xs[1:])
              for z in range(nz)]
    rng.shuffle(blocks)
    for y0, y1, x0, x1, z in blocks:
        region = Region(range(y0, y1), range(x0, x1), (z,), (0,), (0,))
        asm.write(region, image[y0:y1, x0:x1, z:z + 1])
    assert asm.pending == 0
    assert asm.finish() == 0
    ny, nx = tile_grid(h, w, tile)
    assert len(got) == ny * nx * nz
    out = _reassemble(got, shape, tile, np.uint16)
    np.testing.assert_array_equal(out[:h, :w], image)
    # padding beyond the image edge is zero
    assert not out[h:].any() and not out[:, w:].any()


def test_unwritten_tiles_are_zero_and_counted():
    asm, got = _collect((10, 10, 1, 2, 1), "int8", 8)
    data = np.full((3, 3, 1, 1, 1), -5, np.int8)
    asm.write(Region(range(0, 3), range(0, 3), (0,), (1,), (0,)), data)
    assert asm.pending == 1
    assert asm.finish() == 8  # 4 tiles per channel, 2 channels
    np.testing.assert_array_equal(got[(0, 1, 0, 0, 0)][:3, :3], -5)
    assert not got[(0, 1, 0, 0, 0)][3:].any()
    assert not got[(0, 0, 0, 1, 1)].any()


def test_rewriting_a_complete_tile_is_refused():
    asm, _ = _collect((8, 8, 1, 1, 1), "uint8", 8)
    region = Region(range(0, 8), range(0, 8), (0,), (0,), (0,))
    asm.write(region, np.ones((8, 8, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="already"):
        asm.write(region, np.ones((8, 8, 1, 1, 1), np.uint8))


def test_overlapping_partial_writes_count_pixels_once():
    asm, got = _collect((4, 4, 1, 1, 1), "uint8", 4)
    a = np.full((4, 3, 1, 1, 1), 1, np.uint8)
    b = np.full((4, 2, 1, 1, 1), 2, np.uint8)
    asm.write(Region(range(0, 4), range(0, 3), (0,), (0,), (0,)), a)
    assert not got
    asm.write(Region(range(0, 4), range(2, 4), (0,), (0,), (0,)), b)
    assert list(got) == [(0, 0, 0, 0, 0)]
    np.testing.assert_array_equal(got[(0, 0, 0, 0, 0)], [[1, 1, 2, 2]] * 4)
