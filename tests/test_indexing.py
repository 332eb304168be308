"""Keys and arguments mean the same thing everywhere, as bfio documents them."""

import numpy as np
import pytest

from omeio.indexing import (
    Region,
    as_5d,
    region_for_write,
    region_from_args,
    region_from_key,
    strip_trailing,
)

SHAPE = (50, 100, 4, 3, 2)


def test_full_slice_and_ellipsis():
    full = Region(range(50), range(100), (0, 1, 2, 3), (0, 1, 2), (0, 1))
    assert region_from_key(SHAPE, slice(None)) == full
    assert region_from_key(SHAPE, Ellipsis) == full
    assert region_from_key(SHAPE, ()) == full


def test_ints_keep_axes_and_lists_select():
    r = region_from_key(SHAPE, (slice(0, 10), 5, 1, [0, 2], -1))
    assert r == Region(range(0, 10), range(5, 6), (1,), (0, 2), (1,))
    assert r.shape == (10, 1, 1, 2, 1)


def test_leading_ellipsis_reads_backwards():
    r = region_from_key(SHAPE, (Ellipsis, slice(1, 3), 0, 0))
    assert r.z == (1, 2) and r.c == (0,) and r.t == (0,)
    assert r.y == range(50) and r.x == range(100)


def test_steps_in_y_and_x():
    r = region_from_key(SHAPE, (slice(0, 10, 3), slice(None, None, 50)))
    assert list(r.y) == [0, 3, 6, 9] and r.y_span == (0, 10)
    assert list(r.x) == [0, 50] and r.x_span == (0, 51)
    assert r.stepped


@pytest.mark.parametrize("key", [(50,), (0, 100), (0, 0, 4), (0, 0, 0, [3]), (0, 0, 0, 0, -3)])
def test_out_of_range_raises(key):
    with pytest.raises(IndexError):
        region_from_key(SHAPE, key)


def test_too_many_keys_and_two_ellipses():
    with pytest.raises(IndexError):
        region_from_key(SHAPE, (0, 0, 0, 0, 0, 0))
    with pytest.raises(IndexError):
        region_from_key(SHAPE, (Ellipsis, 0, Ellipsis))


def test_bfio_read_arguments():
    r = region_from_args(SHAPE, X=(10, 20), Y=(0, 5), Z=2, C=[2, 0], T=1)
    assert r == Region(range(0, 5), range(10, 20), (2,), (2, 0), (1,))
    r = region_from_args(SHAPE, Z=(1, 3))
    assert r.z == (1, 2)
    with pytest.raises(IndexError):
        region_from_args(SHAPE, X=(0, 101))


def test_write_region_from_starts():
    r = region_for_write(SHAPE, (5, 6, 1, 2, 1), X=3, Y=4, Z=1, C=[1, 2], T=1)
    assert r == Region(range(4, 9), range(3, 9), (1,), (1, 2), (1,))
    with pytest.raises(IndexError):
        region_for_write(SHAPE, (5, 6, 1, 1, 1), Y=46)


def test_shapes():
    a = np.zeros((3, 4))
    assert as_5d(a).shape == (3, 4, 1, 1, 1)
    assert strip_trailing(np.zeros((3, 4, 1, 2, 1))).shape == (3, 4, 1, 2)
    assert strip_trailing(np.zeros((3, 1, 1, 1, 1))).shape == (3, 1)
    with pytest.raises(ValueError):
        as_5d(np.zeros(3))
