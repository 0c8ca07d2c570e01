"""Tiling: extract/stitch round trips, edge replication and window-to-tile lookups."""

import itertools

import numpy as np
import pytest

from engine.errors import InputError
from engine.tiling import TileGrid, extract_tile, stitch_tile

SIZES = [  # (rows, cols, tile_rows, tile_cols)
    (1, 1, 4, 4),
    (1, 1, 1, 1),
    (3, 2, 8, 8),
    (7, 13, 4, 5),
    (128, 64, 64, 64),
    (65, 1, 64, 64),
    (10, 10, 10, 3),
]


def _reference_tile(cube, grid, i):
    """NumPy edge-replication reference."""
    y0, x0, h, w = grid.window(i)
    part = cube[:, y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    return np.pad(part, ((0, 0), (0, grid.tile_rows - h), (0, grid.tile_cols - w)), mode="edge")


@pytest.mark.parametrize("rows,cols,tr,tc", SIZES)
@pytest.mark.parametrize("bands", [1, 3])
def test_round_trip(rows, cols, tr, tc, bands):
    rng = np.random.default_rng(rows * 1000 + cols)
    cube = rng.integers(-32768, 32767, size=(bands, rows, cols), dtype=np.int16)
    grid = TileGrid(rows, cols, tr, tc)
    out = np.full(cube.shape, np.nan, dtype=np.float64)
    covered = np.zeros((rows, cols), dtype=int)
    for i, (y0, x0, h, w) in enumerate(grid.windows()):
        tile = extract_tile(cube, grid, i)
        assert tile.dtype == np.float32 and tile.shape == (bands, tr, tc)
        np.testing.assert_array_equal(tile, _reference_tile(cube, grid, i))
        stitch_tile(out, tile, grid, i)
        covered[y0 : y0 + h, x0 : x0 + w] += 1
    assert (covered == 1).all()  # tiles partition the scene
    np.testing.assert_array_equal(out, cube)


def test_edge_replication_values():
    cube = np.arange(2 * 7 * 13, dtype=np.float32).reshape(2, 7, 13)
    grid = TileGrid(7, 13, 4, 5)
    assert (grid.n_tiles_y, grid.n_tiles_x, grid.n_tiles) == (2, 3, 6)
    last = grid.n_tiles - 1
    assert grid.window(last) == (4, 10, 3, 3)
    tile = extract_tile(cube, grid, last)
    np.testing.assert_array_equal(tile[:, 3, :3], cube[:, 6, 10:13])  # last row repeated
    np.testing.assert_array_equal(tile[:, :3, 3], cube[:, 4:7, 12])  # last col repeated
    np.testing.assert_array_equal(tile[:, 3:, 3:], np.broadcast_to(cube[:, 6:, 12:], (2, 1, 2)))


def test_dtypes_and_views():
    base = np.arange(3 * 9 * 9, dtype=np.uint16).reshape(3, 9, 9)
    grid = TileGrid(9, 5, 4, 4)
    view = base[:, :, 2:7]  # non-contiguous
    np.testing.assert_array_equal(extract_tile(view, grid, 1), _reference_tile(view, grid, 1))
    swapped = view.astype(">f4")  # non-native byte order
    np.testing.assert_array_equal(extract_tile(swapped, grid, 5), _reference_tile(view, grid, 5))
    out = np.zeros((3, 9, 5), np.float32)
    stitch_tile(out, extract_tile(view, grid, 5).astype(np.float64), grid, 5)
    np.testing.assert_array_equal(out[:, 8:, 4:], view[:, 8:, 4:])


def test_tiles_touching_brute_force():
    grid = TileGrid(7, 13, 4, 5)
    for yoff, xoff in itertools.product(range(7), range(13)):
        for ysize, xsize in itertools.product(range(1, 8 - yoff), range(1, 14 - xoff)):
            expected = [
                i
                for i, (y0, x0, h, w) in enumerate(grid.windows())
                if y0 < yoff + ysize and yoff < y0 + h and x0 < xoff + xsize and xoff < x0 + w
            ]
            assert grid.tiles_touching(yoff, xoff, ysize, xsize) == expected


@pytest.mark.parametrize("args", [(0, 1, 1, 1), (1, -1, 1, 1), (1, 1, 1.5, 1), (True, 1, 1, 1)])
def test_grid_validation(args):
    with pytest.raises(InputError):
        TileGrid(*args)


def test_bad_arguments():
    grid = TileGrid(7, 13, 4, 5)
    cube = np.zeros((2, 7, 13), np.float32)
    with pytest.raises(InputError, match="6"):
        grid.window(6)
    with pytest.raises(InputError):
        grid.tiles_touching(5, 0, 3, 1)  # past the bottom
    with pytest.raises(InputError):
        grid.tiles_touching(0, 0, 0, 1)
    with pytest.raises(InputError):
        extract_tile(np.zeros((2, 7, 12)), grid, 0)
    with pytest.raises(InputError):
        extract_tile(cube.astype(np.complex64), grid, 0)
    with pytest.raises(InputError, match="int16"):
        stitch_tile(np.zeros((2, 7, 13), np.int16), np.zeros((2, 4, 5)), grid, 0)
    with pytest.raises(InputError):
        stitch_tile(cube, np.zeros((2, 4, 4)), grid, 0)
